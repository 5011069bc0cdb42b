"""PPOAgent and the on-policy base: the maths against numpy, learning, seeding, resume, bad input."""

import math
import os
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CountingEnv

from rl.agents import PPOAgent
from rl.agents.on_policy import linear_schedule
from rl.memory.rollout import RolloutBuffer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))


def mlp(obs_shape, out, hidden=16, name=None):
    x = inputs = keras.Input(shape=obs_shape)
    x = keras.layers.Dense(hidden, activation="tanh")(x)
    return keras.Model(inputs, keras.layers.Dense(out)(x), name=name)


def tiny_agent(space, obs_shape=(1,), seed=0, actor_out=None, **kwargs):
    keras.utils.set_random_seed(seed)
    if actor_out is None:
        actor_out = int(space.n) if isinstance(space, gym.spaces.Discrete) else space.shape[0]
    options = dict(n_steps=20, batch_size=10, n_epochs=2)
    options.update(kwargs)
    agent = PPOAgent(mlp(obs_shape, actor_out), mlp(obs_shape, 1), space, **options)
    agent.compile(keras.optimizers.Adam(3e-3))
    return agent


def weights(agent):
    return [w for m in agent.models.values() for w in m.get_weights()] + [v.numpy() for v in agent.parameters.values()]


BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


# ------------------------------------------------------------------ the maths
def numpy_gae(rewards, values, next_values, terminated, ended, gamma, lam):
    t_max, n = rewards.shape
    adv = np.zeros((t_max, n))
    following = np.zeros(n)
    for t in reversed(range(t_max)):
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        following = delta + gamma * lam * (1 - ended[t]) * following
        adv[t] = following
    return adv


def test_advantages_match_gae_with_truncation_bootstrapping():
    agent = tiny_agent(BOX, gamma=0.9, gae_lambda=0.8)
    rng = np.random.default_rng(0)
    r, v, v1 = (rng.normal(size=(6, 2)) for _ in range(3))
    terminated = np.zeros((6, 2))
    ended = np.zeros((6, 2))
    terminated[2, 0] = ended[2, 0] = 1  # env 0 terminates at t=2: no bootstrap
    ended[3, 1] = 1  # env 1 is truncated at t=3: bootstraps from V(final observation)
    got = agent.advantages(*(tf.constant(x, tf.float32) for x in (r, v, v1, terminated, ended))).numpy()
    want = numpy_gae(r, v, v1, terminated, ended, 0.9, 0.8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The truncated step's advantage is its own TD error: r + gamma * V(s') - V(s), nothing after it.
    np.testing.assert_allclose(got[3, 1], r[3, 1] + 0.9 * v1[3, 1] - v[3, 1], rtol=1e-5)


