"""DQNAgent: keras-rl's cases (single and multi-input, double, dueling, training flag, target updates, Huber
loss, seeding, checkpoints, weights files, retracing, bad input) and a short seeded learning run."""

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from rl.agents import DQNAgent
from rl.agents.dqn import DuelingCombine
from rl.agents.off_policy import GraphBatch
from rl.callbacks import Callback
from rl.core import Processor
from rl.engine import Nets, VariableWeights
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy, GreedyQPolicy, LinearAnnealedPolicy


class LineEnv(gym.Env):
    """Position 0..length on a line, observed as [position / length, 1]; action 1 moves right, 0 left.

    Reaching the right end terminates with reward 1; every other step pays -0.01. `time_limit`
    truncates (through gymnasium's TimeLimit when made with `make_line_env`).
    """

    def __init__(self, length=4, obs_dim=2):
        self.length = length
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.obs_dim = obs_dim

    def _obs(self):
        obs = np.ones(self.obs_dim, np.float32)
        obs[0] = self.pos / self.length
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if int(action) == 1 else -1))
        done = self.pos >= self.length
        return self._obs(), 1.0 if done else -0.01, done, False, {}


def make_line_env(length=4, time_limit=12, obs_dim=2):
    return gym.wrappers.TimeLimit(LineEnv(length, obs_dim), max_episode_steps=time_limit)


def q_model(obs_shape, nb_actions=2, window_length=1, hidden=16, name="q"):
    model = keras.Sequential(name=name)
    model.add(keras.Input((window_length,) + tuple(obs_shape)))
    model.add(layers.Flatten())
    model.add(layers.Dense(hidden, activation="relu"))
    model.add(layers.Dense(nb_actions))
    model.add(layers.Activation("linear"))
    return model


def make_agent(env=None, seed=0, window_length=1, compile=True, metrics=("mae",), lr=1e-2, **kwargs):
    env = env or make_line_env()
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("memory", SequentialMemory(limit=500, window_length=window_length, seed=seed))
    kwargs.setdefault("policy", EpsGreedyQPolicy(eps=0.3, seed=seed))
    kwargs.setdefault("nb_steps_warmup", 10)
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("target_model_update", 0.1)
    agent = DQNAgent(model=q_model(env.observation_space.shape, int(env.action_space.n), window_length), **kwargs)
    if compile:
        agent.compile(keras.optimizers.Adam(learning_rate=lr), metrics=list(metrics))
    return agent


class MetricsRecorder(Callback):
    def __init__(self):
        super().__init__()
        self.metrics = []

    def on_step_end(self, step, logs=None):
        self.metrics.append(np.array(logs["metrics"], dtype=np.float64))


def test_keras_rl_style_script_runs():
    env = make_line_env()
    keras.utils.set_random_seed(0)
    model = keras.Sequential()
    model.add(layers.Flatten(input_shape=(1,) + env.observation_space.shape))  # keras-rl's first layer
    model.add(layers.Dense(16))
    model.add(layers.Activation("relu"))
    model.add(layers.Dense(2))
    model.add(layers.Activation("linear"))
    memory = SequentialMemory(limit=1000, window_length=1)
    dqn = DQNAgent(
        model=model,
        nb_actions=2,
        memory=memory,
        nb_steps_warmup=10,
        target_model_update=1e-2,
        policy=BoltzmannQPolicy(),
    )
    dqn.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    history = dqn.fit(env, nb_steps=60, visualize=False, verbose=0)
    assert sum(history.history["nb_episode_steps"]) <= 60
    result = dqn.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert len(result.history["episode_reward"]) == 2
    assert dqn.metrics_names == ["loss", "mean_q", "mae"]


def test_defaults_are_keras_rl_s():
    agent = make_agent(
        memory=SequentialMemory(limit=100),
        policy=None,
        nb_steps_warmup=1000,
        batch_size=32,
        target_model_update=10000,
        compile=False,
    )
    assert isinstance(agent.policy, EpsGreedyQPolicy) and agent.policy.eps == 0.1
    assert isinstance(agent.test_policy, GreedyQPolicy)
    assert agent.gamma == 0.99 and agent.nb_steps_warmup == 1000 and agent.target_model_update == 10000
    assert not agent.enable_double_dqn and not agent.enable_dueling_network and agent.dueling_type == "avg"
    assert agent.delta_clip == np.inf and agent.nb_actions == 2
    config = agent.get_config()
    assert config["policy"] == {"class_name": "EpsGreedyQPolicy", "config": {"eps": 0.1}}
    assert config["enable_double_dqn"] is False and config["target_model_update"] == 10000


