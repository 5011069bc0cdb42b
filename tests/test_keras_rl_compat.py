"""Code written for keras-rl runs here: user agents, positional arguments, processors, helpers,
WandbLogger, and a keras-rl user's DDPG Pendulum script changed only where gymnasium and Keras 3
force it."""

import sys
import types

import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import CountingEnv, small_models
from keras import layers
from numpy.testing import assert_allclose

from rl.agents import DDPGAgent
from rl.callbacks import WandbLogger
from rl.core import Agent, Processor
from rl.memory import Memory, SequentialMemory, sample_batch_indexes, zeroed_observation
from rl.processors import MultiInputProcessor, WhiteningNormalizerProcessor
from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess
from rl.util import get_object_config, get_soft_target_model_updates


class TimeLimitedEnv(gym.Env):
    """Observation t (shape (1,)); terminates at t == `terminate_at`, else runs on."""

    observation_space = gym.spaces.Box(0.0, 100.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def __init__(self, terminate_at=None):
        self.terminate_at = terminate_at

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == self.terminate_at, False, {}


class KerasRlAgent(Agent):
    """A user's agent written for keras-rl: two-argument backward and keras-rl's hooks."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, observation):
        self.calls.append(("forward", float(observation[0])))
        return np.zeros(1, np.float32)

    def backward(self, reward, terminal):
        self.calls.append(("backward", reward, terminal))
        return []

    def compile(self):
        self.compiled = True

    def _on_train_begin(self):
        self.calls.append("train_begin")

    def _on_test_begin(self):
        self.calls.append("test_begin")


# ------------------------------------------------------------ user agents
def test_keras_rl_agent_gets_keras_rl_calls():
    agent = KerasRlAgent()
    agent.compile()
    agent.fit(TimeLimitedEnv(terminate_at=2), nb_steps=4, verbose=0)
    assert agent.calls == [
        "train_begin",
        ("forward", 0.0),
        ("backward", 1.0, False),
        ("forward", 1.0),
        ("backward", 1.0, True),
        ("forward", 2.0),  # the final observation, shown once more as keras-rl did
        ("backward", 0.0, False),
        ("forward", 0.0),
        ("backward", 1.0, False),
        ("forward", 1.0),
        ("backward", 1.0, True),
        ("forward", 2.0),
        ("backward", 0.0, False),
    ]
    assert agent.step == 4


def test_keras_rl_agent_sees_a_time_limit_as_terminal_and_test_hook_runs():
    agent = KerasRlAgent()
    agent.compile()
    agent.test(TimeLimitedEnv(), nb_episodes=1, nb_max_episode_steps=2, verbose=0, visualize=False)
    assert agent.calls[0] == "test_begin"
    assert [c for c in agent.calls if c[0] == "backward"] == [
        ("backward", 1.0, False),
        ("backward", 1.0, True),  # keras-rl's `terminal`: the episode ended (here by the time limit)
        ("backward", 0.0, False),
    ]


def test_agent_with_this_librarys_backward_gets_truncation_and_next_observation():
    calls = []

    class Modern(KerasRlAgent):
        def backward(self, reward, terminal, **kwargs):
            calls.append((terminal, kwargs["truncated"], float(kwargs["next_observation"][0])))
            return []

    agent = Modern()
    agent.compile()
    agent.fit(TimeLimitedEnv(), nb_steps=2, nb_max_episode_steps=2, verbose=0)
    assert calls == [(False, False, 1.0), (False, True, 2.0)]  # no extra call, truncation kept apart
    assert agent.calls.count("train_begin") == 1


# ----------------------------------------------------- positional arguments
def test_ornstein_uhlenbeck_positional_order_is_keras_rls():
    # keras-rl: OrnsteinUhlenbeckProcess(theta, mu, sigma, dt, size, sigma_min, n_steps_annealing)
    p = OrnsteinUhlenbeckProcess(0.15, 0.1, 0.3, 0.05, 3, 0.1, 500)
    assert (p.theta, p.mu, p.sigma, p.dt, p.size, p.sigma_min, p.n_steps_annealing) == (
        0.15,
        0.1,
        0.3,
        0.05,
        3,
        0.1,
        500,
    )
    assert p.sample().shape == (3,)
    with pytest.raises(TypeError, match="size"):
        OrnsteinUhlenbeckProcess(0.15, 0.0, 0.3, 1e-2, np.zeros(3))  # an old x0 in size's place fails loudly
    g = GaussianWhiteNoiseProcess(0.5, 2.0, 1.0, 10, 4)  # keras-rl: (mu, sigma, sigma_min, n_steps_annealing, size)
    assert (g.mu, g.sigma, g.sigma_min, g.n_steps_annealing, g.size) == (0.5, 2.0, 1.0, 10, 4)


def test_ddpg_positional_arguments_and_optimizer_list_order_are_keras_rls():
    actor, critic, action_in = small_models((2,))
    memory = SequentialMemory(100)
    # keras-rl: DDPGAgent(nb_actions, actor, critic, critic_action_input, memory, gamma, batch_size,
    #                     nb_steps_warmup_critic, nb_steps_warmup_actor, ...)
    agent = DDPGAgent(1, actor, critic, action_in, memory, 0.9, 16, 7, 9)
    assert (agent.nb_actions, agent.gamma, agent.batch_size) == (1, 0.9, 16)
    assert agent.warmup == {"critic": 7, "actor": 9}
    # keras-rl's compile([actor_optimizer, critic_optimizer])
    agent.compile([keras.optimizers.Adam(learning_rate=1e-3), keras.optimizers.Adam(learning_rate=2e-3)])
    assert float(agent.optimizers["actor"].learning_rate) == pytest.approx(1e-3)
    assert float(agent.optimizers["critic"].learning_rate) == pytest.approx(2e-3)


# ------------------------------------------------------------- processors
class RecordingProcessor(Processor):
    def __init__(self):
        self.batches = []

    def process_state_batch(self, batch):
        self.batches.append(np.array(batch))
        return batch


@pytest.mark.parametrize("window_length", [1, 3])
def test_processor_never_sees_made_up_states(window_length):
    """Every state the processor gets is made of real observations (and the zero padding of an
    episode's first steps when window_length > 1): no all-zeros probe."""
    keras.utils.set_random_seed(0)
    obs_in = keras.Input((window_length, 2))
    actor = keras.Model(obs_in, layers.Dense(1)(layers.Flatten()(obs_in)))
    action_in, critic_obs = keras.Input((1,)), keras.Input((window_length, 2))
    critic = keras.Model(
        [action_in, critic_obs], layers.Dense(1)(layers.Concatenate()([action_in, layers.Flatten()(critic_obs)]))
    )
    processor = RecordingProcessor()
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(100, window_length=window_length, seed=0),
        nb_steps_warmup_critic=6,
        nb_steps_warmup_actor=6,
        batch_size=4,
        processor=processor,
    )
    agent.compile("adam")
    env = CountingEnv(terminate_at=5)  # obs = [1000 * episode + t, t]; episode 0, t = 0 is [0, 0]
    env.episode = 0  # reset() counts from 1: every real observation is non-zero
    agent.fit(env, nb_steps=12, verbose=0)
    first = processor.batches[0]
    assert first.shape == (1, window_length, 2)
    assert_allclose(first[0, -1], [1000.0, 0.0])  # the first real observation
    for batch in processor.batches:
        last = batch[:, -1]  # the newest observation of each state: always a real one
        assert np.all(last[:, 0] >= 1000.0)
        for state in batch:  # older positions: real observations of the same episode, or padding
            for older, newer in zip(state[:-1], state[1:]):
                assert not older.any() or (older[0] // 1000 == newer[0] // 1000 and older[1] == newer[1] - 1)


def test_whitening_processor_statistics_come_from_each_real_observation_once(tmp_path):
    actor, critic, action_in = small_models((2,))
    processor = WhiteningNormalizerProcessor()
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(100, seed=0),
        nb_steps_warmup_critic=4,
        nb_steps_warmup_actor=4,
        batch_size=4,
        processor=processor,
    )
    agent.compile("adam")
    env = CountingEnv(terminate_at=5)
    agent.fit(env, nb_steps=10, verbose=0)
    # Two episodes: each reset and step observation counted once, replayed batches not at all.
    seen = np.array([[1000 * e + t, t] for e in range(2) for t in range(6)], dtype=np.float64)
    assert processor.normalizer.count == 12
    assert_allclose(processor.normalizer.mean, seen.mean(axis=0))
    assert_allclose(processor.normalizer.std, seen.std(axis=0))
    white = processor.process_state_batch(seen[:, None])
    assert white.dtype == np.float32
    assert_allclose(white[:, 0].mean(axis=0), 0.0, atol=1e-5)
    assert_allclose(white[:, 0].std(axis=0), 1.0, atol=1e-5)

    # The statistics travel with the agent's checkpoints.
    agent.save_checkpoint(tmp_path / "ckpt")
    saved = processor.get_state()
    agent.fit(env, nb_steps=5, verbose=0)
    assert processor.normalizer.count > 12
    agent.load_checkpoint(tmp_path / "ckpt")
    assert processor.get_state() == saved
    assert processor.normalizer.count == 12


def test_whitening_processor_refuses_a_bad_state_and_non_arrays():
    processor = WhiteningNormalizerProcessor()
    assert_allclose(processor.process_state_batch(np.ones((2, 1, 3))), 1.0)  # no statistics yet: unchanged
    with pytest.raises(TypeError, match="numeric arrays"):
        processor.process_observation({"a": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        processor.set_state({"shape": [2], "count": 1, "mean": [0.0], "m2": [0.0]})
    with pytest.raises(ValueError, match="eps"):
        WhiteningNormalizerProcessor(eps=0.0)


def test_multi_input_processor_packs_lists_tuples_and_dicts():
    p = MultiInputProcessor(nb_inputs=2)
    flat = p.process_observation([np.arange(3.0), np.arange(4.0).reshape(2, 2)])
    assert_allclose(flat, [0, 1, 2, 0, 1, 2, 3])
    parts = p.process_state_batch(np.stack([flat, flat + 10])[:, None])  # (B=2, W=1, 7)
    assert [x.shape for x in parts] == [(2, 1, 3), (2, 1, 2, 2)]
    assert_allclose(parts[1][1, 0], [[10, 11], [12, 13]])
    # keras-rl's nested form: a batch of windows of lists of arrays.
    nested = [[[np.zeros(3), np.ones((2, 2))], [np.ones(3), np.zeros((2, 2))]]]
    parts = p.process_state_batch(nested)
    assert [x.shape for x in parts] == [(1, 2, 3), (1, 2, 2, 2)]
    assert_allclose(parts[0][0, 1], 1.0)

    d = MultiInputProcessor(nb_inputs=2)
    flat = d.process_observation({"b": np.array([5.0]), "a": np.array([1.0, 2.0])})
    assert_allclose(flat, [5, 1, 2])  # the first observation's key order
    assert_allclose(d.process_observation({"a": np.array([3.0, 4.0]), "b": np.array([6.0])}), [6, 3, 4])
    with pytest.raises(ValueError, match="nb_inputs=2"):
        p.process_observation([np.zeros(3)])
    with pytest.raises(ValueError, match="shapes"):
        p.process_observation([np.zeros(4), np.zeros((2, 2))])
    with pytest.raises(TypeError, match="list, tuple or dict"):
        p.process_observation(np.zeros(7))
    with pytest.raises(ValueError, match="nb_inputs"):
        MultiInputProcessor(nb_inputs=0)


def test_dict_observation_without_processor_points_to_multi_input_processor():
    class DictEnv(TimeLimitedEnv):
        observation_space = gym.spaces.Dict({"x": gym.spaces.Box(0.0, 1.0, (2,))})

        def reset(self, *, seed=None, options=None):
            return {"x": np.zeros(2, np.float32)}, {}

    actor, critic, action_in = small_models((2,))
    agent = DDPGAgent(
        nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=SequentialMemory(100)
    )
    agent.compile("adam")
    with pytest.raises(TypeError, match="MultiInputProcessor"):
        agent.fit(DictEnv(), nb_steps=2, verbose=0)


# ---------------------------------------------------------------- helpers
def test_soft_target_updates_mix_by_tau():
    source = keras.Sequential([keras.Input((2,)), layers.Dense(1, kernel_initializer="ones")])
    target = keras.Sequential([keras.Input((2,)), layers.Dense(1, kernel_initializer="zeros")])
    updates = get_soft_target_model_updates(target, source, 0.25)
    assert len(updates) == 2  # kernel and bias
    for variable, value in updates:
        variable.assign(value)
    assert_allclose(target.layers[0].kernel.numpy(), 0.25)
    with pytest.raises(ValueError, match="tau"):
        get_soft_target_model_updates(target, source, 1.5)


def test_object_config_sample_indexes_and_zeroed_observation():
    memory = SequentialMemory(50, window_length=2)
    assert get_object_config(memory) == {"class_name": "SequentialMemory", "config": memory.get_config()}
    assert get_object_config(None) is None
    idx = sample_batch_indexes(3, 13, 10, rng=np.random.default_rng(0))
    assert sorted(idx.tolist()) == list(range(3, 13))  # enough room: all different
    with pytest.warns(UserWarning, match="repetitions"):
        idx = sample_batch_indexes(0, 2, 5, rng=np.random.default_rng(0))
    assert idx.shape == (5,) and set(idx.tolist()) <= {0, 1}
    zeros = zeroed_observation([np.ones(2), np.ones((1, 3))])
    assert [z.shape for z in zeros] == [(2,), (1, 3)] and not any(z.any() for z in zeros)
    assert zeroed_observation(3.0) == 0.0


def test_memory_base_class_for_user_memories():
    class ListMemory(Memory):
        def __init__(self):
            super().__init__(window_length=2)
            self.items = []

        def append(self, observation, action, reward, terminal, training=True):
            super().append(observation, action, reward, terminal, training=training)
            self.items.append(reward)

        def sample(self, batch_size, batch_idxs=None):
            return self.items[:batch_size]

    m = ListMemory()
    m.append(np.ones(2), 0, 1.0, False)
    assert_allclose(m.get_recent_state(np.full(2, 2.0)), [[1, 1], [2, 2]])
    m.append(np.full(2, 2.0), 0, 2.0, True)
    m.append(np.full(2, 3.0), 0, 0.0, False)  # the final observation
    assert_allclose(m.get_recent_state(np.full(2, 4.0)), [[0, 0], [4, 4]])  # a new episode
    assert m.sample(2) == [1.0, 2.0]
    assert m.get_config() == {"window_length": 2, "ignore_episode_boundaries": False}


# ------------------------------------------------------------- WandbLogger
def _stub_wandb(monkeypatch):
    runs = []

    class Run:
        def __init__(self, kwargs):
            self.kwargs, self.logged = kwargs, []
            self.config = types.SimpleNamespace(values={}, update=lambda d, **kw: self.config.values.update(d))

        def log(self, data):
            self.logged.append(data)

    module = types.ModuleType("wandb")
    module.init = lambda **kwargs: runs.append(Run(kwargs)) or runs[-1]
    monkeypatch.setitem(sys.modules, "wandb", module)
    return runs


def test_wandb_logger_logs_each_episode(monkeypatch):
    runs = _stub_wandb(monkeypatch)
    actor, critic, action_in = small_models((2,))
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(100, seed=0),
        nb_steps_warmup_critic=3,
        nb_steps_warmup_actor=3,
        batch_size=2,
    )
    agent.compile("adam", metrics=["mae"])
    logger = WandbLogger(name="run-1")
    assert runs[0].kwargs == {"project": "keras-rl", "name": "run-1"}
    agent.fit(CountingEnv(terminate_at=4), nb_steps=8, verbose=0, callbacks=[logger])
    run = runs[0]
    assert run.config.values["params"] == {"nb_steps": 8}
    assert run.config.values["agent"]["class_name"] == "DDPGAgent"
    assert [entry["episode"] for entry in run.logged] == [1, 2]
    assert [entry["step"] for entry in run.logged] == [4, 8]
    first, second = run.logged
    assert first["episode_steps"] == 4
    assert first["obs_min"] == 1.0 and first["obs_max"] == 4.0  # the step observations [t, t], t = 1..4
    assert first["episode_reward"] == pytest.approx(first["reward_mean"] * 4)
    assert "mae" in first  # every metric is logged, NaN while none was computed
    assert set(agent.metrics_names) <= set(second)
    assert np.isfinite(second["mae"])  # trained during episode 2


def test_wandb_logger_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # importing it fails
    with pytest.raises(ImportError, match=r'pip install -e "\.\[wandb\]"'):
        WandbLogger()


# ------------------------------------------- a keras-rl user's script, ported
def test_keras_rl_ddpg_pendulum_script_runs():
    """keras-rl's DDPG Pendulum example as its users wrote it, with only the changes gymnasium
    (gym.make's id, seeding through reset) and Keras 3 (learning_rate=) force, and few steps."""
    from keras.layers import Activation, Concatenate, Dense, Flatten, Input
    from keras.models import Model, Sequential
    from keras.optimizers import Adam

    from rl.agents import DDPGAgent
    from rl.memory import SequentialMemory
    from rl.random import OrnsteinUhlenbeckProcess

    ENV_NAME = "Pendulum-v1"  # gymnasium's id (keras-rl's gym had Pendulum-v0)
    env = gym.make(ENV_NAME)
    np.random.seed(123)
    env.reset(seed=123)  # gymnasium seeds through reset (gym had env.seed)
    assert len(env.action_space.shape) == 1
    nb_actions = env.action_space.shape[0]

    actor = Sequential()
    actor.add(Input(shape=(1,) + env.observation_space.shape))  # Keras 3: Input instead of input_shape=
    actor.add(Flatten())
    for _ in range(3):
        actor.add(Dense(16))
        actor.add(Activation("relu"))
    actor.add(Dense(nb_actions))
    actor.add(Activation("linear"))

    action_input = Input(shape=(nb_actions,), name="action_input")
    observation_input = Input(shape=(1,) + env.observation_space.shape, name="observation_input")
    flattened_observation = Flatten()(observation_input)
    x = Concatenate()([action_input, flattened_observation])
    for _ in range(3):
        x = Dense(32)(x)
        x = Activation("relu")(x)
    x = Dense(1)(x)
    x = Activation("linear")(x)
    critic = Model(inputs=[action_input, observation_input], outputs=x)

    memory = SequentialMemory(limit=100000, window_length=1)
    random_process = OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, mu=0.0, sigma=0.3)
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=memory,
        nb_steps_warmup_critic=100,
        nb_steps_warmup_actor=100,
        random_process=random_process,
        gamma=0.99,
        target_model_update=1e-3,
    )
    agent.compile(Adam(learning_rate=0.001, clipnorm=1.0), metrics=["mae"])  # Keras 3: learning_rate=

    with pytest.warns(UserWarning, match="render_mode"):  # visualize=True needs render_mode in gymnasium
        agent.fit(env, nb_steps=300, visualize=True, verbose=0, nb_max_episode_steps=200)
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        agent.save_weights(os.path.join(folder, f"ddpg_{ENV_NAME}_weights.h5f"), overwrite=True)
        saved = sorted(os.listdir(folder))
    assert saved == [f"ddpg_{ENV_NAME}_weights_actor.weights.h5", f"ddpg_{ENV_NAME}_weights_critic.weights.h5"]
    with pytest.warns(UserWarning, match="render_mode"):
        history = agent.test(env, nb_episodes=2, visualize=True, nb_max_episode_steps=200, verbose=0)
    assert history.history["nb_episode_steps"] == [200, 200]
    assert np.isfinite(history.history["episode_reward"]).all()
    assert agent.step == 300 and memory.nb_transitions == 300