def test_gaussian_and_categorical_log_probs_and_entropies_match_numpy():
    agent = tiny_agent(gym.spaces.Box(-1, 1, (2,), np.float32))
    mean = np.array([[0.3, -1.0]], np.float32)
    log_std = np.array([[-0.5, 0.2]], np.float32)
    a = np.array([[0.1, 0.4]], np.float32)
    want = -0.5 * np.sum(((a - mean) / np.exp(log_std)) ** 2 + 2 * log_std + math.log(2 * math.pi))
    got = agent.log_prob((tf.constant(mean), tf.constant(log_std)), tf.constant(a)).numpy()
    np.testing.assert_allclose(got, [want], rtol=1e-5)
    entropy = np.sum(log_std + 0.5 * (1 + math.log(2 * math.pi)))
    np.testing.assert_allclose(agent.entropy((tf.constant(mean), tf.constant(log_std))).numpy(), [entropy], rtol=1e-5)

    discrete = tiny_agent(gym.spaces.Discrete(3))
    logits = np.array([[1.0, 2.0, 0.5]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum()
    got = discrete.log_prob((tf.constant(logits), None), tf.constant([2])).numpy()
    np.testing.assert_allclose(got, [np.log(p[0, 2])], rtol=1e-5)
    np.testing.assert_allclose(
        discrete.entropy((tf.constant(logits), None)).numpy(), [-(p * np.log(p)).sum()], rtol=1e-5
    )


def test_linear_schedule_runs_from_start_to_end():
    schedule = linear_schedule(1e-3, 1e-4)
    assert schedule(1.0) == pytest.approx(1e-3)
    assert schedule(0.0) == pytest.approx(1e-4)
    assert schedule(0.5) == pytest.approx(5.5e-4)


# ------------------------------------------------------------------ learning
def test_learns_to_push_a_continuous_action_to_its_bound():
    """Reward = action in [-2, 2], 10-step episodes: the best return is 20 (the test acts with the mean)."""
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=10)
    agent = tiny_agent(BOX, n_steps=100, batch_size=50, n_epochs=5, gamma=0.9)
    before = np.mean(agent.test(env, nb_episodes=2, visualize=False, verbose=0).history["episode_reward"])
    agent.fit(env, nb_steps=3000, verbose=0, seed=0)
    after = np.mean(agent.test(env, nb_episodes=2, visualize=False, verbose=0).history["episode_reward"])
    assert before < 10.0
    assert after >= 19.0, (before, after)


def test_cartpole_with_vector_envs_reaches_a_high_return():
    """The example's agent (the RL Zoo's settings, 8 environments), 30 000 steps, seed 0: the schedules
    fall to zero over the run, and the noise-free test return reaches 250 (500 is the maximum)."""
    from ppo_cartpole import make_agent

    keras.utils.set_random_seed(0)
    env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    agent = make_agent(env, 0)
    agent.fit(env, nb_steps=30_000, verbose=0, seed=0)
    history = agent.test(gym.make("CartPole-v1"), nb_episodes=5, visualize=False, verbose=0, seed=1000)
    assert np.mean(history.history["episode_reward"]) >= 250.0
    assert np.isfinite(agent.last_metrics).all()


# ------------------------------------------------------------- seeding, resume
def test_same_seed_gives_same_weights_and_another_seed_differs():
    runs = []
    for seed in (4, 4, 5):
        env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=7)
        agent = tiny_agent(BOX, seed=seed)
        history = agent.fit(env, nb_steps=90, verbose=0, seed=seed)
        runs.append((history.history["episode_reward"], weights(agent)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0][1], runs[2][1]))


@pytest.mark.parametrize("space", [BOX, gym.spaces.Discrete(2)], ids=["box", "discrete"])
def test_a_run_resumed_mid_rollout_continues_as_the_uninterrupted_one(space, tmp_path):
    """The first fit ends with half a rollout gathered: the checkpoint keeps it, and the resumed agent
    updates at the same step with the same data."""

    class Env(CountingEnv):
        def __init__(self):
            super().__init__(terminate_at=8, obs_dim=1)
            self.action_space = space

        def step(self, action):
            obs, _, terminated, truncated, info = super().step(np.zeros(1))
            return obs, float(np.asarray(action).ravel()[0] == 1), terminated, truncated, info

    env = Env()
    agent = tiny_agent(space, seed=3)
    agent.fit(env, nb_steps=50, verbose=0, seed=3)  # 2 updates, 10 steps of the third rollout
    assert agent.buffer.pos == 10
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    straight = agent.fit(env, nb_steps=45, verbose=0).history["episode_reward"]

    env2 = Env()
    resumed = tiny_agent(space, seed=99)  # other initial weights: all must come from the checkpoint
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    assert resumed.step == 50 and resumed.buffer.pos == 10
    again = resumed.fit(env2, nb_steps=45, verbose=0).history["episode_reward"]
    assert again == straight
    for a, b in zip(weights(resumed), weights(agent)):
        np.testing.assert_array_equal(a, b)