def test_metrics_are_nan_in_warmup_then_finite_and_include_the_policy_s():
    policy = LinearAnnealedPolicy(EpsGreedyQPolicy(seed=0), "eps", 1.0, 0.1, 0.0, nb_steps=20)
    agent = make_agent(policy=policy, nb_steps_warmup=5)
    assert agent.metrics_names == ["loss", "mean_q", "mae", "mean_eps"]
    recorder = MetricsRecorder()
    agent.fit(make_line_env(), nb_steps=30, verbose=0, callbacks=[recorder])
    m = np.array(recorder.metrics)
    assert np.isnan(m[:6, :3]).all()  # steps 0-5: nothing trained yet (step 6's update runs at step 7)
    assert np.isfinite(m[8:, :3]).all()
    np.testing.assert_allclose(m[:, 3], np.maximum(0.1, 1.0 - 0.9 * np.arange(30) / 20), rtol=1e-6)


def test_training_flag_picks_the_policy_and_test_stores_nothing():
    class Spy(GreedyQPolicy):
        def __init__(self):
            super().__init__()
            self.seen = []

        def select_action(self, q_values):
            self.seen.append(self.agent.training)
            return super().select_action(q_values=q_values)

    policy, test_policy = Spy(), Spy()
    agent = make_agent(policy=policy, test_policy=test_policy)
    env = make_line_env()
    agent.fit(env, nb_steps=15, verbose=0)
    stored = agent.memory.nb_transitions
    assert policy.seen == [True] * 15 and test_policy.seen == []
    agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    assert test_policy.seen and all(t is False for t in test_policy.seen) and len(policy.seen) == 15
    assert agent.memory.nb_transitions == stored
    assert agent.training is False


def test_multi_input_model_through_a_processor():
    class SplitProcessor(Processor):
        def process_state_batch(self, batch):  # (B, 1, 4) -> [(B, 1, 2), (B, 1, 2)]
            batch = np.asarray(batch, np.float32)
            return [batch[..., :2], batch[..., 2:]]

    env = make_line_env(obs_dim=4)
    keras.utils.set_random_seed(0)
    a_in, b_in = keras.Input((1, 2), name="a"), keras.Input((1, 2), name="b")
    x = layers.Concatenate()([layers.Flatten()(a_in), layers.Flatten()(b_in)])
    model = keras.Model([a_in, b_in], layers.Dense(2)(layers.Dense(8, activation="relu")(x)))
    agent = DQNAgent(
        model=model,
        nb_actions=2,
        memory=SequentialMemory(limit=200, seed=0),
        nb_steps_warmup=5,
        batch_size=4,
        processor=SplitProcessor(),
        policy=EpsGreedyQPolicy(seed=0),
    )
    agent.compile("adam", metrics=["mae"])
    before = [w.copy() for w in model.get_weights()]
    recorder = MetricsRecorder()
    agent.fit(env, nb_steps=20, verbose=0, callbacks=[recorder])
    assert np.isfinite(recorder.metrics[-1]).all()
    assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), before))
    assert agent.compute_q_values(np.ones((1, 4), np.float32)).shape == (2,)


def test_window_length_and_plain_observation_inputs():
    agent = make_agent(window_length=3, memory=SequentialMemory(limit=300, window_length=3, seed=0))
    agent.fit(make_line_env(), nb_steps=25, verbose=0)
    keras.utils.set_random_seed(0)
    plain = keras.Sequential([keras.Input((2,)), layers.Dense(8, activation="relu"), layers.Dense(2)])
    agent = DQNAgent(model=plain, memory=SequentialMemory(limit=100, seed=0), nb_steps_warmup=5, batch_size=4)
    assert agent.nb_actions == 2  # taken from the model's output
    agent.compile("adam")
    agent.fit(make_line_env(), nb_steps=15, verbose=0)
    assert np.isfinite(agent.compute_q_values(np.zeros((1, 2), np.float32))).all()


