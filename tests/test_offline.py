"""Offline training: fit_offline on any off-policy agent, TD3BCAgent, and the checks before training."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers

from rl.agents import DDPGAgent, TD3Agent, TD3BCAgent
from rl.callbacks import Callback, Checkpoint
from rl.core import Processor
from rl.memory import SequentialMemory

PENDULUM_BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def scripted_action(obs):
    """A swing-up controller for Pendulum-v1: energy pumping, then a PD controller near the top."""
    c, s, w = obs
    if c > 0.9:
        return -10.0 * np.arctan2(s, c) - 2.0 * w
    energy = 0.5 * w * w + 15.0 * (c - 1.0)  # 0 upright at rest
    return -2.0 * energy * w if abs(w) > 1e-2 else 1.0


def pendulum_dataset(nb_episodes, seed, p_random=0.5, noise=1.0):
    """Episodes of the scripted controller, each action replaced by a uniform one with probability
    `p_random` and otherwise perturbed by Gaussian noise; returns the arrays and the mean return."""
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("observations", "actions", "rewards", "terminals", "truncations", "next_observations")}
    returns = []
    for e in range(nb_episodes):
        obs, _ = env.reset(seed=seed if e == 0 else None)  # `test(env, nb_episodes, seed=seed)` replays these starts
        total = 0.0
        while True:
            a = rng.uniform(-2, 2) if rng.random() < p_random else scripted_action(obs) + noise * rng.normal()
            action = np.array([np.clip(a, -2.0, 2.0)], np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(rows, (obs, action, reward, terminated, truncated, next_obs)):
                rows[key].append(value)
            total += reward
            obs = next_obs
            if terminated or truncated:
                break
        returns.append(total)
    return {k: np.asarray(v, np.float32 if k not in ("terminals", "truncations") else bool) for k, v in rows.items()}, (
        float(np.mean(returns))
    )


def models(obs_dim=3, hidden=32, nb_actions=1, action_scale=2.0):
    obs_in = keras.Input((obs_dim,))
    x = obs_in
    for _ in range(2):
        x = layers.Dense(hidden, activation="relu")(x)
    action = layers.Dense(nb_actions, activation="tanh")(x)
    actor = keras.Model(obs_in, layers.Rescaling(action_scale)(action), name="actor")
    action_in, critic_obs = keras.Input((nb_actions,)), keras.Input((obs_dim,))
    y = layers.Concatenate()([action_in, critic_obs])
    for _ in range(2):
        y = layers.Dense(hidden, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(y), name="critic")
    return actor, critic, action_in


def build(memory, cls=TD3BCAgent, seed=0, hidden=32, lr=1e-3, obs_dim=3, nb_actions=1, action_scale=2.0, **kwargs):
    keras.utils.set_random_seed(seed)
    actor, critic, action_in = models(obs_dim, hidden, nb_actions, action_scale)
    kwargs.setdefault("batch_size", 32)
    kwargs.setdefault("jit_compile", False)
    if cls is not TD3BCAgent:
        kwargs.setdefault("nb_steps_warmup_critic", 0)
        kwargs.setdefault("nb_steps_warmup_actor", 0)
    agent = cls(
        nb_actions=nb_actions, actor=actor, critic=critic, critic_action_input=action_in, memory=memory, **kwargs
    )
    agent.compile(keras.optimizers.Adam(learning_rate=lr))
    return agent


@pytest.fixture(scope="module")
def small_data():
    data, _ = pendulum_dataset(2, seed=0)  # 400 transitions
    return data


def weights(agent):
    agent.sync_models()
    return [w for role in agent.models for w in agent.models[role].get_weights()]


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ fit_offline
def test_fit_offline_history_holds_losses_per_interval_and_evaluations(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data, seed=0))
    eval_env = gym.make("Pendulum-v1", max_episode_steps=20)
    history = agent.fit_offline(60, verbose=0, log_interval=20, eval_env=eval_env, eval_interval=30, nb_eval_episodes=2)
    h = history.history
    assert isinstance(history, keras.callbacks.History)
    assert h["nb_steps"] == [20, 40, 60]
    for name in ("critic_loss", "actor_loss", "mean_q", "bc_loss", "updates_per_second"):
        assert len(h[name]) == 3 and np.isfinite(h[name]).all(), name
    assert h["eval_step"] == [30, 60]
    assert len(h["eval_mean_return"]) == 2 and all(-20 * 16.3 <= r <= 0 for r in h["eval_mean_return"])
    assert agent.step == 60 and agent._updates == 60


def test_several_updates_per_call_equal_one_update_per_call(small_data):
    a = build(SequentialMemory.from_arrays(**small_data), seed=1)
    b = build(SequentialMemory.from_arrays(**small_data), seed=1)
    ha = a.fit_offline(13, verbose=0, log_interval=13, updates_per_call=13, action_space=PENDULUM_BOX)
    hb = b.fit_offline(13, verbose=0, log_interval=13, updates_per_call=1, action_space=PENDULUM_BOX)
    assert_same_weights(a, b)  # TD3's policy delay, target noise and the sampling all match
    np.testing.assert_array_equal(a.seed_stream.get_state(), b.seed_stream.get_state())
    np.testing.assert_allclose(ha.history["critic_loss"], hb.history["critic_loss"], rtol=1e-6)


def test_hard_target_copies_match_between_call_sizes(small_data):
    a = build(SequentialMemory.from_arrays(**small_data), cls=DDPGAgent, seed=2, target_model_update=4)
    b = build(SequentialMemory.from_arrays(**small_data), cls=DDPGAgent, seed=2, target_model_update=4)
    a.fit_offline(10, verbose=0, updates_per_call=10)
    b.fit_offline(3, verbose=0, updates_per_call=1)
    b.fit_offline(7, verbose=0, updates_per_call=5)
    assert_same_weights(a, b)
    # The last copy came after update 8: the target equals the actor of that moment, not of update 10.
    assert not all(
        np.array_equal(x, y) for x, y in zip(a.models["target_actor"].get_weights(), a.models["actor"].get_weights())
    )


def test_fit_offline_is_seeded(small_data):
    runs = []
    for seed in (3, 3, 4):
        agent = build(SequentialMemory.from_arrays(**small_data), seed=seed)
        agent.fit_offline(10, verbose=0)
        runs.append(agent)
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(weights(runs[0])[0], weights(runs[2])[0])


def test_offline_batches_come_from_the_memory(small_data):
    """The in-graph sampler returns stored transitions only, with their reward and next observation."""
    memory = SequentialMemory.from_arrays(**small_data)
    agent = build(memory)
    agent.fit_offline(1, verbose=0)  # loads the data into the graph
    batch = agent._dataset.sample(agent.seed_stream.next(), 64, 1)
    columns = ("observations", "actions", "rewards", "next_observations")
    stored = {tuple(o) + tuple(a): (r, tuple(n)) for o, a, r, n in zip(*(small_data[c] for c in columns))}
    for s0, a, r, s1 in zip(batch.state0.numpy(), batch.action.numpy(), batch.reward.numpy(), batch.state1.numpy()):
        reward, next_obs = stored[tuple(s0) + tuple(a)]
        assert r == reward and tuple(s1) == next_obs


def test_keyboard_interrupt_returns_the_history(small_data):
    class Interrupt(Callback):
        def on_step_end(self, step, logs=None):
            if self.model.step >= 30:
                raise KeyboardInterrupt

    agent = build(SequentialMemory.from_arrays(**small_data))
    history = agent.fit_offline(100, callbacks=[Interrupt()], verbose=0, log_interval=20, updates_per_call=10)
    assert agent.step == 30
    assert history.history["nb_steps"] == [20, 30]  # the interrupted interval is reported too
    assert not agent.training
    agent.fit_offline(10, verbose=0)  # and training can go on
    assert agent.step == 40


def test_checkpoint_and_exact_resume(small_data, tmp_path):
    straight = build(SequentialMemory.from_arrays(**small_data), seed=5)
    straight.fit_offline(20, verbose=0, callbacks=[Checkpoint(tmp_path / "ckpt", interval=20)], updates_per_call=7)
    straight.fit_offline(20, verbose=0)

    resumed = build(SequentialMemory.from_arrays(**small_data), seed=6)  # other initial weights and seeds
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.step == 20
    np.testing.assert_array_equal(resumed.observation_mean, straight.observation_mean)
    resumed.fit_offline(40 - resumed.step, verbose=0)
    assert_same_weights(straight, resumed)


def test_plain_ddpg_trains_offline(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data), cls=DDPGAgent, target_model_update=0.01)
    before = weights(agent)[0].copy()
    history = agent.fit_offline(30, verbose=0, log_interval=30)
    assert np.isfinite(history.history["critic_loss"]).all() and np.isfinite(history.history["actor_loss"]).all()
    assert not np.array_equal(before, weights(agent)[0])


def test_online_fit_after_offline_training(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data, limit=2000), cls=TD3Agent)
    agent.fit_offline(10, verbose=0, action_space=PENDULUM_BOX)
    history = agent.fit(gym.make("Pendulum-v1", max_episode_steps=10), nb_steps=20, verbose=0)
    assert agent.step == 30 and history.history["nb_steps"] == [20, 30]
    assert agent.memory.nb_transitions == 400 + 20


def test_fit_offline_verbose_prints_progress(small_data, capsys):
    agent = build(SequentialMemory.from_arrays(**small_data))
    agent.fit_offline(20, verbose=2, log_interval=10)
    out = capsys.readouterr().out
    assert "Training offline for 20 updates on 400 transitions" in out
    assert "10 updates: updates_per_second:" in out and "20 updates:" in out


# ------------------------------------------------------------------ TD3BCAgent
def test_td3bc_normalises_observations_with_the_dataset_statistics(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data))
    agent.fit_offline(2, verbose=0)
    obs = small_data["observations"]
    np.testing.assert_allclose(agent.observation_mean, obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(agent.observation_std, obs.std(0) + 1e-3, rtol=1e-5)
    # Acting (test, evaluations) sees the same normalised inputs as training.
    agent.sync_models()
    x = obs[:1]
    want = agent.models["actor"](((x - agent.observation_mean) / agent.observation_std), training=False).numpy()[0]
    np.testing.assert_allclose(agent.forward(x[0]), want, rtol=1e-5)
    assert agent.get_config()["observation_mean"] == agent.observation_mean.tolist()


def test_td3bc_actor_loss_is_q_term_plus_behaviour_cloning(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data), normalize_observations=False)
    agent._pull()
    obs = small_data["observations"][:32]
    actions = small_data["actions"][:32]
    from rl.agents.off_policy import GraphBatch

    batch = GraphBatch(obs, actions, np.zeros(32, np.float32), np.zeros(32, np.float32), obs)
    loss, bc = agent.actor_loss_bc(agent.nets, batch)
    agent._push()
    pi = agent.models["actor"](obs).numpy()
    q = agent.models["critic"]([pi, obs]).numpy()[:, 0]
    want_bc = np.mean((pi - actions) ** 2)
    np.testing.assert_allclose(bc, want_bc, rtol=1e-5)
    np.testing.assert_allclose(loss, -2.5 / np.mean(np.abs(q)) * q.mean() + want_bc, rtol=1e-5)


def test_td3bc_argument_errors(small_data):
    memory = SequentialMemory.from_arrays(**small_data)
    with pytest.raises(ValueError, match=r"alpha.*Received: alpha=0"):
        build(memory, alpha=0)
    with pytest.raises(ValueError, match="Pass both `observation_mean` and `observation_std`"):
        build(memory, observation_mean=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="std > 0"):
        build(memory, observation_mean=[0.0, 0.0, 0.0], observation_std=[1.0, 0.0, 1.0])


def unit_action_dataset(nb_episodes):
    """The noisy dataset with actions in [-1, 1] (TD3+BC's balance of its two terms assumes them)."""
    data, dataset_return = pendulum_dataset(nb_episodes, seed=0)
    return dict(data, actions=data["actions"] / 2.0), dataset_return


def unit_action_pendulum():
    return gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -1.0, 1.0)


