"""The behaviours keras-rl's own test suite checks, as properties of this library.

One test (or a few) per case of keras-rl's `tests/rl/test_core.py`, `test_memory.py`,
`test_util.py`, `tests/rl/agents/test_ddpg.py` and `tests/integration/test_continuous.py`
(DDPG): observation copying, recent-state windows with and without episode boundaries, the
`training` flag, sampling by index, model and optimizer cloning, the Huber loss, whitening, single-
and multi-input DDPG and the continuous integration run. Environments follow gymnasium's API
and optimizers Keras 3's (`learning_rate=`), the two changes keras-rl code needs.
"""

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers
from numpy.testing import assert_allclose

from rl.agents import DDPGAgent
from rl.core import Agent, Processor
from rl.memory import Experience, RingBuffer, SequentialMemory
from rl.processors import MultiInputProcessor
from rl.random import OrnsteinUhlenbeckProcess
from rl.util import WhiteningNormalizer, clone_model, clone_optimizer, huber_loss


# ------------------------------------------------------------------ helpers
class StepCountEnv(gym.Env):
    """Observations 1, 2, ..., 6 (0-d arrays); reward `obs / 10`; terminates at 6."""

    observation_space = gym.spaces.Box(0.0, 10.0, shape=(), dtype=np.float64)
    action_space = gym.spaces.Box(0.0, 10.0, shape=(), dtype=np.float64)

    def __init__(self, sent=None):
        self.sent = sent  # every observation returned by `step`, as sent

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 1
        return np.array(self.state), {}

    def step(self, action):
        self.state += 1
        obs = np.array(self.state)
        if self.sent is not None:
            self.sent.append(obs)
        return obs, self.state / 10.0, self.state >= 6, False, {}


class EchoAgent(Agent):
    """An agent as keras-rl users wrote them: acts its observation, appends keras-rl's way."""

    def __init__(self, memory, **kwargs):
        super().__init__(**kwargs)
        self.memory = memory

    def forward(self, observation):
        self.recent_observation = observation
        self.recent_action = observation
        return observation

    def backward(self, reward, terminal):
        self.memory.append(self.recent_observation, self.recent_action, reward, terminal)
        return [np.nan for _ in self.metrics_names]

    def compile(self):
        self.compiled = True


class RandomObsEnv(gym.Env):
    """Random observations (one array, or a list of arrays), random rewards and terminations."""

    def __init__(self, shapes, seed=0):
        self.shapes = shapes
        if isinstance(shapes, list):
            self.observation_space = gym.spaces.Tuple([gym.spaces.Box(0.0, 1.0, s) for s in shapes])
        else:
            self.observation_space = gym.spaces.Box(0.0, 1.0, shapes)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,))
        self.rng = np.random.default_rng(seed)

    def _obs(self):
        if isinstance(self.shapes, list):
            return [self.rng.random(s) for s in self.shapes]
        return self.rng.random(self.shapes)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(self.rng.integers(2)), bool(self.rng.integers(2)), False, {}


def observations(n, shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random(shape) for _ in range(n)]


# ---------------------------------------------------------------- test_core
def test_fit_stores_keras_rl_windows_of_observations():
    memory = SequentialMemory(100, window_length=2, ignore_episode_boundaries=False, seed=0)
    agent = EchoAgent(memory)
    agent.compile()
    agent.fit(StepCountEnv(), 20, verbose=0)

    # Slots in order: episode 1 is 1, 2, 3, 4, 5, 6 (6 its final observation), then 1, 2, ...
    exp = memory.sample(batch_size=6, batch_idxs=range(2, 8))
    assert exp[0].reward == pytest.approx(0.4) and exp[0].action == 3 and exp[0].terminal1 is False
    assert_allclose(exp[0].state0, [2, 3])
    assert_allclose(exp[0].state1, [3, 4])
    assert exp[1].reward == pytest.approx(0.5) and exp[1].action == 4 and exp[1].terminal1 is False
    assert_allclose(exp[1].state0, [3, 4])
    assert_allclose(exp[1].state1, [4, 5])
    assert exp[2].reward == pytest.approx(0.6) and exp[2].action == 5 and exp[2].terminal1 is True
    assert_allclose(exp[2].state0, [4, 5])
    assert_allclose(exp[2].state1, [5, 6])
    # Slot 5 holds the final observation 6, which starts no transition: it was drawn again.
    assert not np.array_equal(exp[3].state0, [5, 6])
    assert exp[3].state1[-1] != 1  # no transition crosses into the next episode
    # A new episode: the window is zero-padded, never reaching into the previous episode.
    assert exp[4].reward == pytest.approx(0.2) and exp[4].action == 1 and exp[4].terminal1 is False
    assert_allclose(exp[4].state0, [0, 1])
    assert_allclose(exp[4].state1, [1, 2])
    assert exp[5].reward == pytest.approx(0.3) and exp[5].action == 2
    assert_allclose(exp[5].state0, [1, 2])
    assert_allclose(exp[5].state1, [2, 3])


