"""NAFAgent (ContinuousDQNAgent): the quadratic advantage, single and multi-input models, full and diagonal
covariance, the training flag, truncation, seeding, weights, checkpoints, argument errors and learning."""

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from rl.agents import ContinuousDQNAgent, NAFAgent
from rl.core import Processor
from rl.engine import Nets, VariableWeights
from rl.memory import SequentialMemory
from rl.processors import MultiInputProcessor
from rl.random import GaussianWhiteNoiseProcess


class TargetEnv(gym.Env):
    """Observation x uniform in [-1, 1]^A; reward -|a - x|^2 (the best action is x); 10 steps, then truncated."""

    def __init__(self, nb_actions=1):
        self.nb_actions = nb_actions
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (nb_actions,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (nb_actions,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.x = self.np_random.uniform(-1, 1, self.nb_actions).astype(np.float32)
        return self.x, {}

    def step(self, action):
        self.t += 1
        reward = -float(np.sum((np.asarray(action) - self.x) ** 2))
        self.x = self.np_random.uniform(-1, 1, self.nb_actions).astype(np.float32)
        return self.x, reward, False, self.t >= 10, {}


class ConstantEnv(gym.Env):
    """The same observation every step, reward 1; the episode ends after 5 steps, by `terminated` or `truncated`."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, terminate):
        self.terminate = terminate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.ones(1, np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t >= 5
        return np.ones(1, np.float32), 1.0, end and self.terminate, end and not self.terminate, {}


def mlp(input_shapes, units, hidden=16, name=None):
    """A Flatten-Dense model over one or more observation inputs."""
    inputs = [keras.Input(shape) for shape in input_shapes]
    x = [layers.Flatten()(i) for i in inputs]
    x = layers.Concatenate()(x) if len(x) > 1 else x[0]
    x = layers.Dense(hidden, activation="relu")(x)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], layers.Dense(units)(x), name=name)


def naf_models(nb_actions=1, obs_shapes=((1, 1),), mode="full", l_takes_action=False):
    entries = nb_actions * (nb_actions + 1) // 2 if mode == "full" else nb_actions
    V, mu = mlp(obs_shapes, 1, name="V"), mlp(obs_shapes, nb_actions, name="mu")
    if l_takes_action:
        action_in = keras.Input((nb_actions,))
        obs_in = [keras.Input(s) for s in obs_shapes]
        x = layers.Concatenate()([action_in] + [layers.Flatten()(o) for o in obs_in])
        L = keras.Model([action_in] + obs_in, layers.Dense(entries)(layers.Dense(16, activation="relu")(x)), name="L")
    else:
        L = mlp(obs_shapes, entries, name="L")
    return V, L, mu


def make_agent(nb_actions=1, mode="full", seed=0, obs_shapes=((1, 1),), l_takes_action=False, lr=1e-3, **kwargs):
    keras.utils.set_random_seed(seed)
    V, L, mu = naf_models(nb_actions, obs_shapes, mode, l_takes_action)
    options = dict(
        random_process=GaussianWhiteNoiseProcess(sigma=0.5, size=nb_actions, seed=seed),
        covariance_mode=mode,
        nb_actions=nb_actions,
        memory=SequentialMemory(5000, seed=seed),
        nb_steps_warmup=100,
        gamma=0.9,
        target_model_update=0.01,
    )
    options.update(kwargs)
    agent = NAFAgent(V, L, mu, **options)
    agent.compile(keras.optimizers.Adam(learning_rate=lr))
    return agent


def weights(agent):
    agent.sync_models()
    return [w.copy() for role in ("mu", "V", "L", "target_V") for w in agent.models[role].get_weights()]


# ------------------------------------------------------------------ the maths
@pytest.mark.parametrize("mode", ["full", "diag"])
def test_advantage_is_minus_half_the_quadratic_form_of_l_l_transposed(mode):
    nb_actions, batch = 3, 5
    agent = make_agent(nb_actions, mode, obs_shapes=((1, 3),))
    rng = np.random.default_rng(0)
    entries = 6 if mode == "full" else 3
    l_out = rng.normal(size=(batch, entries)).astype(np.float32)
    mu, a = rng.normal(size=(2, batch, nb_actions)).astype(np.float32)
    got = agent.advantage(tf.constant(l_out), tf.constant(mu), tf.constant(a)).numpy()
    for b in range(batch):
        lower = np.zeros((nb_actions, nb_actions))
        if mode == "full":
            lower[np.tril_indices(nb_actions)] = l_out[b]  # row by row
        else:
            lower[np.diag_indices(nb_actions)] = l_out[b]
        lower[np.diag_indices(nb_actions)] = np.exp(np.diag(lower)) + 1e-7
        d = a[b] - mu[b]
        np.testing.assert_allclose(got[b], -0.5 * d @ lower @ lower.T @ d, rtol=1e-5)


def test_the_greedy_action_maximises_q():
    agent = make_agent(2, "full", obs_shapes=((1, 2),))
    states = tf.constant(np.random.default_rng(1).normal(size=(4, 1, 2)).astype(np.float32))
    nets = Nets({role: VariableWeights(model) for role, model in agent.models.items()})  # the models' own weights
    mu = agent.models["mu"](states)
    q_mu = agent.q_values(nets, states, mu).numpy()
    np.testing.assert_allclose(q_mu, agent.models["V"](states)[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    for shift in ([0.1, 0.0], [0.0, -0.3], [1.0, 1.0]):
        assert (agent.q_values(nets, states, mu + np.float32(shift)).numpy() < q_mu).all()


# ----------------------------------------------------------------- learning
@pytest.mark.parametrize("mode", ["full", "diag"])
def test_learns_to_hit_a_moving_target_in_two_dimensions(mode):
    agent = make_agent(2, mode, obs_shapes=((1, 2),))
    env = TargetEnv(2)
    agent.fit(env, nb_steps=2000, verbose=0, seed=0)
    history = agent.test(env, nb_episodes=5, visualize=False, verbose=0, seed=1)
    # Acting at random in [-2, 2]^2 returns about -10 * 2 * (4/3 + 1/3) = -33 per episode; the target -0.
    assert np.mean(history.history["episode_reward"]) > -0.5


def test_a_truncation_bootstraps_and_a_termination_does_not():
    # Reward 1 per step from one constant state, gamma 0.5. Bootstrapping through the truncation makes
    # V = 1 / (1 - 0.5) = 2; with terminations V is the mean over the 5 positions of 1 + 0.5 + ... < 2.
    values = {}
    for terminate in (False, True):
        agent = make_agent(1, gamma=0.5, nb_steps_warmup=50, random_process=None, target_model_update=0.05, lr=1e-2)
        agent.fit(ConstantEnv(terminate), nb_steps=1500, verbose=0, seed=0)
        values[terminate] = float(agent.V_model(np.ones((1, 1, 1), np.float32))[0, 0])
    assert abs(values[False] - 2.0) < 0.15
    expected = np.mean([sum(0.5**k for k in range(n)) for n in range(1, 6)])  # 1.55
    assert abs(values[True] - expected) < 0.15


# ------------------------------------------------------------ multi-input
class SplitProcessor(Processor):
    """Feeds the two observation components to two model inputs."""

    def process_state_batch(self, batch):
        return [batch[..., :1], batch[..., 1:]]


@pytest.mark.parametrize("l_takes_action", [False, True])
def test_multi_input_models_train_and_act(l_takes_action):
    agent = make_agent(
        2, "full", obs_shapes=((1, 1), (1, 1)), l_takes_action=l_takes_action, processor=SplitProcessor()
    )
    env = TargetEnv(2)
    agent.fit(env, nb_steps=300, verbose=0, seed=0)
    assert np.isfinite(agent.history.history["episode_reward"]).all()
    assert np.isfinite(agent._last_metrics[0])  # the loss of a real training call
    observation = np.array([0.3, -0.2], np.float32)
    agent.reset_states()
    action = agent.forward(observation)  # test mode: the greedy action
    expected = agent.mu_model([observation[None, None, :1], observation[None, None, 1:]])[0].numpy()
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)


class ListObservationEnv(TargetEnv):
    """TargetEnv whose observations are lists of two arrays (keras-rl's multi-input observations)."""

    def reset(self, *, seed=None, options=None):
        x, info = super().reset(seed=seed)
        return [x[:1], x[1:]], info

    def step(self, action):
        x, reward, terminated, truncated, info = super().step(action)
        return [x[:1], x[1:]], reward, terminated, truncated, info


def test_list_observations_through_multi_input_processor():
    agent = make_agent(2, "full", obs_shapes=((1, 1), (1, 1)), processor=MultiInputProcessor(nb_inputs=2))
    agent.fit(ListObservationEnv(2), nb_steps=300, verbose=0, seed=0)
    assert np.isfinite(agent._last_metrics[0])
    agent.reset_states()
    observation = agent.processor.process_observation([np.array([0.3]), np.array([-0.2])])
    expected = agent.mu_model([np.array([[[0.3]]]), np.array([[[-0.2]]])])[0].numpy()
    np.testing.assert_allclose(agent.forward(observation), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ acting, flags
def test_test_mode_acts_with_mu_and_training_adds_the_noise():
    agent = make_agent(1)
    observation = np.array([0.5], np.float32)
    greedy = agent.mu_model(observation[None, None])[0].numpy()
    agent.training = False
    np.testing.assert_allclose(agent.forward(observation), np.clip(greedy, -2, 2), rtol=1e-5)
    agent.training = True
    noisy = [agent.forward(observation) for _ in range(5)]
    assert all(abs(float(n[0]) - float(greedy[0])) > 1e-6 for n in noisy)
    assert all(-2.0 <= float(n[0]) <= 2.0 for n in noisy)  # clipped to the action space


def test_backward_in_test_mode_stores_nothing():
    agent = make_agent(1)
    env = TargetEnv(1)
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert agent.memory.nb_entries == 0 and agent.step == 0


def test_metrics_names_and_config():
    agent = make_agent(1)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    assert agent.metrics_names == ["loss", "mean_q", "mae"]
    config = agent.get_config()
    assert config["covariance_mode"] == "full" and config["nb_steps_warmup"] == 100
    assert config["target_model_update"] == 0.01 and config["gamma"] == 0.9


def test_keras_rl_defaults_and_alias():
    V, L, mu = naf_models(1)
    agent = ContinuousDQNAgent(V, L, mu, memory=SequentialMemory(1000))
    assert ContinuousDQNAgent is NAFAgent
    assert agent.nb_actions == 1  # read from mu_model's output
    assert (agent.gamma, agent.batch_size, agent.nb_steps_warmup) == (0.99, 32, 1000)
    assert agent.target_model_update == 10000 and agent.delta_clip == np.inf
    assert agent.layers == [mu, V, L]


def test_positional_arguments_mean_what_they_meant_in_keras_rl():
    V, L, mu = naf_models(1, mode="diag")
    noise = GaussianWhiteNoiseProcess(sigma=0.1, size=1)
    memory = SequentialMemory(1000)
    agent = NAFAgent(V, L, mu, noise, "diag", 1, memory, 0.95, 16)
    assert agent.random_process is noise and agent.covariance_mode == "diag"
    assert (agent.nb_actions, agent.memory, agent.gamma, agent.batch_size) == (1, memory, 0.95, 16)


def test_delta_range_is_deprecated_for_delta_clip():
    V, L, mu = naf_models(1)
    with pytest.warns(DeprecationWarning, match="delta_clip"):
        agent = NAFAgent(V, L, mu, memory=SequentialMemory(1000), delta_range=(-1.0, 1.0))
    assert agent.delta_clip == 1.0


# ------------------------------------------------------------------ seeding
def test_same_seeds_give_the_same_run():
    runs = []
    for _ in range(2):
        agent = make_agent(1, seed=3)
        agent.fit(TargetEnv(1), nb_steps=250, verbose=0, seed=3)
        runs.append(weights(agent))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = make_agent(1, seed=4)
    other.fit(TargetEnv(1), nb_steps=250, verbose=0, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0], weights(other)))


# ---------------------------------------------------------- weights, ckpts
def test_save_and_load_weights_round_trip(tmp_path):
    agent = make_agent(1)
    agent.fit(TargetEnv(1), nb_steps=300, verbose=0, seed=0)
    path = str(tmp_path / "cdqn_{}_weights.h5f")
    agent.save_weights(path)
    assert agent.weights_paths(path) == tuple(str(tmp_path / f"cdqn_{r}_weights.weights.h5") for r in ("mu", "V", "L"))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.save_weights(path)
    other = make_agent(1, seed=7)
    other.load_weights(path)
    for role in ("mu", "V", "L"):
        for a, b in zip(agent.models[role].get_weights(), other.models[role].get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(other.V_model.get_weights(), other.target_V_model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the target starts from the loaded V
    observation = np.array([0.1], np.float32)
    np.testing.assert_array_equal(agent.forward(observation), other.forward(observation))


def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path):
    env = TargetEnv(1)
    straight = make_agent(1)
    straight.fit(env, nb_steps=200, verbose=0, seed=0)
    straight.fit(env, nb_steps=150, verbose=0)

    env = TargetEnv(1)
    first = make_agent(1)
    first.fit(env, nb_steps=200, verbose=0, seed=0)
    first.save_checkpoint(tmp_path / "ckpt", env=env)
    env = TargetEnv(1)
    resumed = make_agent(1, seed=9)  # other initial weights and noise: the checkpoint restores them
    resumed.random_process = GaussianWhiteNoiseProcess(sigma=0.5, size=1, seed=9)
    resumed.load_checkpoint(tmp_path / "ckpt", env=env)
    resumed.fit(env, nb_steps=150, verbose=0)
    assert resumed.step == straight.step == 350
    for a, b in zip(weights(straight), weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- errors
def test_argument_errors_name_the_value():
    V, L, mu = naf_models(1)
    memory = SequentialMemory(1000)
    with pytest.raises(ValueError, match="covariance_mode='cholesky'"):
        NAFAgent(V, L, mu, covariance_mode="cholesky", memory=memory)
    with pytest.raises(TypeError, match="memory=None"):
        NAFAgent(V, L, mu)
    with pytest.raises(TypeError, match="V_model="):
        NAFAgent("V", L, mu, memory=memory)
    with pytest.raises(ValueError, match=r"L_model.*\(None, 3\).*covariance_mode='full', nb_actions=2"):
        NAFAgent(*naf_models(2, obs_shapes=((1, 2),), mode="diag"), memory=memory)
    with pytest.raises(ValueError, match=r"V_model.*\(None, 1\)"):
        NAFAgent(mlp([(1, 1)], 2), L, mu, memory=memory)
    with pytest.raises(ValueError, match="mu_model"):
        NAFAgent(V, L, mu, nb_actions=2, memory=memory)
    with pytest.raises(ValueError, match=r"batch_size.*Received: batch_size=0"):
        NAFAgent(V, L, mu, memory=memory, batch_size=0)
    with pytest.raises(ValueError, match="nb_steps_warmup=-1"):
        NAFAgent(V, L, mu, memory=memory, nb_steps_warmup=-1)
    with pytest.raises(ValueError, match="gamma=1.5"):
        NAFAgent(V, L, mu, memory=memory, gamma=1.5)


def test_model_structure_errors():
    memory = SequentialMemory(1000)
    V, L, mu = naf_models(1)
    two_input_V = mlp([(1, 1), (1, 1)], 1)
    with pytest.raises(ValueError, match="same observation inputs"):
        NAFAgent(two_input_V, L, mu, memory=memory)
    wrong_action = keras.Input((3,))
    obs = keras.Input((1, 1))
    L_bad = keras.Model(
        [wrong_action, obs], layers.Dense(1)(layers.Concatenate()([wrong_action, layers.Flatten()(obs)]))
    )
    with pytest.raises(ValueError, match=r"first input takes the action.*\(None, 3\)"):
        NAFAgent(V, L_bad, mu, memory=memory)
    trunk_in = keras.Input((1, 1))
    trunk = layers.Dense(8, activation="relu")(layers.Flatten()(trunk_in))
    shared_V = keras.Model(trunk_in, layers.Dense(1)(trunk))
    shared_mu = keras.Model(trunk_in, layers.Dense(1)(trunk))
    with pytest.raises(ValueError, match="share the weight"):
        NAFAgent(shared_V, L, shared_mu, memory=memory)


def test_env_errors_name_the_space():
    agent = make_agent(1)
    discrete = TargetEnv(1)
    discrete.action_space = gym.spaces.Discrete(2)
    with pytest.raises(TypeError, match="Discrete"):
        agent.fit(discrete, nb_steps=10, verbose=0)
    with pytest.raises(ValueError, match=r"shape=\(2,\)"):
        agent.fit(TargetEnv(2), nb_steps=10, verbose=0)


# ---------------------------------------------------------------- the example
@pytest.mark.slow
def test_naf_pendulum_example_reaches_minus_400(tmp_path):
    from naf_pendulum import main

    assert main(["--verbose", "0", "--weights", str(tmp_path / "naf_{}.h5f")]) >= -400