def test_td3bc_learns_from_a_noisy_dataset():
    """A short seeded run: 20 noisy episodes (mean return about -590), 6000 updates of [64, 64] networks,
    then the noise-free policy from the dataset's own 20 start states (about -360 here)."""
    data, dataset_return = unit_action_dataset(20)
    memory = SequentialMemory.from_arrays(**data, seed=0)
    agent = build(memory, seed=0, hidden=64, lr=1e-3, batch_size=256, action_scale=1.0)
    agent.fit_offline(6000, verbose=0, action_space=gym.spaces.Box(-1.0, 1.0, (1,)), updates_per_call=250)
    returns = agent.test(unit_action_pendulum(), nb_episodes=20, visualize=False, verbose=0, seed=0)
    mean = float(np.mean(returns.history["episode_reward"]))
    assert dataset_return < -550
    assert mean > dataset_return + 150, (mean, dataset_return)


@pytest.mark.slow
def test_td3bc_learns_from_a_noisy_dataset_long():
    """100 noisy episodes (mean return about -570) and 10 000 updates of [256, 256] networks with the
    paper's settings (learning rate 3e-4, batch 256)."""
    data, dataset_return = unit_action_dataset(100)
    memory = SequentialMemory.from_arrays(**data, seed=0)
    agent = build(memory, seed=0, hidden=256, lr=3e-4, batch_size=256, action_scale=1.0, jit_compile="auto")
    agent.fit_offline(10_000, verbose=0, action_space=gym.spaces.Box(-1.0, 1.0, (1,)))
    returns = agent.test(unit_action_pendulum(), nb_episodes=100, visualize=False, verbose=0, seed=0)
    mean = float(np.mean(returns.history["episode_reward"]))
    assert dataset_return < -550
    assert mean > dataset_return + 250, (mean, dataset_return)