@pytest.mark.parametrize("method", ["fit", "test"])
def test_processor_sees_copies_of_the_observations(method):
    sent, seen = [], []

    class RecordingProcessor(Processor):
        def process_step(self, observation, reward, done, info):
            seen.append(observation)
            return observation, reward, done, info

    agent = EchoAgent(SequentialMemory(100, window_length=1), processor=RecordingProcessor())
    agent.compile()
    if method == "fit":
        agent.fit(StepCountEnv(sent), 20, verbose=0)
    else:
        agent.test(StepCountEnv(sent), 4, verbose=0, visualize=False)
    assert len(seen) == len(sent) == 20
    assert_allclose(np.array(seen), np.array(sent))
    # The loop hands the agent copies: changing the env's arrays afterwards changes nothing kept.
    assert all(agent.recent_observation is not obs for obs in sent)
    for obs in sent:
        obs += 100
    if method == "fit":
        stored = agent.memory.sample_experiences(1, batch_idxs=[1])[0]  # slot 1: the first step's observation
        assert stored.state0[-1] == 2


# -------------------------------------------------------------- test_memory
def test_ring_buffer_keeps_the_newest_items_in_order():
    buffer = RingBuffer(maxlen=5)
    assert len(buffer) == 0
    for value in range(1, 9):
        buffer.append(value)
        expected = list(range(max(1, value - 4), value + 1))
        assert len(buffer) == buffer.length() == len(expected)
        assert [buffer[i] for i in range(len(buffer))] == expected
    with pytest.raises(KeyError):
        buffer[5]
    with pytest.raises(IndexError):
        buffer[-1]


def test_get_recent_state_stops_at_episode_boundaries():
    memory = SequentialMemory(3, window_length=2, ignore_episode_boundaries=False)
    obs = observations(7)
    # append(observation, action, reward, terminal): `terminal` is whether the step that
    # followed `observation` ended the episode; obs[3] and obs[5] are final observations.
    ends = [False, False, True, False, True, False]
    state = np.array(memory.get_recent_state(obs[0]))
    assert state.shape == (2, 3, 4)
    assert_allclose(state[0], 0.0)
    assert_allclose(state[1], obs[0])
    expected_first = [obs[0], obs[1], obs[2], None, obs[4], None]
    for k in range(6):
        memory.append(obs[k], 0, 0.0, ends[k])
        state = np.array(memory.get_recent_state(obs[k + 1]))
        assert state.shape == (2, 3, 4)
        first = expected_first[k]
        assert_allclose(state[0], np.zeros((3, 4)) if first is None else first)
        assert_allclose(state[1], obs[k + 1])


def test_get_recent_state_ignores_episode_boundaries_when_asked():
    memory = SequentialMemory(3, window_length=2, ignore_episode_boundaries=True)
    obs = observations(7, seed=1)
    ends = [False, False, True, False, True, False]
    assert_allclose(np.array(memory.get_recent_state(obs[0]))[0], 0.0)
    for k in range(6):
        memory.append(obs[k], 0, 0.0, ends[k])
        state = np.array(memory.get_recent_state(obs[k + 1]))
        assert_allclose(state[0], obs[k])  # always the previous observation
        assert_allclose(state[1], obs[k + 1])


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_stores_only_while_training(training):
    memory = SequentialMemory(10, window_length=2)
    obs = observations(4, seed=2)
    ends = [True, False, False]
    for k in range(3):
        memory.append(obs[k], 0, 0.0, ends[k], training=training)
    # The recent state is the same either way: obs[1] was the final observation of episode 1.
    state = np.array(memory.get_recent_state(obs[3]))
    assert_allclose(state[0], obs[2])
    assert_allclose(state[1], obs[3])
    # Stored: obs[0] -> obs[1] (terminal), then obs[2] waits for its next observation; nb_entries
    # counts the stored observations as keras-rl did, obs[2] included: 3.
    assert memory.nb_entries == (3 if training else 0)
    assert memory.nb_transitions == (1 if training else 0)