def test_fit_and_test_on_a_vector_env_mask_the_reset_steps():
    """gymnasium's NEXT_STEP autoreset: the step after an episode's end only resets; it is not learned from."""
    env = gym.vector.SyncVectorEnv([lambda: CountingEnv(terminate_at=5, obs_dim=1) for _ in range(2)])
    agent = tiny_agent(BOX, n_steps=12, batch_size=8)
    # 20 steps: 5 vector steps (an episode in each sub-environment), a reset step, 5 more
    agent.fit(env, nb_steps=20, verbose=0, seed=0)
    buffer = agent.buffer
    assert buffer.pos == 11 and buffer.n_envs == 2
    np.testing.assert_array_equal(buffer.valid[:11, 0], [True] * 5 + [False] + [True] * 5)
    np.testing.assert_array_equal(buffer.terminated[:6, 0], [False] * 4 + [True, False])
    assert agent.step == 20  # the reset steps are not counted
    history = agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert history.history["episode_reward"] == pytest.approx([history.history["episode_reward"][0]] * 2)


def test_test_is_deterministic_and_uses_the_mode():
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=5)
    agent = tiny_agent(BOX)
    first = agent.test(env, nb_episodes=2, visualize=False, verbose=0).history["episode_reward"]
    second = agent.test(env, nb_episodes=2, visualize=False, verbose=0).history["episode_reward"]
    assert first == second
    obs = np.array([3.0], np.float32)
    mean = agent.models["actor"](obs[None]).numpy()[0]
    np.testing.assert_allclose(agent.forward(obs), mean, rtol=1e-5)


def test_metrics_are_reported_after_each_update():
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=5)
    agent = tiny_agent(BOX)
    assert np.isnan(agent.last_metrics).all()
    agent.fit(env, nb_steps=20, verbose=0)
    metrics = dict(zip(agent.metrics_names, agent.last_metrics))
    assert set(metrics) == {
        "loss",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
    }
    assert metrics["value_loss"] > 0 and 0.0 <= metrics["clip_fraction"] <= 1.0
    # A state-independent log std of 0: each action dimension's entropy is 0.5 * (1 + log(2 pi)) to start.
    assert metrics["entropy"] == pytest.approx(0.5 * (1 + math.log(2 * math.pi)), abs=0.05)


def test_lr_schedule_sets_the_learning_rate_at_each_update():
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=5)
    agent = tiny_agent(BOX, lr_schedule=linear_schedule(1e-3, 0.0))
    agent.fit(env, nb_steps=40, verbose=0)  # updates at steps 20 and 40: progress remaining 0.5, then 0
    assert float(agent.optimizers["policy"].learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)


def test_rollout_buffer_round_trip(tmp_path):
    buffer = RolloutBuffer(4, 2, (3,), (), np.int64)
    buffer.add_action(np.ones((2, 3)), np.array([1, 0]))
    buffer.add_outcome(np.array([1.0, 2.0]), np.array([True, False]), np.array([True, False]), np.ones((2, 3)), [1, 1])
    buffer.save(tmp_path / "r.npz")
    other = RolloutBuffer(4, 2, (3,), (), np.int64)
    arrays = RolloutBuffer.read(tmp_path / "r.npz")
    other.check(arrays, "r.npz")
    other.restore(arrays)
    assert other.pos == 1 and other.rewards[0].tolist() == [1.0, 2.0] and other.actions[0].tolist() == [1, 0]
    with pytest.raises(ValueError, match="n_steps=4, n_envs=2"):
        RolloutBuffer(8, 2, (3,), (), np.int64).check(arrays, "r.npz")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "space, actor_out, match",
    [
        (gym.spaces.Discrete(2), 1, "must output 2 logits"),  # a continuous actor on a discrete space
        (BOX, 3, "1 means or 2 units"),
        (gym.spaces.Box(-1, 1, (2,), np.float32), 3, "2 means or 4 units"),
    ],
)
def test_actor_widths_that_do_not_fit_the_action_space_are_refused(space, actor_out, match):
    with pytest.raises(ValueError, match=match):
        tiny_agent(space, actor_out=actor_out)