@pytest.mark.parametrize(
    "dueling_type, expected", [("avg", [-1.0, 0.0, 4.0]), ("max", [-4.0, -3.0, 1.0]), ("naive", [3.0, 4.0, 8.0])]
)
def test_dueling_combinations(dueling_type, expected):
    x = tf.constant([[1.0, 2.0, 3.0, 7.0]])  # V = 1, A = [2, 3, 7]
    np.testing.assert_allclose(DuelingCombine(dueling_type)(x).numpy(), [expected])


@pytest.mark.parametrize("dueling_type", ["avg", "max", "naive"])
def test_dueling_network_shapes_and_training(dueling_type):
    agent = make_agent(enable_dueling_network=True, dueling_type=dueling_type, nb_steps_warmup=5)
    model = agent.model
    assert tuple(model.output.shape) == (None, 2)
    head = [layer for layer in model.layers if isinstance(layer, layers.Dense)][-1]
    assert head.units == 3  # V and one advantage per action
    assert isinstance(model.layers[-1], DuelingCombine) and model.layers[-1].dueling_type == dueling_type
    agent.fit(make_line_env(), nb_steps=20, verbose=0)
    for t, w in zip(agent.target_model.get_weights(), model.get_weights()):
        assert t.shape == w.shape
    # the combination holds on the trained network: Q - mean(Q) equals A - mean(A) for 'avg'
    q = agent.compute_q_values(np.zeros((1, 2), np.float32))
    assert q.shape == (2,) and np.isfinite(q).all()


def test_double_dqn_target_uses_the_online_argmax_and_the_target_value():
    env = make_line_env()
    gamma = 0.9
    results = {}
    for double in (False, True):
        agent = make_agent(env, enable_double_dqn=double, gamma=gamma)
        target = agent.target_model
        target.set_weights([w + np.random.default_rng(1).normal(0, 0.5, w.shape) for w in target.get_weights()])
        nets = Nets({r: VariableWeights(m) for r, m in agent.models.items()})
        s1 = np.random.default_rng(2).normal(size=(16, 1, 2)).astype(np.float32)
        terminal = np.array([1.0] * 4 + [0.0] * 12, np.float32)
        reward = np.arange(16, dtype=np.float32)
        batch = GraphBatch(
            tf.constant(s1), tf.zeros([16, 1]), tf.constant(reward), tf.constant(terminal), tf.constant(s1)
        )
        y = agent.td_target(nets, batch).numpy()
        q_online, q_target = agent.model(s1).numpy(), target(s1).numpy()
        if double:
            q1 = q_target[np.arange(16), q_online.argmax(axis=1)]
        else:
            q1 = q_target.max(axis=1)
        np.testing.assert_allclose(y, reward + gamma * (1 - terminal) * q1, rtol=1e-5)
        np.testing.assert_allclose(y[:4], reward[:4])  # terminal: no bootstrap
        results[double] = y
    assert not np.allclose(results[False], results[True])  # the two targets differ on these networks