def test_sampling_by_index_redraws_transitions_that_start_at_an_episode_end():
    memory = SequentialMemory(100, window_length=2, ignore_episode_boundaries=False, seed=0)
    rng = np.random.default_rng(3)
    obs = observations(7, seed=3)
    actions = rng.integers(0, 5, size=7)
    rewards = rng.random(7)
    ends = [False, False, True, False, False, False]  # obs[3] is episode 1's final observation
    for k in range(6):
        memory.append(obs[k], actions[k], rewards[k], ends[k])
    assert memory.nb_entries == 6  # obs[0..5]; obs[5]'s own transition waits for its next observation
    assert memory.nb_transitions == 4

    exp = memory.sample(batch_size=3, batch_idxs=[2, 3, 4])
    assert len(exp) == 3
    assert_allclose(exp[0].state0, [obs[1], obs[2]], rtol=1e-6)
    assert_allclose(exp[0].state1, [obs[2], obs[3]], rtol=1e-6)
    assert exp[0].action == actions[2]
    assert exp[0].reward == pytest.approx(rewards[2], rel=1e-6)
    assert exp[0].terminal1 is True
    # Slot 3 (the final observation) starts no transition: another one was drawn.
    assert not np.allclose(exp[1].state0, [obs[2], obs[3]])
    assert_allclose(exp[2].state0, [np.zeros((3, 4)), obs[4]], rtol=1e-6)
    assert_allclose(exp[2].state1, [obs[4], obs[5]], rtol=1e-6)
    assert exp[2].action == actions[4]
    assert exp[2].reward == pytest.approx(rewards[4], rel=1e-6)
    assert exp[2].terminal1 is False
    # A random draw is keras-rl's list of Experiences too, and never starts at a final observation.
    drawn = memory.sample(batch_size=32)
    assert len(drawn) == 32 and all(isinstance(e, Experience) for e in drawn)
    assert all(not np.allclose(e.state0[-1], obs[3]) for e in drawn)


def test_sampling_by_index_refuses_positions_out_of_range():
    memory = SequentialMemory(10, window_length=1)
    memory.append(np.zeros(2), 0.0, 1.0, False, next_observation=np.ones(2))
    with pytest.raises(ValueError, match="batch_idxs"):
        memory.sample(2, batch_idxs=[0, 5])
    batch = memory.sample(1, batch_idxs=[0])  # this library's appends: a Batch of arrays
    assert_allclose(batch.state1[0, 0], np.ones(2))


# ---------------------------------------------------------------- test_util
def test_clone_sequential_model_predicts_the_same_and_shares_nothing():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2), layers.Activation("tanh")])
    clone = clone_model(model)
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    assert_allclose(model(x), clone(x), rtol=1e-6)
    clone.layers[0].kernel.assign(np.zeros((3, 2)))
    assert not np.allclose(model.layers[0].kernel.numpy(), 0.0)


def test_clone_functional_model_predicts_the_same():
    keras.utils.set_random_seed(1)
    a, b = keras.Input((3,)), keras.Input((2,))
    model = keras.Model([a, b], layers.Dense(1)(layers.Concatenate()([layers.Dense(4)(a), b])))
    clone = clone_model(model)
    x = [np.ones((2, 3), np.float32), np.full((2, 2), 0.5, np.float32)]
    assert clone(x).shape == (2, 1)
    assert_allclose(model(x), clone(x), rtol=1e-6)


def test_clone_optimizer_keeps_its_configuration():
    optimizer = keras.optimizers.SGD(learning_rate=0.25, momentum=0.5, clipnorm=0.75)
    clone = clone_optimizer(optimizer)
    assert type(clone) is keras.optimizers.SGD and clone is not optimizer
    assert float(clone.learning_rate) == pytest.approx(0.25)
    assert clone.momentum == pytest.approx(0.5)
    assert clone.clipnorm == pytest.approx(0.75)
    optimizer = keras.optimizers.SGD(learning_rate=0.25, clipvalue=0.3)
    assert clone_optimizer(optimizer).clipvalue == pytest.approx(0.3)


def test_keras_3_refuses_clipnorm_with_clipvalue():
    # keras-rl's test set both; Keras 3 allows one of them (docs/migration.md).
    with pytest.raises(ValueError, match="clipnorm"):
        keras.optimizers.SGD(learning_rate=0.1, clipnorm=1.0, clipvalue=0.5)


def test_clone_optimizer_from_its_name():
    assert isinstance(clone_optimizer("sgd"), keras.optimizers.SGD)


def test_huber_loss_values():
    y_true, y_pred = np.array([1.0, 1.5, 1.2, 1.7]), np.array([1.5, 1.0, 3.2, -0.3])
    assert_allclose(huber_loss(y_true, y_pred, 1.0), [0.125, 0.125, 1.5, 1.5])
    assert_allclose(huber_loss(y_true, y_pred, 3.0), [0.125, 0.125, 2.0, 2.0])
    assert_allclose(huber_loss(y_true, y_pred, np.inf), [0.125, 0.125, 2.0, 2.0])
    with pytest.raises(ValueError, match="clip_value"):
        huber_loss(y_true, y_pred, 0.0)