# ------------------------------------------------------------------ checks before training (one per case)
def test_fit_offline_on_an_empty_memory():
    agent = build(SequentialMemory(limit=100))
    with pytest.raises(ValueError, match=r"holds none that can be sampled.*Received: memory.nb_transitions=0"):
        agent.fit_offline(10, verbose=0)


def test_dataset_smaller_than_batch_size(small_data):
    small = {k: v[:20] for k, v in small_data.items()}
    small["truncations"][-1] = True
    agent = build(SequentialMemory.from_arrays(**small, limit=100), batch_size=32)
    with pytest.raises(ValueError, match=r"holds 20 transitions.*fewer than one batch.*Received: batch_size=32"):
        agent.fit_offline(10, verbose=0)
    assert agent.step == 0


def test_action_width_differs_from_nb_actions(small_data):
    data = dict(small_data, actions=np.repeat(small_data["actions"], 2, axis=1))
    agent = build(SequentialMemory.from_arrays(**data))
    with pytest.raises(ValueError, match=r"actions have 2 values each, but the agent takes 1.*Received: actions of"):
        agent.fit_offline(10, verbose=0)


def test_actions_outside_the_action_space(small_data):
    data = dict(small_data, actions=small_data["actions"] * 2)  # up to 4, the space ends at 2
    agent = build(SequentialMemory.from_arrays(**data))
    with pytest.raises(ValueError, match=r"must lie in the action space \[\[-2.0\], \[2.0\]\].*Received: actions="):
        agent.fit_offline(10, verbose=0, action_space=PENDULUM_BOX)
    agent = build(SequentialMemory.from_arrays(**data))
    with pytest.raises(ValueError, match="must lie in the action space"):
        agent.fit_offline(10, verbose=0, eval_env=gym.make("Pendulum-v1"))  # bounds from the evaluation env


