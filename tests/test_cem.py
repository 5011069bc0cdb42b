"""CEMAgent and EpisodeParameterMemory: the memory, the distribution update, single and multi-input models,
the training flag, best weights, seeding, weights files, checkpoints, argument errors and learning."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers

from rl.agents import CEMAgent
from rl.core import Processor
from rl.memory import EpisodeParameterMemory
from rl.processors import MultiInputProcessor


class SignEnv(gym.Env):
    """Observation x uniform in [-1, 1]^2; reward 1 when the action is 1 exactly when x0 + x1 > 0; 20 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x, {}

    def step(self, action):
        self.t += 1
        reward = float(int(action) == int(self.x.sum() > 0))
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return self.x, reward, False, self.t >= 20, {}


def linear_model(input_shapes=((1, 2),), nb_actions=2, activation=None):
    inputs = [keras.Input(s) for s in input_shapes]
    x = [layers.Flatten()(i) for i in inputs]
    x = layers.Concatenate()(x) if len(x) > 1 else x[0]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], layers.Dense(nb_actions, activation=activation)(x))


def make_agent(seed=0, input_shapes=((1, 2),), **kwargs):
    keras.utils.set_random_seed(seed)
    options = dict(batch_size=20, nb_steps_warmup=200, train_interval=10, elite_frac=0.2, seed=seed)
    options.update(kwargs)
    memory = options.pop("memory", None) or EpisodeParameterMemory(limit=100, window_length=1, seed=seed)
    agent = CEMAgent(linear_model(input_shapes), nb_actions=2, memory=memory, **options)
    agent.compile()
    return agent


def model_flat(agent):
    return agent.get_weights_flat(agent.model.get_weights())


# ------------------------------------------------------------------ memory
def test_memory_sums_rewards_per_episode_and_samples_what_it_stored():
    memory = EpisodeParameterMemory(limit=3, seed=0)
    for k, rewards in enumerate([[1.0, 2.0], [0.5], [3.0, 3.0, 3.0], [4.0]]):
        for r in rewards:
            memory.append(None, 0, r, False)
        memory.append(None, 0, 100.0, False, training=False)  # not counted
        memory.finalize_episode(np.full(4, k, np.float32))
    assert memory.nb_entries == 3  # the oldest episode was dropped
    params, returns = memory.sample(3, batch_idxs=[0, 1, 2])  # oldest first
    assert returns == [0.5, 9.0, 4.0]
    assert [float(p[0]) for p in params] == [1.0, 2.0, 3.0]
    params, returns = memory.sample(3)  # without replacement: each stored episode once
    assert sorted(returns) == [0.5, 4.0, 9.0]
    assert all(float(p[0]) == {0.5: 1, 9.0: 2, 4.0: 3}[r] for p, r in zip(params, returns))
    with pytest.warns(UserWarning, match="with replacement"):
        _, returns = memory.sample(7)
    assert len(returns) == 7 and set(returns) <= {0.5, 4.0, 9.0}


def test_memory_sampling_is_seeded_and_errors_name_the_value():
    def draws(seed):
        memory = EpisodeParameterMemory(limit=50, seed=seed)
        for k in range(50):
            memory.append(None, 0, float(k), False)
            memory.finalize_episode(np.zeros(2))
        return memory.sample(10)[1]

    assert draws(1) == draws(1) and draws(1) != draws(2)
    memory = EpisodeParameterMemory(limit=5)
    with pytest.raises(ValueError, match="no finished episode"):
        memory.sample(1)
    memory.finalize_episode(np.zeros(3))
    with pytest.raises(ValueError, match=r"Received: params of shape \(4,\)"):
        memory.finalize_episode(np.zeros(4))
    with pytest.raises(ValueError, match=r"batch_idxs=\[0, 5\]"):
        memory.sample(2, batch_idxs=[0, 5])
    with pytest.raises(ValueError, match="limit=0"):
        EpisodeParameterMemory(limit=0)
    with pytest.raises(TypeError, match="window_length=1.5"):
        EpisodeParameterMemory(limit=5, window_length=1.5)