def test_whitening_normalizer_whitens_and_inverts():
    x = np.random.default_rng(4).normal(loc=3.0, scale=[0.5, 2.0, 4.0, 8.0, 16.0], size=(1000, 5))
    normalizer = WhiteningNormalizer(shape=(5,))
    for chunk in np.split(x, [1, 10, 400]):  # batches of any size, one sample included
        normalizer.update(chunk)
    assert_allclose(normalizer.mean, x.mean(axis=0))
    assert_allclose(normalizer.std, x.std(axis=0))
    white = normalizer.normalize(x)
    assert_allclose(white.mean(axis=0), 0.0, atol=1e-9)
    assert_allclose(white.std(axis=0), 1.0, atol=1e-9)
    assert_allclose(normalizer.denormalize(white), x)


# ------------------------------------------------------ agents/test_ddpg.py
def _fit_ddpg(actor, critic, action_input, env, processor=None):
    memory = SequentialMemory(limit=10, window_length=2, seed=0)
    agent = DDPGAgent(
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=memory,
        nb_actions=2,
        nb_steps_warmup_critic=5,
        nb_steps_warmup_actor=5,
        batch_size=4,
        processor=processor,
    )
    agent.compile("sgd")
    history = agent.fit(env, nb_steps=10, verbose=0)
    return agent, history


def test_ddpg_with_one_observation_input_trains():
    keras.utils.set_random_seed(0)
    actor = keras.Sequential([keras.Input((2, 3)), layers.Flatten(), layers.Dense(2)])
    action_input = keras.Input((2,), name="action_input")
    observation_input = keras.Input((2, 3), name="observation_input")
    x = layers.Dense(1)(layers.Concatenate()([action_input, layers.Flatten()(observation_input)]))
    critic = keras.Model([action_input, observation_input], x)
    before = critic.get_weights()
    agent, history = _fit_ddpg(actor, critic, action_input, RandomObsEnv((3,)))
    assert agent.step == 10 and sum(history.history["nb_episode_steps"]) <= 10
    agent.test(RandomObsEnv((3,)), nb_episodes=1, verbose=0, visualize=False)  # weights back in the models
    assert any(not np.allclose(a, b) for a, b in zip(before, critic.get_weights()))  # the critic trained


def test_ddpg_with_two_observation_inputs_trains():
    keras.utils.set_random_seed(0)
    a1, a2 = keras.Input((2, 3)), keras.Input((2, 4))
    actor = keras.Model([a1, a2], layers.Dense(2)(layers.Flatten()(layers.Concatenate()([a1, a2]))))
    action_input = keras.Input((2,))
    c1, c2 = keras.Input((2, 3)), keras.Input((2, 4))
    x = layers.Concatenate()([action_input, layers.Flatten()(layers.Concatenate()([c1, c2]))])
    critic = keras.Model([action_input, c1, c2], layers.Dense(1)(x))
    before = critic.get_weights()
    env = RandomObsEnv([(3,), (4,)])
    agent, _ = _fit_ddpg(actor, critic, action_input, env, processor=MultiInputProcessor(nb_inputs=2))
    assert agent.step == 10
    agent.test(env, nb_episodes=1, verbose=0, visualize=False)
    assert any(not np.allclose(a, b) for a, b in zip(before, critic.get_weights()))
    action = agent.forward(agent.processor.process_observation(env._obs()))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)


# ------------------------------------------------ integration/test_continuous
def test_ddpg_on_pendulum_runs_through_fit_and_test():
    env = gym.make("Pendulum-v1")
    keras.utils.set_random_seed(123)
    nb_actions = env.action_space.shape[0]
    actor = keras.Sequential(
        [
            keras.Input((1,) + env.observation_space.shape),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(nb_actions),
        ]
    )
    action_input = keras.Input((nb_actions,), name="action_input")
    observation_input = keras.Input((1,) + env.observation_space.shape, name="observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(observation_input)])
    critic = keras.Model([action_input, observation_input], layers.Dense(1)(layers.Dense(16, activation="relu")(x)))
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=1000, window_length=1, seed=123),
        nb_steps_warmup_critic=50,
        nb_steps_warmup_actor=50,
        random_process=OrnsteinUhlenbeckProcess(theta=0.15, mu=0.0, sigma=0.3, seed=123),
        gamma=0.99,
        target_model_update=1e-3,
    )
    agent.compile([keras.optimizers.Adam(learning_rate=1e-3), keras.optimizers.Adam(learning_rate=1e-3)])
    train = agent.fit(env, nb_steps=400, visualize=False, verbose=0, nb_max_episode_steps=100, seed=123)
    assert train.history["nb_episode_steps"] == [100] * 4
    result = agent.test(env, nb_episodes=2, visualize=False, nb_max_episode_steps=100, verbose=0)
    assert result.history["nb_episode_steps"] == [100, 100]
    # Pendulum's rewards lie in [-16.3, 0]: 100 steps give a return in [-1630, 0].
    assert all(-1630.0 <= r <= 0.0 for r in result.history["episode_reward"])