def test_observation_shape_differs_from_the_models_input(small_data):
    data = dict(small_data)
    for key in ("observations", "next_observations"):
        data[key] = np.concatenate([data[key], data[key][:, :1]], axis=1)  # 4 values, the networks take 3
    agent = build(SequentialMemory.from_arrays(**data))
    with pytest.raises(ValueError, match=r"Observations of shape \(4,\).*does not fit.*dataset's observation shape"):
        agent.fit_offline(10, verbose=0)


def test_evaluation_env_with_other_observations(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data))
    env = gym.make("MountainCarContinuous-v0")  # observations of shape (2,)
    with pytest.raises(ValueError, match=r"observation"):
        agent.fit_offline(10, verbose=0, eval_env=env)


def test_non_finite_values_in_the_memory():
    memory = SequentialMemory(limit=100)
    for t in range(40):
        obs = np.full(3, np.nan if t == 7 else 0.1 * t, np.float32)
        memory.append(obs, [0.0], 1.0, terminal=False, next_observation=np.full(3, 0.1 * (t + 1), np.float32))
    agent = build(memory)
    with pytest.raises(ValueError, match=r"observations hold NaN or inf"):
        agent.fit_offline(10, verbose=0)


def test_processor_with_state_batch_is_refused(small_data):
    class Batches(Processor):
        def process_state_batch(self, batch):
            return batch

    agent = build(SequentialMemory.from_arrays(**small_data), processor=Batches())
    with pytest.raises(ValueError, match=r"process_state_batch.*Received: processor="):
        agent.fit_offline(10, verbose=0)


def test_fit_offline_argument_errors(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data))
    with pytest.raises(ValueError, match="nb_steps"):
        agent.fit_offline(0)
    with pytest.raises(ValueError, match="updates_per_call"):
        agent.fit_offline(10, updates_per_call=0)
    with pytest.raises(ValueError, match=r"`action_space` must be a gymnasium.spaces.Box of shape \(1,\)"):
        agent.fit_offline(10, action_space=gym.spaces.Box(-1, 1, (2,)))
    keras.utils.set_random_seed(0)
    actor, critic, action_in = models()
    uncompiled = TD3BCAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in,
                            memory=SequentialMemory.from_arrays(**small_data))  # fmt: skip
    with pytest.raises(ValueError, match="compile"):
        uncompiled.fit_offline(10)