def test_memory_recent_state_stays_in_its_episode():
    memory = EpisodeParameterMemory(limit=5, window_length=2)
    o1, o2, o3 = np.ones(2), 2 * np.ones(2), 3 * np.ones(2)
    memory.append(o1, 0, 1.0, False)
    np.testing.assert_array_equal(memory.get_recent_state(o2), [o1, o2])
    memory.append(o2, 0, 1.0, False, truncated=True)  # this step ends the episode: o3 is its final observation
    np.testing.assert_array_equal(memory.get_recent_state(o3), [o2, o3])
    memory.append(o3, 0, 0.0, False, training=False)  # keras-rl's extra call on the final observation
    np.testing.assert_array_equal(memory.get_recent_state(o1), [np.zeros(2), o1])  # a new episode starts
    assert memory.get_config() == {
        "window_length": 2,
        "ignore_episode_boundaries": False,
        "limit": 5,
        "seed": None,
    }


def test_memory_save_and_load_restore_contents_and_sampling_state(tmp_path):
    memory = EpisodeParameterMemory(limit=4, seed=3)
    for k in range(6):
        memory.append(None, 0, float(k), False)
        memory.finalize_episode(np.full(2, k, np.float32))
    memory.append(None, 0, 0.25, False)  # an episode under way
    path = tmp_path / "memory.npz"
    memory.save(path)
    other = EpisodeParameterMemory(limit=4, seed=99)
    other.load(path)
    assert other.nb_entries == 4 and other.episode_reward == 0.25
    a, b = memory.sample(3), other.sample(3)
    assert a[1] == b[1] and all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    with pytest.raises(ValueError, match="limit=4"):
        EpisodeParameterMemory(limit=5).load(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="damaged"):
        other.load(path)


# ---------------------------------------------------------- the update
def test_update_refits_the_distribution_to_the_elite():
    agent = make_agent(batch_size=10, elite_frac=0.3, noise_ampl=0.5, noise_decay_const=0.01)
    n = agent.num_weights
    for k in range(10):  # episode k played params k * ones with return k
        agent.memory.append(None, 0, float(k), False)
        agent.memory.finalize_episode(np.full(n, k, np.float32) + np.arange(n) * (k % 2))
    agent.step = 100
    mean_best = agent.update_distribution()  # a batch of 10 from 10 stored episodes: all of them
    elite = np.stack([np.full(n, k, np.float64) + np.arange(n) * (k % 2) for k in (7, 8, 9)])
    assert mean_best == pytest.approx(8.0)
    np.testing.assert_allclose(agent.theta[:n], elite.mean(0), rtol=1e-6)
    np.testing.assert_allclose(agent.theta[n:], elite.std(0) + 0.5 * np.exp(-100 * 0.01), rtol=1e-6)


def test_theta_init_sets_the_first_distribution_and_is_checked():
    keras.utils.set_random_seed(0)
    model = linear_model()
    n = sum(w.size for w in model.get_weights())
    theta = np.concatenate([np.full(n, 3.0), np.zeros(n)])
    agent = CEMAgent(model, 2, EpisodeParameterMemory(10), theta_init=theta)
    np.testing.assert_array_equal(agent.choose_weights(), np.full(n, 3.0))  # zero std: the mean itself
    with pytest.raises(ValueError, match=r"shape \(12,\).*Received: theta_init of shape \(5,\)"):
        CEMAgent(model, 2, EpisodeParameterMemory(10), theta_init=np.zeros(5))
    with pytest.raises(ValueError, match=">= 0"):
        CEMAgent(model, 2, EpisodeParameterMemory(10), theta_init=np.concatenate([np.zeros(n), -np.ones(n)]))


