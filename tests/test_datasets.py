"""Datasets into and out of the replay memory: from_arrays, to_arrays, from_minari, and bad datasets."""

import gymnasium as gym
import numpy as np
import pytest

from rl.memory import SequentialMemory


def dataset(n=10, obs_dim=3, nb_actions=1, seed=0, ends=((3, "terminal"), (6, "truncation"), (9, "truncation"))):
    """Flat arrays with episodes ending where `ends` says; next_observations hold distinct final values."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    terminals, truncations = np.zeros(n, bool), np.zeros(n, bool)
    next_obs = np.roll(obs, -1, axis=0).copy()
    for t, kind in ends:
        (terminals if kind == "terminal" else truncations)[t] = True
        next_obs[t] = 100.0 + t  # the real final observation, seen nowhere else
    return {
        "observations": obs,
        "actions": rng.uniform(-1, 1, size=(n, nb_actions)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "truncations": truncations,
        "next_observations": next_obs,
    }


def test_from_arrays_round_trip_with_next_observations():
    data = dataset()
    memory = SequentialMemory.from_arrays(**data, seed=0)
    assert memory.nb_transitions == 10
    assert memory.nb_entries == 13  # 10 steps and one final observation per episode
    out = memory.to_arrays()
    assert set(out) == set(data)
    for key, value in data.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    again = SequentialMemory.from_arrays(**out).to_arrays()
    for key, value in data.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)


def test_from_arrays_samples_the_stored_transitions():
    data = dataset()
    memory = SequentialMemory.from_arrays(**data, seed=0)
    pairs = {}
    for _ in range(30):
        batch = memory.sample(10)
        for s0, a, s1, t in zip(batch.state0, batch.action, batch.state1, batch.terminal):
            pairs[(tuple(s0[0]), float(a[0]))] = (tuple(s1[0]), float(t))
    expected = {
        (tuple(o), float(a[0])): (tuple(n), float(term))
        for o, a, n, term in zip(data["observations"], data["actions"], data["next_observations"], data["terminals"])
    }
    assert pairs.items() <= expected.items()
    assert len(pairs) == 10  # 300 draws reach every transition


def test_truncated_episode_bootstraps_from_its_real_final_observation():
    data = dataset()
    memory = SequentialMemory.from_arrays(**data)
    out = memory.to_arrays()
    np.testing.assert_array_equal(out["next_observations"][6], np.full(3, 106.0, np.float32))
    assert not out["terminals"][6] and out["truncations"][6]  # bootstraps: not terminal
    assert out["terminals"][3] and not out["truncations"][3]


def test_truncated_last_step_is_not_a_transition_without_next_observations():
    data = dataset()
    del data["next_observations"]
    memory = SequentialMemory.from_arrays(**data)
    # Steps 6 and 9 end truncated episodes: their next observation is unknown, so they are dropped.
    assert memory.nb_transitions == 8
    out = memory.to_arrays()
    kept = [0, 1, 2, 3, 4, 5, 7, 8]
    np.testing.assert_array_equal(out["observations"], data["observations"][kept])
    np.testing.assert_array_equal(out["rewards"], data["rewards"][kept])
    # The step before each dropped one ends its episode, bootstrapping from the dropped step's observation.
    np.testing.assert_array_equal(out["next_observations"][5], data["observations"][6])
    np.testing.assert_array_equal(out["truncations"], [0, 0, 0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(out["next_observations"][7], data["observations"][9])


def test_from_arrays_window_length_builds_windows_within_episodes():
    data = dataset(ends=((4, "terminal"), (9, "truncation")))
    data["observations"] = np.arange(10, dtype=np.float32)[:, None].repeat(3, 1)
    data["next_observations"] = data["observations"] + 1
    data["next_observations"][4] = 100.0
    data["next_observations"][9] = 109.0
    memory = SequentialMemory.from_arrays(**data, window_length=3, seed=1)
    batch = memory.sample(12)
    for s0, s1 in zip(batch.state0[:, :, 0], batch.state1[:, :, 0]):
        t = int(s0[-1])
        first = 0 if t <= 4 else 5
        want = [v if v >= first else 0.0 for v in (t - 2, t - 1, t)]
        np.testing.assert_array_equal(s0, want)
        assert s1[-1] in (t + 1, 100.0, 109.0)


def test_from_arrays_limit_and_seed():
    data = dataset()
    memory = SequentialMemory.from_arrays(**data, limit=50, seed=3)
    assert memory.limit == 50
    other = SequentialMemory.from_arrays(**data, limit=50, seed=3)
    np.testing.assert_array_equal(memory.sample(16).reward, other.sample(16).reward)
    with pytest.raises(ValueError, match=r"`limit` is too small.*13 slots.*Received: limit=12"):
        SequentialMemory.from_arrays(**data, limit=12)


def test_memory_filled_by_append_exports_and_reloads():
    memory = SequentialMemory(limit=100, seed=0)
    for t in range(5):
        obs, next_obs = np.full(2, t, np.float32), np.full(2, t + 1, np.float32)
        memory.append(obs, [0.1 * t], float(t), terminal=t == 4, next_observation=next_obs)
    out = memory.to_arrays()
    np.testing.assert_array_equal(out["rewards"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(out["terminals"], [0, 0, 0, 0, 1])
    rebuilt = SequentialMemory.from_arrays(**out).to_arrays()
    for key in out:
        np.testing.assert_array_equal(rebuilt[key], out[key])


# ------------------------------------------------------------------ bad datasets (one test per case)
def test_arrays_of_different_lengths_are_refused():
    data = dataset()
    data["actions"] = data["actions"][:-1]
    with pytest.raises(ValueError, match=r"one row per step, as `observations` \(10 rows\).*actions of shape \(9, 1\)"):
        SequentialMemory.from_arrays(**data)


def test_nan_or_inf_values_are_refused():
    data = dataset()
    data["rewards"][4] = np.nan
    with pytest.raises(ValueError, match=r"`rewards` must hold finite numbers only. Received: rewards\[4\]=.*nan"):
        SequentialMemory.from_arrays(**data)
    data = dataset()
    data["observations"][2, 1] = np.inf
    with pytest.raises(ValueError, match=r"`observations` must hold finite.*observations\[2, 1\]=.*inf"):
        SequentialMemory.from_arrays(**data)


def test_empty_dataset_is_refused():
    data = {k: v[:0] for k, v in dataset().items()}
    with pytest.raises(ValueError, match=r"The dataset is empty. Received: observations of shape \(0, 3\)"):
        SequentialMemory.from_arrays(**data)


def test_last_episode_without_end_flag_is_kept_as_truncated():
    data = dataset(ends=((3, "terminal"),))
    with pytest.warns(UserWarning, match=r"last episode \(steps 4 to 9\) has no end flag.*truncated.*bootstraps"):
        memory = SequentialMemory.from_arrays(**data)
    out = memory.to_arrays()
    assert memory.nb_transitions == 10 and out["truncations"][9]
    np.testing.assert_array_equal(out["next_observations"][9], data["next_observations"][9])
    del data["next_observations"]
    with pytest.warns(UserWarning, match=r"kept as truncated, so its last step is not used as a transition"):
        memory = SequentialMemory.from_arrays(**data)
    assert memory.nb_transitions == 9


def test_end_flags_must_be_booleans():
    data = dataset()
    data["terminals"] = data["terminals"].astype(np.float32) * 2
    with pytest.raises(TypeError, match=r"`terminals` must hold booleans.*values \[0.0, 2.0\]"):
        SequentialMemory.from_arrays(**data)


def test_non_numeric_arrays_are_refused():
    data = dataset()
    data["observations"] = np.array(["a"] * 10)
    with pytest.raises(TypeError, match=r"`observations` must be an array of numbers.*dtype <U1"):
        SequentialMemory.from_arrays(**data)


def test_next_observations_must_follow_observations_inside_an_episode():
    data = dataset()
    data["next_observations"][1] += 1.0
    with pytest.raises(ValueError, match=r"`next_observations\[1\]` must equal `observations\[2\]`"):
        SequentialMemory.from_arrays(**data)


def test_to_arrays_on_an_empty_memory_is_refused():
    with pytest.raises(ValueError, match="The memory is empty"):
        SequentialMemory(limit=10).to_arrays()


# ------------------------------------------------------------------ Minari (the `minari` extra)
def _pendulum_episodes(nb_episodes, steps, seed):
    env = gym.make("Pendulum-v1", max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    episodes = []
    for e in range(nb_episodes):
        obs, _ = env.reset(seed=seed + e)
        ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        while True:
            action = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(
                ("observations", "actions", "rewards", "terminations", "truncations"),
                (obs, action, reward, terminated, truncated),
            ):
                ep[key].append(value)
            if terminated or truncated:
                break
        episodes.append({k: np.asarray(v) for k, v in ep.items()})
    return env, episodes


def _check_minari_memory(memory, episodes):
    out = memory.to_arrays()
    np.testing.assert_allclose(out["observations"], np.concatenate([e["observations"][:-1] for e in episodes]))
    np.testing.assert_allclose(out["next_observations"], np.concatenate([e["observations"][1:] for e in episodes]))
    np.testing.assert_allclose(out["actions"], np.concatenate([e["actions"] for e in episodes]))
    np.testing.assert_allclose(out["rewards"], np.concatenate([e["rewards"] for e in episodes]), rtol=1e-6)
    np.testing.assert_array_equal(out["truncations"], np.concatenate([e["truncations"] for e in episodes]))
    assert not out["terminals"].any()


@pytest.mark.filterwarnings("ignore:.*is set to None:UserWarning")  # Minari's metadata reminders
def test_from_minari_round_trip(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env, episodes = _pendulum_episodes(3, 15, seed=0)
    buffers = [
        EpisodeBuffer(id=i, observations=e["observations"], actions=e["actions"], rewards=list(e["rewards"]),
                      terminations=list(e["terminations"]), truncations=list(e["truncations"]))
        for i, e in enumerate(episodes)
    ]  # fmt: skip
    ds = minari.create_dataset_from_buffers(
        "pendulum/arrays-v0", buffers, env=env, algorithm_name="random", data_format="hdf5"
    )
    memory = SequentialMemory.from_minari(minari.load_dataset("pendulum/arrays-v0"))
    assert memory.nb_transitions == ds.total_steps == 45
    _check_minari_memory(memory, episodes)


@pytest.mark.filterwarnings("ignore:.*is set to None:UserWarning")
def test_from_minari_data_collector(tmp_path, monkeypatch):
    """A dataset recorded by `minari.DataCollector` (its `create` extra needs jax, a heavy package)."""
    minari = pytest.importorskip("minari")
    pytest.importorskip("jax", reason="minari.DataCollector needs the minari[create] extra (jax)")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=12), data_format="hdf5")
    env.action_space.seed(0)
    for e in range(2):
        env.reset(seed=e)
        while True:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    dataset_ = env.create_dataset("pendulum/collected-v0", algorithm_name="random")
    episodes = [
        {"observations": e.observations, "actions": e.actions, "rewards": e.rewards, "truncations": e.truncations}
        for e in dataset_.iterate_episodes()
    ]
    memory = SequentialMemory.from_minari(dataset_, seed=0)
    assert memory.nb_transitions == 24
    _check_minari_memory(memory, episodes)


def test_from_minari_refuses_other_objects():
    with pytest.raises(TypeError, match=r"`dataset` must be a Minari dataset.*minari.*extra"):
        SequentialMemory.from_minari([1, 2, 3])


# ------------------------------------------------------------------ episodes of one step
@pytest.mark.parametrize("flag", ["terminals", "truncations"])
def test_episodes_of_one_step_each_are_transitions(flag):
    rng = np.random.default_rng(0)
    n = 6
    data = {
        "observations": rng.normal(size=(n, 3)),
        "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.full(n, flag == "terminals"),
        "truncations": np.full(n, flag == "truncations"),
        "next_observations": rng.normal(size=(n, 3)) + 100.0,  # every step ends its episode
    }
    memory = SequentialMemory.from_arrays(**data, seed=0)
    assert memory.nb_transitions == n and memory.nb_entries == 2 * n
    out = memory.to_arrays()
    for key, value in data.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    seen = set()
    for _ in range(10):
        batch = memory.sample(6)
        for s0, a, r, s1, t in zip(batch.state0[:, 0], batch.action, batch.reward, batch.state1[:, 0], batch.terminal):
            step = int(r)
            np.testing.assert_array_equal(s0, data["observations"][step])
            np.testing.assert_array_equal(a, data["actions"][step])
            np.testing.assert_array_equal(s1, data["next_observations"][step])
            assert t == (flag == "terminals")
            seen.add(step)
    assert seen == set(range(n))


def test_a_dataset_of_one_step():
    memory = SequentialMemory.from_arrays([[1.0, 2.0]], [[0.5]], [3.0], [False], [True], next_observations=[[4.0, 5.0]])
    batch = memory.sample(2)
    np.testing.assert_array_equal(batch.state0[:, 0], [[1.0, 2.0]] * 2)
    np.testing.assert_array_equal(batch.state1[:, 0], [[4.0, 5.0]] * 2)
    np.testing.assert_array_equal(batch.terminal, [0.0, 0.0])


# ------------------------------------------------------------------ Minari end flags
class _Episode:
    """What `from_minari` reads of a Minari episode."""

    def __init__(self, id, steps, terminations=None, truncations=None):
        self.id = id
        self.observations = np.arange(steps + 1, dtype=np.float32)[:, None] + 10.0 * id
        self.actions = np.zeros((steps, 1), np.float32)
        self.rewards = np.ones(steps)
        self.terminations = np.zeros(steps) if terminations is None else np.asarray(terminations)
        self.truncations = np.eye(steps)[-1] if truncations is None else np.asarray(truncations)


class _Dataset:
    def __init__(self, episodes):
        self.episodes = episodes

    def iterate_episodes(self):
        return iter(self.episodes)


def test_from_minari_reads_flags_of_booleans_or_0_1():
    memory = SequentialMemory.from_minari(_Dataset([_Episode(0, 3), _Episode(1, 2, terminations=[False, True])]))
    out = memory.to_arrays()
    np.testing.assert_array_equal(out["terminals"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(out["truncations"], [0, 0, 1, 0, 0])


@pytest.mark.parametrize("name", ["terminations", "truncations"])
def test_from_minari_refuses_end_flags_that_are_not_booleans(name):
    """A flag of 0.5 is refused (casting it to bool would end the episode there without a word)."""
    flags = {"terminations": np.zeros(4), "truncations": np.zeros(4), name: [0.0, 0.5, 0.0, 1.0]}
    dataset = _Dataset([_Episode(0, 3), _Episode(7, 4, **flags)])
    with pytest.raises(
        TypeError, match=rf"Episode 7's `{name}` must hold booleans \(or 0/1\).*Received: {name}\[1\]=0.5"
    ):
        SequentialMemory.from_minari(dataset)


def test_from_minari_refuses_flags_of_another_length():
    dataset = _Dataset([_Episode(0, 3, terminations=[0, 0, 0, 0])])
    with pytest.raises(ValueError, match=r"Episode 0 must hold one `terminations` flag per action \(3\).*shape \(4,\)"):
        SequentialMemory.from_minari(dataset)


# ------------------------------------------------------------------ float64 observations, end to end
def test_td3bc_trains_offline_on_float64_observations():
    import keras
    from keras import layers

    from rl.agents import TD3BCAgent

    rng = np.random.default_rng(0)
    n = 300
    # float32 rounds the first value by up to 0.5 (its spacing at 1e7 is 1): visible in the statistics.
    obs = rng.normal(size=(n + 1, 3)) + np.array([1e7, 0.0, 0.0])
    data = {
        "observations": obs[:-1],
        "actions": rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
        "rewards": rng.normal(size=n),
        "terminals": np.eye(n, dtype=bool)[-1],
        "next_observations": obs[1:],
    }
    memory = SequentialMemory.from_arrays(**data, seed=0)
    keras.utils.set_random_seed(0)
    obs_in = keras.Input((3,))
    actor = keras.Model(obs_in, layers.Dense(1, activation="tanh")(layers.Dense(16, activation="relu")(obs_in)))
    action_in, critic_obs = keras.Input((1,)), keras.Input((3,))
    hidden = layers.Dense(16, activation="relu")(layers.Concatenate()([action_in, critic_obs]))
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(hidden))
    agent = TD3BCAgent(
        nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=memory, batch_size=32,
        jit_compile=False,
    )  # fmt: skip
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    history = agent.fit_offline(4, verbose=0, log_interval=2, updates_per_call=2).history
    assert agent.step == 4 and history["nb_steps"] == [2, 4]
    for name in ("critic_loss", "actor_loss", "bc_loss"):
        assert len(history[name]) == 2 and np.isfinite(history[name]).all(), name
    # The statistics come from the dataset's own values, not from values rounded to float32.
    np.testing.assert_allclose(agent.observation_mean, obs[:-1].mean(0), rtol=1e-7)
    np.testing.assert_allclose(agent.observation_std, obs[:-1].std(0) + 1e-3, rtol=1e-4)
    # The in-graph sampler returns the stored observations, rounded once to float32 for the networks.
    batch = agent._dataset.sample(agent.seed_stream.next(), 64, 1)
    stored = {tuple(o.astype(np.float32)): tuple(n.astype(np.float32)) for o, n in zip(obs[:-1], obs[1:])}
    for s0, s1 in zip(batch.state0.numpy(), batch.state1.numpy()):
        assert batch.state0.dtype == np.float32 and stored[tuple(s0)] == tuple(s1)
    assert memory.sampling_arrays()["observations"].dtype == np.float64