def test_a_discrete_agent_on_a_continuous_env_and_the_reverse_are_refused():
    agent = tiny_agent(gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="built for the action space Discrete"):
        agent.fit(CountingEnv(obs_dim=1), nb_steps=10, verbose=0)
    box_agent = tiny_agent(BOX)
    with pytest.raises(ValueError, match="Received: env.action_space=Discrete"):
        box_agent.fit(gym.make("CartPole-v1"), nb_steps=10, verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_epochs": 0}, ValueError, "n_epochs"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"ent_coef": -0.1}, ValueError, "ent_coef"),
        ({"vf_coef": -1.0}, ValueError, "vf_coef"),
        ({"clip_range": 0.0}, ValueError, "clip_range"),
        ({"clip_range": "0.2"}, TypeError, "clip_range"),
        ({"clip_range_vf": -0.2}, ValueError, "clip_range_vf"),
        ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm"),
        ({"gamma": 1.5}, ValueError, "gamma"),
        ({"gae_lambda": -0.1}, ValueError, "gae_lambda"),
        ({"lr_schedule": 0.001}, TypeError, "lr_schedule"),
        ({"normalize_advantage": "yes"}, TypeError, "normalize_advantage"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny_agent(BOX, **kwargs)


def test_bad_models_and_spaces_name_the_argument():
    with pytest.raises(TypeError, match="action_space"):
        PPOAgent(mlp((1,), 1), mlp((1,), 1), gym.spaces.MultiDiscrete([2, 2]))
    with pytest.raises(ValueError, match="critic must output one value"):
        PPOAgent(mlp((1,), 1), mlp((1,), 2), BOX)
    with pytest.raises(TypeError, match="`actor` must be a Keras model"):
        PPOAgent("actor", mlp((1,), 1), BOX)


@pytest.mark.parametrize(
    "kwargs, n_envs, match",
    [
        ({"n_steps": 10, "batch_size": 30}, 2, "cannot exceed the rollout's n_steps \\* n_envs = 10 \\* 2 = 20"),
        ({"n_steps": 10, "batch_size": 8}, 1, "must be a multiple of `batch_size`"),
    ],
)
def test_rollouts_that_do_not_split_into_minibatches_are_refused_before_any_step(kwargs, n_envs, match):
    agent = tiny_agent(BOX, **kwargs)
    env = CountingEnv(obs_dim=1) if n_envs == 1 else gym.vector.SyncVectorEnv([lambda: CountingEnv(obs_dim=1)] * 2)
    with pytest.raises(ValueError, match=match):
        agent.fit(env, nb_steps=30, verbose=0)
    assert agent.step == 0


def test_updates_per_vector_step_is_refused():
    agent = tiny_agent(BOX)
    env = gym.vector.SyncVectorEnv([lambda: CountingEnv(obs_dim=1)] * 2)
    with pytest.raises(ValueError, match="updates_per_vector_step"):
        agent.fit(env, nb_steps=30, verbose=0, updates_per_vector_step=2)


def test_metrics_in_compile_are_refused():
    agent = PPOAgent(mlp((1,), 1), mlp((1,), 1), BOX)
    with pytest.raises(ValueError, match="metrics"):
        agent.compile("adam", metrics=["mae"])


@pytest.mark.parametrize("space", [BOX, gym.spaces.Discrete(3)], ids=["box", "discrete"])
def test_the_export_acts_as_test_does(space, tmp_path):
    import rl.export

    agent = tiny_agent(space, obs_shape=(2,))
    observations = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32) * 3
    want = np.stack([np.asarray(agent.forward(o)) for o in observations])
    agent.export(tmp_path / "policy")
    policy = rl.export.load_policy(tmp_path / "policy")
    got = np.stack([np.asarray(policy.forward(o)) for o in observations])
    if isinstance(space, gym.spaces.Discrete):
        np.testing.assert_array_equal(got, want)
    else:  # the export clips the mean to the bounds, as the run loop clips actions on their way to the env
        np.testing.assert_allclose(got, np.clip(want, -2.0, 2.0), rtol=1e-5, atol=1e-6)