# ------------------------------------------------------------- learning
def test_learns_a_linear_rule():
    agent = make_agent()
    env = SignEnv()
    training = agent.fit(env, nb_steps=4000, verbose=0, seed=0)
    history = agent.test(env, nb_episodes=5, visualize=False, verbose=0, seed=1)
    # Acting at random scores 10 of 20; the rule scores 20.
    assert np.mean(history.history["episode_reward"]) >= 18
    np.testing.assert_array_equal(model_flat(agent), agent.best_seen[1])  # the model holds the best weights
    assert agent.best_seen[0] == max(training.history["episode_reward"])


def test_cartpole_example_short_run_balances(tmp_path):
    from cem_cartpole import main

    # keras-rl's configuration for a fifth of its steps (seed 0); the full run is the slow test below.
    argv = ["--steps", "20000", "--test-episodes", "5", "--verbose", "0", "--weights", str(tmp_path / "cem.h5f")]
    assert main(argv) >= 195


# ------------------------------------------------------------ acting, flags
def test_test_mode_takes_the_argmax_and_training_samples_the_softmax():
    agent = make_agent()
    observation = np.array([0.4, -0.1], np.float32)
    scores = agent.model(observation[None, None]).numpy()[0]
    agent.training = False
    assert {agent.forward(observation) for _ in range(20)} == {int(np.argmax(scores))}
    agent.training = True
    agent._current = agent.get_weights_flat(agent.model.get_weights())  # play the model's own weights
    agent._loaded = None
    actions = [agent.forward(observation) for _ in range(2000)]
    p = np.exp(scores) / np.exp(scores).sum()  # keras-rl's rule: softmax of the scores
    assert np.mean(actions) == pytest.approx(p[1], abs=0.04)


def test_multi_input_model_acts_on_each_input():
    class SplitProcessor(Processor):
        def process_state_batch(self, batch):
            return [batch[..., :1], batch[..., 1:]]

    agent = make_agent(input_shapes=((1, 1), (1, 1)), processor=SplitProcessor())
    env = SignEnv()
    agent.fit(env, nb_steps=400, verbose=0, seed=0)
    observation = np.array([0.7, -0.2], np.float32)
    agent.reset_states()
    scores = agent.scores(observation)
    np.testing.assert_allclose(scores, agent.model([observation[None, None, :1], observation[None, None, 1:]])[0])
    history = agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert len(history.history["episode_reward"]) == 2


def test_window_length_two_feeds_the_last_two_observations():
    keras.utils.set_random_seed(0)
    inp = keras.Input((2, 3))
    model = keras.Model(inp, layers.Dense(2)(layers.Flatten()(inp)))
    agent = CEMAgent(model, 2, EpisodeParameterMemory(limit=10, window_length=2), nb_steps_warmup=5, batch_size=4)
    agent.compile()
    o1, o2 = np.array([1.0, 2.0, 3.0], np.float32), np.array([4.0, 5.0, 6.0], np.float32)
    agent.reset_states()
    np.testing.assert_allclose(agent.scores(o1), model(np.stack([np.zeros(3), o1])[None])[0], rtol=1e-6)
    np.testing.assert_allclose(agent.scores(o2), model(np.stack([o1, o2])[None])[0], rtol=1e-6)
    agent.reset_states()  # a new episode: the window starts from zeros again
    np.testing.assert_allclose(agent.scores(o2), model(np.stack([np.zeros(3), o2])[None])[0], rtol=1e-6)