class OneStepEnv(gym.Env):
    """Always the same observation; every episode terminates after one step with reward 10."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([0.5, -0.5], np.float32), {}

    def step(self, action):
        return np.array([0.5, -0.5], np.float32), 10.0, True, False, {}


@pytest.mark.parametrize("delta_clip", [np.inf, 1.0])
def test_huber_loss_with_delta_clip(delta_clip):
    """Every sampled transition is (s, a, 10, terminal): loss = huber(10 - Q(s, a), delta_clip)."""
    env = OneStepEnv()
    agent = make_agent(
        env, policy=GreedyQPolicy(), nb_steps_warmup=0, batch_size=4, delta_clip=delta_clip, target_model_update=100
    )
    obs = env.reset()[0][None]
    q = agent.compute_q_values(obs)
    td = 10.0 - q.max()  # the greedy action is taken every time
    expected = 0.5 * td**2 if np.isinf(delta_clip) else delta_clip * (abs(td) - 0.5 * delta_clip)
    recorder = MetricsRecorder()
    agent.fit(env, nb_steps=3, verbose=0, callbacks=[recorder])  # step 1 schedules, step 2's call trains
    assert recorder.metrics[2][0] == pytest.approx(expected, rel=1e-5)
    assert recorder.metrics[2][1] == pytest.approx(q.max(), rel=1e-5)  # mean_q, before the update


def test_soft_target_update_after_one_training_step():
    agent = make_agent(nb_steps_warmup=10, target_model_update=0.1)
    before = agent.model.get_weights()
    agent.fit(make_line_env(), nb_steps=13, verbose=0)  # steps 11 and 12 schedule training; the first runs
    after = agent.model.get_weights()
    for t, b, a in zip(agent.target_model.get_weights(), before, after):
        np.testing.assert_allclose(t, 0.1 * a + 0.9 * b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(after, before))


def test_hard_target_update_copies_every_n_steps():
    agent = make_agent(nb_steps_warmup=2, target_model_update=5)
    before = agent.target_model.get_weights()
    agent.fit(make_line_env(), nb_steps=12, verbose=0)  # step 10's copy runs after step 10's update, at step 11
    assert any(not np.allclose(t, b) for t, b in zip(agent.target_model.get_weights(), before))
    for t, a in zip(agent.target_model.get_weights(), agent.model.get_weights()):
        np.testing.assert_allclose(t, a)
    agent.fit(make_line_env(), nb_steps=2, verbose=0)  # two more updates, no copy before step 15
    assert any(not np.allclose(t, a) for t, a in zip(agent.target_model.get_weights(), agent.model.get_weights()))


def test_truncation_is_not_termination_in_memory():
    agent = make_agent(make_line_env(length=50, time_limit=5))
    agent.fit(make_line_env(length=50, time_limit=5), nb_steps=40, verbose=0)
    assert agent.memory.sample(64).terminal.max() == 0.0  # time limits only
    agent = make_agent(make_line_env(length=1, time_limit=50), policy=EpsGreedyQPolicy(eps=1.0, seed=0))
    agent.fit(make_line_env(length=1, time_limit=50), nb_steps=40, verbose=0)
    batch = agent.memory.sample(64)
    np.testing.assert_array_equal(batch.terminal, (batch.state1[:, 0, 0] >= 1.0).astype(np.float32))


def test_same_seed_gives_same_returns_and_weights():
    results = []
    for _ in range(2):
        agent = make_agent(seed=3, policy=BoltzmannQPolicy(seed=3))
        history = agent.fit(make_line_env(), nb_steps=60, verbose=0, seed=3)
        results.append((history.history["episode_reward"], agent.model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_exact_resume_from_a_checkpoint(tmp_path):
    def build():
        return make_agent(seed=5, policy=BoltzmannQPolicy(seed=5), memory=SequentialMemory(limit=500, seed=5))

    env = make_line_env()
    agent = build()
    agent.fit(env, nb_steps=25, verbose=0, seed=5)
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    history = agent.fit(env, nb_steps=30, verbose=0)

    env2 = make_line_env()
    env2.reset(seed=123)
    resumed = build()
    resumed.policy.select_action(q_values=np.zeros(2))  # move its generator: the checkpoint must restore it
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    history2 = resumed.fit(env2, nb_steps=30, verbose=0)
    assert history2.history["episode_reward"] == history.history["episode_reward"]
    for a, b in zip(resumed.model.get_weights(), agent.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed.target_model.get_weights(), agent.target_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    agent.load_checkpoint(tmp_path / "ckpt", env=env)  # into the agent that trained: back to step 25
    assert agent.step == 25


def test_nothing_is_retraced_after_the_first_steps():
    agent = make_agent(nb_steps_warmup=10)
    env = make_line_env()
    agent.fit(env, nb_steps=30, verbose=0)
    agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    traces = agent.trace_count
    assert traces == 3  # acting while training, the training step, acting in test
    agent.fit(env, nb_steps=100, verbose=0)
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert agent.trace_count == traces


def test_save_load_weights_round_trip(tmp_path):
    agent = make_agent()
    agent.fit(make_line_env(), nb_steps=30, verbose=0)
    path = str(tmp_path / "dqn_{}_weights.h5f")
    agent.save_weights(path)
    assert (tmp_path / "dqn_model_weights.weights.h5").exists()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.save_weights(path)
    other = make_agent(seed=1)
    obs = np.array([[0.25, 1.0]], np.float32)
    assert not np.allclose(other.compute_q_values(obs), agent.compute_q_values(obs))
    other.load_weights(path)
    np.testing.assert_array_equal(other.compute_q_values(obs), agent.compute_q_values(obs))
    for t, a in zip(other.target_model.get_weights(), other.model.get_weights()):
        np.testing.assert_array_equal(t, a)


def test_bad_input_fails_early_naming_the_value():
    env = make_line_env()
    with pytest.raises(TypeError, match="memory=None"):
        DQNAgent(model=q_model((2,)), nb_actions=2)
    with pytest.raises(ValueError, match="nb_actions=3"):
        make_agent(nb_actions=3, compile=False)
    with pytest.raises(ValueError, match="dueling_type='mean'"):
        make_agent(enable_dueling_network=True, dueling_type="mean", compile=False)
    with pytest.raises(TypeError, match="policy="):
        make_agent(policy="greedy", compile=False)
    with pytest.raises(ValueError, match="batch_size=0"):
        make_agent(batch_size=0, compile=False)
    with pytest.raises(ValueError, match="gamma=1.5"):
        make_agent(gamma=1.5, compile=False)
    with pytest.raises(TypeError, match="model="):
        DQNAgent(model="net", memory=SequentialMemory(limit=10))
    x_in = keras.Input((1, 2))
    features = layers.Flatten()(x_in)
    two_outputs = keras.Model(x_in, [layers.Dense(2)(features), layers.Dense(2)(features)])
    with pytest.raises(ValueError, match="one output"):
        DQNAgent(model=two_outputs, memory=SequentialMemory(limit=10))
    agent = make_agent()
    box_env = gym.make("Pendulum-v1")
    with pytest.raises(TypeError, match="Discrete"):
        agent.fit(box_env, nb_steps=5, verbose=0)

    class ThreeActions(LineEnv):
        def __init__(self):
            super().__init__()
            self.action_space = gym.spaces.Discrete(3)

    with pytest.raises(ValueError, match="Discrete\\(2\\)"):
        agent.fit(ThreeActions(), nb_steps=5, verbose=0)

    class BadPolicy(GreedyQPolicy):
        def select_action(self, q_values):
            return 7

    agent = make_agent(policy=BadPolicy())
    with pytest.raises(ValueError, match="outside \\[0, 2\\)"):
        agent.fit(env, nb_steps=5, verbose=0)


def test_learns_cartpole_quickly():
    """keras-rl's CartPole configuration (Boltzmann policy, 3 x 16 units) on 3000 steps."""
    from dqn_cartpole import make_agent as make_cartpole_agent
    from dqn_cartpole import make_env

    keras.utils.set_random_seed(0)
    env = make_env()
    agent = make_cartpole_agent(env, seed=0)
    agent.fit(env, nb_steps=3000, verbose=0, seed=0)
    history = agent.test(make_env(), nb_episodes=5, visualize=False, verbose=0, seed=1000)
    assert np.mean(history.history["episode_reward"]) >= 150


