"""Fine-tuning online after offline training: `fit` after `fit_offline`, `MixedMemory`, TD3+BC's `bc_weight`."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from test_offline import PENDULUM_BOX, assert_same_weights, build, pendulum_dataset, unit_action_dataset

from rl.agents import SACAgent, TD3Agent
from rl.memory import MixedMemory, PrioritizedMemory, SequentialMemory
from rl.random import GaussianWhiteNoiseProcess


@pytest.fixture(scope="module")
def small_data():
    data, _ = pendulum_dataset(2, seed=0)  # 400 transitions
    return data


def marked(nb, reward, obs_dim=3, nb_actions=1, episode=10, n_step=1, **kwargs):
    """A memory of `nb` one-step-apart transitions whose rewards are all `reward` (to tell the parts apart)."""
    rng = np.random.default_rng(int(abs(reward)))
    starts = np.repeat(rng.integers(-50, 50, size=(-(-nb // episode), obs_dim)), episode, axis=0)[:nb]
    obs = (starts + (np.arange(nb) % episode)[:, None]).astype(np.float32)  # s_{t+1} = s_t + 1 inside an episode
    truncations = np.zeros(nb, bool)
    truncations[episode - 1 :: episode] = True
    memory = SequentialMemory.from_arrays(
        obs,
        rng.uniform(-1, 1, (nb, nb_actions)).astype(np.float32),
        np.full(nb, reward, np.float32),
        np.zeros(nb, bool),
        truncations,
        next_observations=obs + 1,
        **kwargs,
    )
    memory.n_step = n_step
    return memory


def fill(memory, nb, reward=-1.0, obs_dim=3, nb_actions=1):
    for i in range(nb):
        memory.append(
            np.full(obs_dim, i, np.float32), np.zeros(nb_actions, np.float32), reward, False, np.full(obs_dim, i + 1.0)
        )
    return memory


def mixed(ratio=0.5, online_limit=100, **kwargs):
    return MixedMemory(
        marked(60, 1.0, seed=0, **kwargs), fill(SequentialMemory(online_limit, seed=1, **kwargs), 30), ratio=ratio
    )


# ------------------------------------------------------------------ MixedMemory: sampling
@pytest.mark.parametrize(
    "ratio, batch, offline",
    [(0.5, 10, 5), (0.5, 7, 4), (0.25, 10, 3), (0.3, 10, 3), (0.0, 8, 0), (1.0, 8, 8), (0.5, 1, 1), (0.1, 4, 0)],
)
def test_each_batch_holds_round_ratio_times_batch_offline_transitions_first(ratio, batch, offline):
    memory = mixed(ratio)
    assert memory.split(batch) == (offline, batch - offline)
    for _ in range(20):
        b = memory.sample(batch)
        np.testing.assert_array_equal(b.reward, [1.0] * offline + [-1.0] * (batch - offline))
        assert b.state0.shape == (batch, 1, 3) and b.action.shape == (batch, 1) and b.terminal.shape == (batch,)


def test_each_half_is_drawn_uniformly_from_its_own_memory():
    memory = mixed(0.5)
    offline_obs = {tuple(o) for o in memory.offline.to_arrays()["observations"]}
    seen = set()
    for _ in range(400):
        b = memory.sample(8)
        assert all(tuple(s) in offline_obs for s in b.state0[:4, 0])
        online = b.state0[4:, 0, 0]  # the online transitions are i -> i + 1, i in [0, 30)
        np.testing.assert_array_equal(b.state1[4:, 0, 0], online + 1)
        seen.update(online.tolist())
    assert seen == set(range(30))  # every online transition drawn


def test_sample_into_draws_what_sample_draws():
    a, b = mixed(0.5), mixed(0.5)
    s0, s1, rows = np.empty((9, 1, 3), np.float32), np.empty((9, 1, 3), np.float32), np.empty((9, 3), np.float32)
    for _ in range(5):
        batch = a.sample(9)
        b.sample_into(9, s0, s1, rows)
        np.testing.assert_array_equal(s0, batch.state0)
        np.testing.assert_array_equal(s1, batch.state1)
        np.testing.assert_array_equal(rows[:, 0], batch.action[:, 0])
        np.testing.assert_array_equal(rows[:, 1], batch.reward)
        np.testing.assert_array_equal(rows[:, 2], batch.terminal)


def test_append_goes_to_the_online_part_and_the_offline_data_never_changes():
    memory = mixed(0.5, online_limit=20)
    before = memory.offline.to_arrays()
    fill(memory, 50, reward=-2.0)  # more than the online part holds: its ring wraps
    after = memory.offline.to_arrays()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert memory.offline.nb_transitions == 60 and memory.online.nb_transitions <= 20
    assert memory.nb_transitions == memory.offline.nb_transitions + memory.online.nb_transitions
    assert memory.limit == memory.offline.limit + 20 and memory.nb_entries == 60 + 6 + 20
    assert set(memory.sample(20).reward[10:]) == {-2.0}


def test_settings_are_shared_by_both_parts():
    memory = mixed(0.5)
    memory.n_step = 3
    memory.gamma = 0.9
    assert (memory.offline.n_step, memory.online.n_step, memory.offline.gamma, memory.online.gamma) == (3, 3, 0.9, 0.9)
    memory.ratio = 0.75
    assert memory.split(8) == (6, 2)
    config = memory.get_config()
    assert config["ratio"] == 0.75 and config["online"]["class_name"] == "SequentialMemory"
    rebuilt = MixedMemory.from_config(config)
    assert rebuilt.ratio == 0.75 and rebuilt.n_step == 3 and rebuilt.nb_transitions == 0


# ------------------------------------------------------------------ MixedMemory: bad input
@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_a_ratio_outside_zero_one_is_refused(ratio):
    with pytest.raises(ValueError, match=r"ratio.*Received: ratio="):
        mixed(ratio)


def test_a_ratio_that_is_not_a_number_is_refused():
    with pytest.raises(TypeError, match=r"`ratio` must be a number. Received: ratio='half'"):
        mixed("half")
    memory = mixed(0.5)
    with pytest.raises(ValueError, match=r"Received: ratio=2.0"):
        memory.ratio = 2
    assert memory.ratio == 0.5


def test_parts_that_do_not_fit_together_are_refused():
    with pytest.raises(TypeError, match=r"`online` must be a SequentialMemory or PrioritizedMemory. Received: online="):
        MixedMemory(SequentialMemory(10), [])
    one = SequentialMemory(10)
    with pytest.raises(ValueError, match=r"must be two memories.*Received: the same object"):
        MixedMemory(one, one)
    with pytest.raises(ValueError, match=r"same `n_step`. Received: offline.n_step=1, online.n_step=3"):
        MixedMemory(SequentialMemory(10), SequentialMemory(10, n_step=3))
    with pytest.raises(
        ValueError, match=r"same `window_length`. Received: offline.window_length=2, online.window_length=1"
    ):
        MixedMemory(SequentialMemory(10, window_length=2), SequentialMemory(10))
    with pytest.raises(ValueError, match=r"same n-step `gamma`. Received: offline.gamma=0.9, online.gamma=0.99"):
        MixedMemory(SequentialMemory(10, gamma=0.9), SequentialMemory(10, gamma=0.99))
    with pytest.raises(
        ValueError, match=r"observations of one shape. Received: offline observations of shape \(3,\), "
    ):
        MixedMemory(marked(20, 1.0), fill(SequentialMemory(50), 5, obs_dim=4))
    with pytest.raises(ValueError, match=r"actions of one width. Received: offline actions of 1 values, online .* 2"):
        MixedMemory(marked(20, 1.0), fill(SequentialMemory(50), 5, nb_actions=2))


def test_a_gamma_given_to_one_part_is_given_to_both():
    memory = MixedMemory(SequentialMemory(10, n_step=2), SequentialMemory(10, n_step=2, gamma=0.9))
    assert memory.offline.gamma == memory.online.gamma == 0.9


def test_online_data_of_another_shape_is_refused_when_sampled():
    memory = MixedMemory(marked(20, 1.0), SequentialMemory(50))  # the online part is empty: nothing to compare yet
    fill(memory, 5, obs_dim=4)
    with pytest.raises(ValueError, match=r"observations of one shape.*\(3,\).*\(4,\)"):
        memory.sample(4)


def test_a_part_that_cannot_give_its_share_is_named_and_nothing_is_drawn():
    memory = MixedMemory(marked(20, 1.0, seed=0), SequentialMemory(50, seed=1))
    state = memory.offline.rng.bit_generator.state
    with pytest.raises(ValueError, match=r"The online memory cannot give its 4 of the batch's 8 .*holds no transition"):
        memory.sample(8)
    assert memory.offline.rng.bit_generator.state == state
    memory.ratio = 1.0
    assert memory.sample(8).reward.tolist() == [1.0] * 8  # the empty part is not asked
    with pytest.raises(ValueError, match=r"batch_size.*Received: batch_size=0"):
        memory.sample(0)
    with pytest.raises(ValueError, match=r"needs `next_observation`.*Received: next_observation=None"):
        memory.append(np.zeros(3), np.zeros(1), 0.0, False)


# ------------------------------------------------------------------ MixedMemory: prioritized and n-step parts
def test_a_prioritized_online_part_gets_the_priorities_of_its_half_only():
    offline = marked(40, 1.0, seed=0)
    online = fill(PrioritizedMemory(50, alpha=1.0, seed=1), 20)
    memory = MixedMemory(offline, online, ratio=0.5)
    assert callable(memory.update_priorities)
    memory.sample(8)
    idx, weights = memory.last_indices, memory.last_weights
    assert (idx[:4] == -1).all() and (weights[:4] == 1).all()  # the uniform offline half
    assert ((idx[4:] >= offline.limit) & (idx[4:] < offline.limit + 50)).all()
    np.testing.assert_array_equal(weights[4:], online.last_weights)
    memory.update_priorities(idx, np.full(8, 5.0))
    np.testing.assert_allclose(online.priorities[idx[4:] - offline.limit], 5.0 + online.epsilon)
    assert sorted(set(online.priorities[online.priorities > 0].round(6))) == [1.0, round(5.0 + online.epsilon, 6)]


def test_both_parts_prioritized_and_an_agent_trains_with_them():
    data, _ = pendulum_dataset(2, seed=0)
    offline = PrioritizedMemory.from_arrays(**data, seed=0)
    memory = MixedMemory(offline, PrioritizedMemory(200, seed=1))
    agent = build(memory, cls=TD3Agent, batch_size=16)
    assert agent.prioritized
    agent.fit(gym.make("Pendulum-v1", max_episode_steps=20), nb_steps=30, verbose=0, seed=0)
    assert offline.max_priority != 1.0 and memory.online.max_priority != 1.0  # both halves got TD errors
    assert not build(mixed(0.5), cls=TD3Agent).prioritized  # uniform parts: no weights in the batches


def test_n_step_parts_get_the_agents_gamma_and_sum_rewards_in_their_own_episodes():
    memory = MixedMemory(marked(40, 1.0, n_step=3), fill(SequentialMemory(50, n_step=3), 20))
    build(memory, cls=TD3Agent, gamma=0.5)
    assert memory.offline.gamma == memory.online.gamma == 0.5
    b = memory.sample(64)
    assert set(b.reward[:32].round(4)) <= {1.0, 1.5, 1.75}  # 1, 1 + 0.5, 1 + 0.5 + 0.25 (episodes of 10)
    assert set(b.reward[32:].round(4)) <= {-1.0, -1.5, -1.75} and -1.75 in set(b.reward[32:].round(4))
    with pytest.raises(TypeError, match="n-step"):  # fit_offline's sampler builds one-step transitions only
        MixedMemory(marked(40, 1.0, n_step=3), SequentialMemory(50, n_step=3)).sampling_arrays()


# ------------------------------------------------------------------ fit after fit_offline
def test_fit_after_fit_offline_continues_the_step_counters_and_keeps_the_dataset(small_data):
    memory = MixedMemory(SequentialMemory.from_arrays(**small_data, seed=0), SequentialMemory(200, seed=1))
    agent = build(memory, random_process=GaussianWhiteNoiseProcess(sigma=0.1, seed=0))
    agent.fit_offline(20, verbose=0, action_space=PENDULUM_BOX)
    assert (agent.step, agent._updates) == (20, 20)
    history = agent.fit(gym.make("Pendulum-v1", max_episode_steps=25), nb_steps=50, verbose=0, seed=0)
    assert history.history["nb_steps"] == [45, 70]  # agent.step goes on from the offline updates
    # TD3+BC has no warm-up: every online step trained (one update each), the offline data is all there.
    assert (agent.step, agent._updates) == (70, 70)
    assert memory.offline.nb_transitions == 400 and memory.online.nb_transitions == 50
    with pytest.raises(TypeError, match=r"online part holds 50 transitions.*Received: online.nb_transitions=50"):
        agent.fit_offline(10, verbose=0)


def test_warm_up_and_random_steps_count_the_offline_updates(small_data):
    """`agent.step` counts the offline updates, so a warm-up (or `nb_steps_random`) they exceed is not
    repeated online, and one they do not reach only lasts until `agent.step` passes it."""

    def sac(warmup):
        keras.utils.set_random_seed(0)
        obs_in = keras.Input((3,))
        actor = keras.Model(obs_in, keras.layers.Dense(2)(keras.layers.Dense(16, activation="relu")(obs_in)))
        action_in, critic_obs = keras.Input((1,)), keras.Input((3,))
        hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([action_in, critic_obs]))
        critic = keras.Model([action_in, critic_obs], keras.layers.Dense(1)(hidden))
        memory = MixedMemory(SequentialMemory.from_arrays(**small_data, seed=0), SequentialMemory(200, seed=1))
        agent = SACAgent(
            nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=memory,
            batch_size=16, nb_steps_warmup=warmup, nb_steps_random=warmup, jit_compile=False,
        )  # fmt: skip
        agent.compile(keras.optimizers.Adam(1e-3))
        agent.fit_offline(30, verbose=0, action_space=PENDULUM_BOX)
        agent.fit(gym.make("Pendulum-v1", max_episode_steps=20), nb_steps=20, verbose=0, seed=0)
        return agent

    done = sac(warmup=20)  # passed offline: all 20 online steps trained
    assert (done.step, done._updates) == (50, 50)
    partial = sac(warmup=40)  # steps 30..40 still warm up: the 10 steps after it trained
    assert (partial.step, partial._updates) == (50, 30 + 9)


def test_td3bc_bc_weight_switches_the_behaviour_cloning_term(small_data):
    from rl.agents.off_policy import GraphBatch

    agent = build(SequentialMemory.from_arrays(**small_data), normalize_observations=False)
    assert agent.bc_weight == 1.0 and agent.get_config()["bc_weight"] == 1.0
    obs, actions = small_data["observations"][:32], small_data["actions"][:32]
    zeros = np.zeros(32, np.float32)
    batch = GraphBatch(obs, actions, zeros, zeros, obs)
    other = GraphBatch(obs, np.clip(actions + 0.5, -2, 2), zeros, zeros, obs)
    agent._pull()
    full, bc = agent.actor_loss_bc(agent.nets, batch)
    agent.bc_weight = 0.0
    q_term, bc0 = agent.actor_loss_bc(agent.nets, batch)
    np.testing.assert_allclose(full, q_term + bc, rtol=1e-5)
    assert float(bc0) == float(bc) > 0  # still reported as `bc_loss`
    q_other, _ = agent.actor_loss_bc(agent.nets, other)
    assert float(q_other) == float(q_term)  # the dataset's actions no longer pull the actor
    agent.bc_weight = 0.5
    half, _ = agent.actor_loss_bc(agent.nets, batch)
    np.testing.assert_allclose(half, q_term + 0.5 * bc, rtol=1e-5)
    assert agent.get_config()["bc_weight"] == 0.5
    agent._push()
    for bad, error in ((-1, ValueError), ("no", TypeError), (float("nan"), ValueError)):
        with pytest.raises(error, match=r"bc_weight.*Received: bc_weight="):
            agent.bc_weight = bad
    assert agent.bc_weight == 0.5
    with pytest.raises(ValueError, match=r"`bc_weight` must be >= 0.0. Received: bc_weight=-0.5"):
        build(SequentialMemory.from_arrays(**small_data), bc_weight=-0.5)


def test_setting_bc_weight_retraces_the_compiled_functions_once(small_data):
    agent = build(SequentialMemory.from_arrays(**small_data))
    agent.fit_offline(2, verbose=0, updates_per_call=2)
    traces = agent.trace_count
    agent.bc_weight = 1.0  # unchanged: the traced functions stay
    agent.fit_offline(2, verbose=0, updates_per_call=2)
    assert agent.trace_count == traces
    agent.bc_weight = 0.0
    agent.fit_offline(2, verbose=0, updates_per_call=2)
    assert agent.trace_count == traces + 1


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_of_a_fine_tuning_run_with_a_mixed_memory_resumes_exactly(small_data, tmp_path):
    def agent_and_env(seed):
        memory = MixedMemory(
            SequentialMemory.from_arrays(**small_data, seed=seed),
            PrioritizedMemory(300, seed=seed + 1),
            ratio=0.25 if seed else 0.5,
        )
        agent = build(memory, seed=seed, random_process=GaussianWhiteNoiseProcess(sigma=0.2, seed=seed))
        return agent, gym.make("Pendulum-v1", max_episode_steps=20)

    straight, env = agent_and_env(0)
    straight.fit_offline(20, verbose=0, action_space=PENDULUM_BOX)
    straight.bc_weight = 0.0
    straight.fit(env, nb_steps=40, verbose=0, seed=0)
    straight.save_checkpoint(tmp_path / "ckpt", env=env)
    straight.fit(env, nb_steps=40, verbose=0)

    resumed, env2 = agent_and_env(7)  # other weights, seeds, ratio and bc_weight
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    assert (resumed.step, resumed.bc_weight, resumed.memory.ratio) == (60, 0.0, 0.5)
    resumed.fit(env2, nb_steps=40, verbose=0)
    assert resumed.step == straight.step == 100
    assert_same_weights(straight, resumed)
    for part in ("offline", "online"):
        a, b = getattr(straight.memory, part), getattr(resumed.memory, part)
        for key, value in a.to_arrays().items():
            np.testing.assert_array_equal(value, b.to_arrays()[key])
        assert a.rng.bit_generator.state == b.rng.bit_generator.state
    np.testing.assert_array_equal(straight.memory.online.priorities, resumed.memory.online.priorities)


@pytest.mark.parametrize("value", [-1.0, "0", None])
def test_a_checkpoint_with_a_bad_bc_weight_is_refused_and_changes_nothing(small_data, tmp_path, value):
    from checkpoint_helpers import rewrite_state

    agent = build(SequentialMemory.from_arrays(**small_data))
    agent.bc_weight = 0.25
    agent.save_checkpoint(tmp_path / "ckpt")
    rewrite_state(tmp_path / "ckpt", lambda state: state["agent_state"].update(bc_weight=value))
    other = build(SequentialMemory.from_arrays(**small_data))
    with pytest.raises(ValueError, match=r"agent_state.bc_weight is invalid. Received: bc_weight="):
        other.load_checkpoint(tmp_path / "ckpt")
    assert other.bc_weight == 1.0 and other.step == 0


def test_a_mixed_memory_file_is_checked_before_anything_changes(tmp_path):
    memory = mixed(0.5)
    memory.save(tmp_path / "m.npz")
    other = MixedMemory(marked(60, 3.0, seed=5), SequentialMemory(100, seed=6), ratio=0.1)
    other.load(tmp_path / "m.npz")
    assert other.ratio == 0.5 and other.online.nb_transitions == 30
    np.testing.assert_array_equal(other.sample(6).reward, memory.sample(6).reward)
    small = MixedMemory(marked(60, 3.0), SequentialMemory(50), ratio=0.1)
    with pytest.raises(ValueError, match=r"The online part of the memory file is invalid.*limit=100.*limit=50"):
        small.load(tmp_path / "m.npz")
    assert small.ratio == 0.1 and small.online.nb_transitions == 0
    SequentialMemory(10).save(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match=r"Not a MixedMemory file.*Received: filepath="):
        small.load(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match=r"missing or damaged"):
        small.load(tmp_path / "absent.npz")


# ------------------------------------------------------------------ learning
def finetune(offline_updates, online_steps, hidden=64, lr=1e-3, seed=0, episodes=20):
    """TD3+BC offline on the noisy dataset, then `bc_weight=0` and `online_steps` of `fit` on a MixedMemory;
    returns (dataset return, return after offline training, return after fine-tuning)."""
    data, dataset_return = unit_action_dataset(episodes)
    memory = MixedMemory(
        SequentialMemory.from_arrays(**data, seed=seed), SequentialMemory(online_steps + 10, seed=seed + 1)
    )
    agent = build(
        memory, seed=seed, hidden=hidden, lr=lr, batch_size=256, action_scale=1.0,
        random_process=GaussianWhiteNoiseProcess(sigma=0.1, seed=seed),
    )  # fmt: skip
    env = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -1.0, 1.0)
    agent.fit_offline(offline_updates, verbose=0, action_space=env.action_space, updates_per_call=250)

    def mean_return():
        history = agent.test(env, nb_episodes=10, visualize=False, verbose=0, seed=100)
        return float(np.mean(history.history["episode_reward"]))

    offline = mean_return()
    agent.bc_weight = 0.0
    agent.fit(env, nb_steps=online_steps, verbose=0, seed=seed)
    return dataset_return, offline, mean_return()


def test_td3bc_then_td3_fine_tunes_online_beyond_its_offline_return():
    """A short seeded run: 20 noisy episodes (mean return about -590), 1500 offline updates of [64, 64]
    networks (about -800 on the 10 test episodes here), then `bc_weight=0` and 3000 online steps on a
    MixedMemory (about -240)."""
    dataset, offline, online = finetune(1500, 3000)
    assert dataset < -550
    assert online > offline + 200, (offline, online)
    assert online > -350, online


@pytest.mark.slow
def test_fine_tuning_recipe_of_the_guide():
    """The guide's recipe for one seed: 100 noisy episodes (about -570), [256, 256] networks, learning
    rate 3e-4, 5000 offline updates (about -285 on the 10 test episodes here), then 10 000 online steps
    on a MixedMemory (about -190)."""
    dataset, offline, online = finetune(5000, 10_000, hidden=256, lr=3e-4, episodes=100)
    assert dataset < -550
    assert online > offline + 50, (offline, online)
    assert online > -250, online