class TwoRoundEnv(gym.Env):
    """Two decisions: the first picks a branch (observation 1 or 2), the second pays [[0, 3], [1, 2]][branch][a]."""

    observation_space = gym.spaces.Box(0.0, 2.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        if self.state == 0:
            self.state = 1 + int(action)
            return np.array([self.state], np.float32), 0.0, False, False, {}
        reward = [[0.0, 3.0], [1.0, 2.0]][self.state - 1][int(action)]
        return np.array([self.state], np.float32), reward, True, False, {}


def test_two_round_deterministic_rewards_find_the_best_return():
    keras.utils.set_random_seed(123)
    inp = keras.Input((1, 1))
    x = layers.Dense(16, activation="relu")(layers.Flatten()(inp))
    agent = CEMAgent(keras.Model(inp, layers.Dense(2)(x)), 2, EpisodeParameterMemory(limit=1000, seed=123), seed=123)
    agent.compile()
    env = TwoRoundEnv()
    agent.fit(env, nb_steps=2000, verbose=0, seed=123)  # keras-rl's defaults: 1000 warm-up steps, 50 per update
    history = agent.test(env, nb_episodes=20, visualize=False, verbose=0)
    assert history.history["episode_reward"] == [3.0] * 20


class RandomEnv(gym.Env):
    """keras-rl's test env: random observations (one array, or a list of arrays), random rewards and ends."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, shapes):
        self.shapes = shapes

    def _obs(self):
        if isinstance(self.shapes, list):
            return [self.np_random.random(s).astype(np.float32) for s in self.shapes]
        return self.np_random.random(self.shapes).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), float(self.np_random.integers(2)), bool(self.np_random.integers(2)), False, {}


def test_keras_rl_single_and_multi_input_cases_with_windows_of_two():
    keras.utils.set_random_seed(0)
    inp = keras.Input((2, 3))
    model = keras.Model(inp, layers.Dense(2)(layers.Flatten()(inp)))
    agent = CEMAgent(
        model,
        memory=EpisodeParameterMemory(limit=10, window_length=2),
        nb_actions=2,
        nb_steps_warmup=5,
        batch_size=4,
        train_interval=50,
    )
    agent.compile()
    history = agent.fit(RandomEnv((3,)), nb_steps=100, verbose=0, seed=0)
    assert agent.step == 100 and agent.memory.nb_entries == min(10, len(history.history["episode_reward"]))

    input1, input2 = keras.Input((2, 3)), keras.Input((2, 4))
    x = layers.Flatten()(layers.Concatenate()([input1, input2]))
    model = keras.Model([input1, input2], layers.Dense(2)(x))
    agent = CEMAgent(
        model,
        memory=EpisodeParameterMemory(limit=10, window_length=2),
        nb_actions=2,
        nb_steps_warmup=5,
        batch_size=4,
        processor=MultiInputProcessor(nb_inputs=2),
        train_interval=50,
    )
    agent.compile()
    agent.fit(RandomEnv([(3,), (4,)]), nb_steps=100, verbose=0, seed=0)
    assert agent.step == 100
    agent.reset_states()
    first, second = [np.arange(3.0), np.arange(4.0)], [np.ones(3), np.ones(4)]
    agent.scores(agent.processor.process_observation(first))
    scores = agent.scores(agent.processor.process_observation(second))
    expected = model([np.stack([first[0], second[0]])[None], np.stack([first[1], second[1]])[None]])[0]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_plain_observation_input_when_window_length_is_one():
    keras.utils.set_random_seed(0)
    inp = keras.Input((2,))
    agent = CEMAgent(keras.Model(inp, layers.Dense(2)(inp)), 2, EpisodeParameterMemory(10), seed=0)
    agent.compile()
    agent.fit(SignEnv(), nb_steps=60, verbose=0)
    assert agent.memory.nb_entries == 3


def test_test_runs_do_not_store_or_count():
    agent = make_agent()
    agent.test(SignEnv(), nb_episodes=3, visualize=False, verbose=0)
    assert agent.memory.nb_entries == 0 and agent.step == 0 and agent.best_seen[0] == -np.inf


def test_metrics_report_the_elite_mean_at_updates():
    agent = make_agent()
    agent.fit(SignEnv(), nb_steps=1000, verbose=0, seed=0)
    assert agent.metrics_names == ["mean_best_reward"]
    assert agent.get_config()["elite_frac"] == 0.2


# ------------------------------------------------------------------ seeding
def test_same_seeds_give_the_same_run():
    runs = []
    for seed in (5, 5, 6):
        agent = make_agent(seed=seed)
        agent.fit(SignEnv(), nb_steps=1000, verbose=0, seed=seed)
        runs.append((agent.theta.copy(), model_flat(agent)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])


# ---------------------------------------------------------- weights, ckpts
def test_save_and_load_weights_round_trip(tmp_path):
    agent = make_agent()
    agent.fit(SignEnv(), nb_steps=600, verbose=0, seed=0)
    path = str(tmp_path / "cem_params.h5f")
    agent.save_weights(path)
    assert agent.weights_paths(path) == (str(tmp_path / "cem_params_model.weights.h5"),)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.save_weights(path)
    other = make_agent(seed=8)
    other.load_weights(path)
    np.testing.assert_array_equal(model_flat(other), model_flat(agent))
    observation = np.array([0.2, 0.3], np.float32)
    np.testing.assert_array_equal(agent.scores(observation), other.scores(observation))
    with pytest.raises(ValueError, match="does not exist"):
        other.load_weights(str(tmp_path / "missing.h5f"))


def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path):
    env = SignEnv()
    straight = make_agent()
    straight.fit(env, nb_steps=600, verbose=0, seed=0)
    straight.fit(env, nb_steps=600, verbose=0)

    env = SignEnv()
    first = make_agent()
    first.fit(env, nb_steps=600, verbose=0, seed=0)
    first.save_checkpoint(tmp_path / "ckpt", env=env)
    env = SignEnv()
    resumed = make_agent(seed=11)
    resumed.load_checkpoint(tmp_path / "ckpt", env=env)
    resumed.fit(env, nb_steps=600, verbose=0)
    np.testing.assert_array_equal(resumed.theta, straight.theta)
    np.testing.assert_array_equal(model_flat(resumed), model_flat(straight))
    assert resumed.best_seen[0] == straight.best_seen[0] and resumed.memory.nb_entries == straight.memory.nb_entries


# ------------------------------------------------------------------- errors
def test_argument_errors_name_the_value():
    model = linear_model()
    memory = EpisodeParameterMemory(10)
    assert CEMAgent(model, 2, memory, batch_size=4, elite_frac=0.05).num_best == 1  # keras-rl's test setting
    with pytest.raises(ValueError, match="elite_frac=0"):
        CEMAgent(model, 2, memory, elite_frac=0)
    with pytest.raises(ValueError, match="elite_frac=1.5"):
        CEMAgent(model, 2, memory, elite_frac=1.5)
    with pytest.raises(ValueError, match=r"\(None, 3\).*nb_actions=3"):
        CEMAgent(model, 3, memory)
    with pytest.raises(TypeError, match="memory="):
        CEMAgent(model, 2, [])
    with pytest.raises(TypeError, match="model="):
        CEMAgent("model", 2, memory)
    with pytest.raises(ValueError, match="train_interval=0"):
        CEMAgent(model, 2, memory, train_interval=0)
    with pytest.raises(ValueError, match="noise_ampl=-1"):
        CEMAgent(model, 2, memory, noise_ampl=-1)


def test_env_and_observation_errors():
    agent = make_agent()
    box = SignEnv()
    box.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(ValueError, match=r"Discrete\(2\).*Received: env.action_space=Box"):
        agent.fit(box, nb_steps=10, verbose=0)
    with pytest.raises(ValueError, match=r"does not fit the model's input shape.*\(3,\)"):
        agent.forward(np.zeros(3, np.float32))


# ---------------------------------------------------------------- the example
@pytest.mark.slow
def test_cem_cartpole_example_balances(tmp_path):
    from cem_cartpole import main

    assert main(["--verbose", "0", "--weights", str(tmp_path / "cem.h5f")]) >= 195