@pytest.mark.slow
@pytest.mark.parametrize("example", ["dqn_cartpole", "duel_dqn_cartpole"])
def test_full_examples_reach_195(example, tmp_path):
    module = __import__(example)
    mean_return = module.main(
        ["--verbose", "0", "--weights", str(tmp_path / "w.h5f")],
        **({} if example == "dqn_cartpole" else {"make": module.make_agent, "name": "duel_dqn", "dueling": True}),
    )
    assert mean_return >= 195


def test_the_first_nb_steps_random_draw_actions_uniformly_then_the_policy_acts():
    env = make_line_env(length=50, time_limit=200)
    agent = make_agent(env, nb_steps_random=60, nb_steps_warmup=1000, policy=GreedyQPolicy())
    agent.fit(env, nb_steps=100, verbose=0, seed=0)
    data = agent.memory.to_arrays()
    greedy = agent.compute_batch_q_values(data["observations"][:, None]).argmax(axis=1)
    actions = data["actions"].astype(int)
    assert set(actions[:60]) == {0, 1} and 0.3 < np.mean(actions[:60]) < 0.7  # uniform over 2 actions
    assert np.mean(actions[:60] == greedy[:60]) < 0.8
    np.testing.assert_array_equal(actions[60:], greedy[60:])
    assert agent.get_config()["nb_steps_random"] == 60
