import numpy as np
import pytest

from rl.memory import Batch, ObservationWindow, SequentialMemory


def fill(memory, episodes, length, truncate_last=False, start=0):
    """Appends episodes whose observation is [1000 * episode + t]; the last step ends the episode."""
    for e in range(start, start + episodes):
        obs = np.array([1000.0 * e])
        for t in range(length):
            nxt = np.array([1000.0 * e + t + 1])
            last = t == length - 1
            memory.append(
                obs,
                [float(t)],
                float(t),
                terminal=last and not truncate_last,
                next_observation=nxt,
                truncated=last and truncate_last,
            )
            obs = nxt


def test_sample_returns_typed_batch_with_shapes():
    memory = SequentialMemory(limit=100, seed=0)
    fill(memory, episodes=2, length=5)
    batch = memory.sample(8)
    assert isinstance(batch, Batch)
    assert batch.state0.shape == (8, 1, 1)
    assert batch.state1.shape == (8, 1, 1)
    assert batch.action.shape == (8, 1)
    assert batch.reward.shape == (8,) and batch.reward.dtype == np.float32
    assert batch.terminal.shape == (8,)


def test_transitions_never_cross_episodes_and_next_state_is_right():
    memory = SequentialMemory(limit=1000, seed=1)
    fill(memory, episodes=20, length=7)
    batch = memory.sample(1000)
    s0, s1 = batch.state0[:, 0, 0], batch.state1[:, 0, 0]
    np.testing.assert_array_equal(s1, s0 + 1)  # same episode, next step
    np.testing.assert_array_equal(batch.reward, s0 % 1000)  # reward t stored with obs t
    assert memory.nb_transitions == 20 * 7
    assert memory.nb_entries == 20 * 8  # one extra slot per episode for its final observation


def test_terminated_cuts_bootstrap_but_truncated_keeps_final_observation():
    memory = SequentialMemory(limit=100, seed=2)
    fill(memory, episodes=1, length=3, truncate_last=False, start=0)
    fill(memory, episodes=1, length=3, truncate_last=True, start=1)
    batch = memory.sample(100)
    s0, s1 = batch.state0[:, 0, 0], batch.state1[:, 0, 0]
    last_terminated = s0 == 2.0
    last_truncated = s0 == 1002.0
    assert last_terminated.any() and last_truncated.any()
    assert np.all(batch.terminal[last_terminated] == 1.0)
    assert np.all(batch.terminal[last_truncated] == 0.0)  # bootstraps...
    assert np.all(s1[last_truncated] == 1003.0)  # ...from the real final observation
    assert np.all(batch.terminal[~last_terminated] == 0.0)


def test_ring_buffer_overwrites_oldest_and_keeps_consistency():
    memory = SequentialMemory(limit=50, seed=3)
    fill(memory, episodes=30, length=4)  # 150 slots written into 50
    assert memory.nb_entries == 50
    batches = [memory.sample(50) for _ in range(10)]
    s0 = np.concatenate([b.state0[:, 0, 0] for b in batches])
    s1 = np.concatenate([b.state1[:, 0, 0] for b in batches])
    np.testing.assert_array_equal(s1, s0 + 1)
    assert s0.min() >= 1000 * 20  # only the last ~10 episodes remain


def test_windows_are_zero_padded_at_episode_start_and_never_mix_episodes():
    memory = SequentialMemory(limit=500, window_length=3, seed=4)
    fill(memory, episodes=10, length=6)
    batch = memory.sample(400)
    assert batch.state0.shape == (400, 3, 1)
    for s0, s1 in zip(batch.state0[:, :, 0], batch.state1[:, :, 0]):
        last = s0[-1]
        episode_start = last - last % 1000
        t = int(last % 1000)
        expected = [episode_start + k if k >= 0 else 0.0 for k in (t - 2, t - 1, t)]
        np.testing.assert_array_equal(s0, expected)
        expected1 = [episode_start + k if k >= 0 else 0.0 for k in (t - 1, t, t + 1)]
        np.testing.assert_array_equal(s1, expected1)


def test_windows_after_wraparound_only_use_intact_slots():
    memory = SequentialMemory(limit=40, window_length=4, seed=5)
    fill(memory, episodes=25, length=9)
    states = np.concatenate([memory.sample(40).state0[:, :, 0] for _ in range(8)])
    for s0 in states:
        nonzero = s0[s0 != 0]
        # consecutive observations of one episode
        np.testing.assert_array_equal(np.diff(nonzero), np.ones(len(nonzero) - 1))


def test_observation_window_matches_memory_windows():
    window = ObservationWindow(3)
    states = [window.push(np.array([float(t)])) for t in range(4)]
    np.testing.assert_array_equal(states[0][:, 0], [0, 0, 0])
    np.testing.assert_array_equal(states[3][:, 0], [1, 2, 3])
    window.reset()
    np.testing.assert_array_equal(window.push(np.array([9.0]))[:, 0], [0, 0, 9])


def test_same_seed_same_samples_and_different_seed_differs():
    a, b, c = (SequentialMemory(limit=200, seed=s) for s in (7, 7, 8))
    for m in (a, b, c):
        fill(m, episodes=5, length=10)
    np.testing.assert_array_equal(a.sample(32).state0, b.sample(32).state0)
    assert not np.array_equal(a.sample(32).state0, c.sample(32).state0)


@pytest.mark.parametrize("window_length", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_into_writes_what_sample_returns(window_length, dtype):
    memories = [SequentialMemory(limit=37, window_length=window_length, seed=3) for _ in range(2)]
    for m in memories:
        for e in range(6):  # 6 episodes of 9 steps in 37 slots: the ring wraps around
            obs = np.array([1000.0 * e, -e], dtype=dtype)
            for t in range(9):
                nxt = np.array([1000.0 * e + t + 1, -e], dtype=dtype)
                m.append(obs, [float(t), -float(t)], float(t) / 2, t == 8 and e % 2 == 0, nxt, truncated=t == 8)
                obs = nxt
    terminals = []
    for _ in range(5):
        batch = memories[0].sample(16)
        state0 = np.full((16, window_length, 2), np.nan, np.float32)
        state1 = np.full((16, window_length, 2), np.nan, np.float32)
        rows = np.full((16, 4), np.nan, np.float32)
        memories[1].sample_into(16, state0, state1, rows)
        np.testing.assert_array_equal(state0, batch.state0.astype(np.float32))
        np.testing.assert_array_equal(state1, batch.state1.astype(np.float32))
        np.testing.assert_array_equal(rows[:, :2], batch.action)
        np.testing.assert_array_equal(rows[:, 2], batch.reward)
        np.testing.assert_array_equal(rows[:, 3], batch.terminal)
        terminals.append(batch.terminal)
    assert 0 < np.mean(terminals) < 1  # the batches held terminal and non-terminal transitions


def test_sample_into_rejects_wrong_shapes():
    memory = SequentialMemory(limit=10)
    fill(memory, 1, 3)
    ok = np.zeros((4, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"state1.*\(4, 1, 1\).*\(4, 2, 1\)"):
        memory.sample_into(4, ok, np.zeros((4, 2, 1), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"rows.*float64"):
        memory.sample_into(4, ok, ok.copy(), np.zeros((4, 3)))
    before = memory.rng.bit_generator.state
    with pytest.raises(ValueError, match="state0"):
        memory.sample_into(4, np.zeros((3, 1, 1), np.float32), ok.copy(), np.zeros((4, 3), np.float32))
    assert memory.rng.bit_generator.state == before  # a refused call draws nothing


def test_continuation_is_detected_by_value_when_objects_differ():
    memory = SequentialMemory(limit=100, seed=0)
    memory.append(np.array([0.0]), [0.0], 0.0, False, np.array([1.0]))
    memory.append(np.array([1.0]), [0.0], 0.0, False, np.array([2.0]))  # equal values, new object
    assert memory.nb_entries == 3
    memory.end_episode()
    memory.append(np.array([2.0]), [0.0], 0.0, False, np.array([3.0]))  # new episode: new slot
    assert memory.nb_entries == 5


def test_save_and_load_round_trip(tmp_path):
    memory = SequentialMemory(limit=64, window_length=2, seed=9)
    fill(memory, episodes=12, length=7)
    path = tmp_path / "memory.npz"
    memory.save(path)
    restored = SequentialMemory(limit=64, window_length=2, seed=123)
    restored.load(path)
    a, b = memory.sample(16), restored.sample(16)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert "observations" in data.files


def test_load_rejects_bad_files(tmp_path):
    memory = SequentialMemory(limit=64)
    with pytest.raises(ValueError, match="does not exist"):
        memory.load(tmp_path / "missing.npz")
    fill(memory, 2, 3)
    path = tmp_path / "m.npz"
    memory.save(path)
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        SequentialMemory(limit=64).load(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match="limit=64"):
        SequentialMemory(limit=32).load(path)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"limit": 0}, ValueError, "limit"),
        ({"limit": 1.5}, TypeError, "limit"),
        ({"limit": 10, "window_length": 0}, ValueError, "window_length"),
    ],
)
def test_constructor_validation(kwargs, error, words):
    with pytest.raises(error, match=words):
        SequentialMemory(**kwargs)


def test_sample_validation():
    memory = SequentialMemory(limit=10)
    with pytest.raises(ValueError, match="no transition"):
        memory.sample(2)
    fill(memory, 1, 3)
    with pytest.raises(ValueError, match="batch_size"):
        memory.sample(0)
    with pytest.raises(ValueError, match="batch_size"):
        memory.sample(11)


def test_append_rejects_shape_changes():
    memory = SequentialMemory(limit=10)
    memory.append(np.zeros(2), [0.0], 0.0, False, np.zeros(2))
    with pytest.raises(ValueError, match="observation.shape"):
        memory.append(np.zeros(3), [0.0], 0.0, False, np.zeros(3))
    with pytest.raises(ValueError, match="action.shape"):
        memory.append(np.zeros(2), [0.0, 1.0], 0.0, False, np.zeros(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memory_use_is_proportional_to_limit(dtype):
    memory = SequentialMemory(limit=100_000)
    memory.append(np.zeros(17, dtype), [0.0], 0.0, False, np.ones(17, dtype))
    # per slot: the observation (17 values of its dtype), the action, reward and terminal (3 float32),
    # the position in the episode (int32) and a valid flag (1 byte)
    assert memory.nbytes == 100_000 * (17 * np.dtype(dtype).itemsize + (3 + 1) * 4 + 1)


# ---------------------------------------------------------------- observation dtypes
# float32 rounds these by up to 4 (at 1e8 its spacing is 8): only float64 storage returns them.
LARGE = np.array([[1e8 + 0.5, -3.25, 123456789.123], [2e8 + 1.5, 7.0, 0.1]])


def test_float64_observations_are_stored_and_sampled_with_their_values():
    memory = SequentialMemory(limit=10, seed=0)
    memory.append(LARGE[0], [0.0], 1.0, True, next_observation=LARGE[1])
    batch = memory.sample(4)
    assert batch.state0.dtype == batch.state1.dtype == np.float64
    np.testing.assert_array_equal(batch.state0[:, 0], np.repeat(LARGE[:1], 4, axis=0))
    np.testing.assert_array_equal(batch.state1[:, 0], np.repeat(LARGE[1:], 4, axis=0))
    arrays = memory.to_arrays()
    np.testing.assert_array_equal(arrays["observations"], LARGE[:1])
    np.testing.assert_array_equal(arrays["next_observations"], LARGE[1:])
    # Agents pack batches into float32 arrays: `sample_into` rounds once, as a float32 store did.
    state0, state1 = np.zeros((4, 1, 3), np.float32), np.zeros((4, 1, 3), np.float32)
    memory.sample_into(4, state0, state1, np.zeros((4, 3), np.float32))
    np.testing.assert_array_equal(state0[:, 0], np.repeat(LARGE[:1].astype(np.float32), 4, axis=0))
    np.testing.assert_array_equal(state1[:, 0], np.repeat(LARGE[1:].astype(np.float32), 4, axis=0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float16, np.float32, np.float64, np.bool_])
def test_observations_keep_their_dtype(tmp_path, dtype):
    obs = (np.arange(12).reshape(4, 3) % 2 if dtype is np.bool_ else np.arange(12).reshape(4, 3) * 20).astype(dtype)
    online = SequentialMemory(limit=10, seed=0)
    for t in range(3):
        online.append(obs[t], [0.0], 0.0, t == 2, next_observation=obs[t + 1])
    data = SequentialMemory.from_arrays(obs[:3], np.zeros((3, 1)), np.zeros(3), [0, 0, 1], next_observations=obs[1:])
    for memory in (online, data):
        out = memory.to_arrays()
        assert out["observations"].dtype == out["next_observations"].dtype == dtype
        np.testing.assert_array_equal(out["observations"], obs[:3])
        assert memory.sample(2).state0.dtype == dtype
        memory.save(tmp_path / "m.npz")  # saved files keep the dtype
        restored = SequentialMemory(limit=memory.limit)
        restored.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(restored.to_arrays()["observations"], obs[:3])
        assert restored.to_arrays()["observations"].dtype == dtype


def test_next_observations_of_a_wider_dtype_widen_the_store():
    obs = LARGE.astype(np.float32)
    data = SequentialMemory.from_arrays(obs[:1], [[0.0]], [0.0], [True], next_observations=LARGE[1:])
    out = data.to_arrays()
    assert out["observations"].dtype == np.float64
    np.testing.assert_array_equal(out["observations"], obs[:1])
    np.testing.assert_array_equal(out["next_observations"], LARGE[1:])  # the final observation is not rounded


def test_a_file_of_float32_observations_still_loads(tmp_path):
    """Earlier versions stored float observations as float32: their files load, as float32."""
    path, arrays = saved_memory(tmp_path)
    arrays["observations"] = arrays["observations"].astype(np.float32)
    np.savez(tmp_path / "float32.npz", **arrays)
    memory = SequentialMemory(limit=64, window_length=2, seed=1)
    memory.load(tmp_path / "float32.npz")
    out = memory.to_arrays()
    assert out["observations"].dtype == np.float32
    original = SequentialMemory(limit=64, window_length=2)
    original.load(path)
    np.testing.assert_array_equal(out["observations"], original.to_arrays()["observations"])


# ---------------------------------------------------------------- sampling always terminates
@pytest.fixture
def deadline():
    """Fails a test that runs longer than `seconds` instead of letting it hang."""
    import signal

    def expire(signum, frame):
        raise TimeoutError("the call did not return in time")

    previous = signal.signal(signal.SIGALRM, expire)

    def arm(seconds):
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("limit, window_length", [(2, 2), (3, 3), (4, 5), (10, 10)])
def test_a_limit_without_room_for_a_window_is_refused(limit, window_length):
    with pytest.raises(ValueError, match=rf"window_length \+ 1 = {window_length + 1}.*limit={limit}"):
        SequentialMemory(limit=limit, window_length=window_length)
    SequentialMemory(limit=window_length + 1, window_length=window_length)  # the smallest that works


@pytest.mark.parametrize("sampler", ["sample", "sample_into"])
def test_sampling_before_a_window_can_be_filled_raises_instead_of_hanging(deadline, sampler):
    memory = SequentialMemory(limit=100, window_length=4, ignore_episode_boundaries=True, seed=0)
    fill(memory, episodes=1, length=2)  # 3 slots: a window of 4 reaching back cannot be filled
    deadline(5)
    with pytest.raises(ValueError, match=r"None of the memory's 2 transitions can be sampled.*window_length=4"):
        if sampler == "sample":
            memory.sample(4)
        else:
            out = np.zeros((4, 4, 1), np.float32)
            memory.sample_into(4, out, out.copy(), np.zeros((4, 3), np.float32))


def test_the_few_transitions_that_fit_a_window_are_sampled(deadline):
    memory = SequentialMemory(limit=100, window_length=3, ignore_episode_boundaries=True, seed=0)
    fill(memory, episodes=1, length=3)  # slots 0..3: only the transition from slot 2 has 2 slots before it
    deadline(5)
    batch = memory.sample(64)
    np.testing.assert_array_equal(batch.state0[:, :, 0], np.tile([0.0, 1.0, 2.0], (64, 1)))
    np.testing.assert_array_equal(batch.state1[:, :, 0], np.tile([1.0, 2.0, 3.0], (64, 1)))


@pytest.mark.parametrize(
    "limit, window_length, ignore, episodes, length",
    [(5, 4, True, 3, 7), (5, 4, False, 1, 30), (3, 2, True, 2, 1), (4, 3, False, 10, 1), (6, 5, True, 1, 4)],
)
def test_sampling_terminates_in_every_small_configuration(deadline, limit, window_length, ignore, episodes, length):
    memory = SequentialMemory(limit=limit, window_length=window_length, ignore_episode_boundaries=ignore, seed=0)
    fill(memory, episodes=episodes, length=length)
    deadline(5)
    try:
        batch = memory.sample(limit)
    except ValueError as e:
        assert "can be sampled" in str(e)
    else:
        newest0, newest1 = batch.state0[:, -1, 0], batch.state1[:, -1, 0]
        np.testing.assert_array_equal(newest1, newest0 + 1)


def test_exact_draws_are_uniform_over_the_sampleable_transitions(monkeypatch):
    monkeypatch.setattr("rl.memory.sequential._DRAW_ROUNDS", 0)  # every draw goes through the exact set
    memory = SequentialMemory(limit=50, window_length=2, seed=0)
    fill(memory, episodes=10, length=3)  # 40 slots, 30 transitions
    s0 = np.concatenate([memory.sample(50).state0[:, -1, 0] for _ in range(60)])  # 3 000 draws
    values, counts = np.unique(s0, return_counts=True)
    assert len(values) == 30
    assert counts.min() > 60 and counts.max() < 140  # 100 expected each


def test_fit_with_a_warm_up_shorter_than_the_window_raises_instead_of_hanging(deadline, models):
    import keras
    from conftest import CountingEnv

    from rl.agents import DDPGAgent

    keras.utils.set_random_seed(0)
    actor, critic, action_in = models((2,), window_length=4)
    memory = SequentialMemory(limit=100, window_length=4, ignore_episode_boundaries=True, seed=0)
    agent = DDPGAgent(1, actor, critic, action_in, memory, nb_steps_warmup_critic=1, nb_steps_warmup_actor=1)
    agent.compile("adam")
    deadline(60)
    with pytest.raises(ValueError, match=r"can be sampled yet.*warm-up should be at least window_length=4"):
        agent.fit(CountingEnv(), nb_steps=20, verbose=0)


# ---------------------------------------------------------------- loading checks everything first
def saved_memory(tmp_path):
    memory = SequentialMemory(limit=64, window_length=2, seed=9)
    fill(memory, episodes=4, length=7)
    path = tmp_path / "memory.npz"
    memory.save(path)
    with np.load(path) as data:
        return path, {k: data[k] for k in data.files}


def set_item(key, index, value):
    def edit(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][index] = value

    return edit


def mark_valid(slot):
    """Marks `slot` valid and counts it, so that only the slot itself is wrong."""

    def edit(arrays):
        set_item("valid", slot, True)(arrays)
        set_item("counters", 2, arrays["counters"][2] + 1)(arrays)

    return edit


def replace(key, value):
    def edit(arrays):
        arrays[key] = value(arrays[key])

    return edit


TAMPERED = [
    ("next out of range", set_item("counters", 0, 64), "next"),
    ("next behind size", set_item("counters", 0, 3), "next"),
    ("size above limit", set_item("counters", 1, 65), "size"),
    ("negative size", set_item("counters", 1, -1), "size"),
    ("nb_valid wrong", set_item("counters", 2, 5), "nb_valid"),
    ("pending wrong", set_item("counters", 3, 0), "pending"),
    ("open not a flag", set_item("counters", 4, 7), "open"),
    ("valid not counted", set_item("valid", 7, True), "nb_valid"),
    ("valid beyond size", mark_valid(50), "valid"),
    ("newest slot valid", mark_valid(31), "valid"),
    ("valid of another dtype", replace("valid", lambda a: a.astype(np.int8)), "valid"),
    ("valid of another length", replace("valid", lambda a: a[:10]), "valid"),
    ("negative episode step", set_item("episode_step", 3, -2), "episode_step"),
    ("episode_step int64", replace("episode_step", lambda a: a.astype(np.int64)), "episode_step"),
    ("observations cut", replace("observations", lambda a: a[:10]), "observations"),
    ("observations of strings", replace("observations", lambda a: a.astype("U8")), "observations"),
    ("rows of another width", replace("rows", lambda a: a[:, :2]), "rows"),
    ("rows float64", replace("rows", lambda a: a.astype(np.float64)), "rows"),
    ("action_shape wrong", replace("action_shape", lambda a: np.array([3])), "rows"),
    ("negative action_shape", replace("action_shape", lambda a: np.array([-1])), "action_shape"),
    ("rng_state cut", replace("rng_state", lambda a: a[:5]), "rng_state"),
    ("rng_state value out of range", set_item("rng_state", 0, 2**40), "rng_state"),
    ("rng_state has_uint32 not a flag", set_item("rng_state", 8, 3), "rng_state"),
    ("config not 3 values", replace("config", lambda a: a[:2]), "config"),
    ("ignore flag not 0 or 1", set_item("config", 2, 5), "ignore_episode_boundaries"),
    ("counters float", replace("counters", lambda a: a.astype(np.float64)), "counters"),
    ("missing rows", lambda arrays: arrays.pop("rows"), "rows"),
]


@pytest.mark.parametrize("case, edit, field", TAMPERED, ids=[c[0] for c in TAMPERED])
def test_tampered_files_are_refused_naming_the_field_and_change_nothing(tmp_path, case, edit, field):
    path, arrays = saved_memory(tmp_path)
    edit(arrays)
    np.savez(tmp_path / "tampered.npz", **arrays)
    memory = SequentialMemory(limit=64, window_length=2, seed=1)
    fill(memory, episodes=2, length=5)
    before = memory.sample(8), memory.rng.bit_generator.state, memory.nb_entries, memory.nb_transitions
    with pytest.raises(ValueError, match=rf"{field}.*tampered\.npz"):
        memory.load(tmp_path / "tampered.npz")
    after = memory.sample(8)
    memory2 = SequentialMemory(limit=64, window_length=2, seed=1)
    fill(memory2, episodes=2, length=5)
    memory2.sample(8)
    for x, y in zip(after, memory2.sample(8)):  # the refused load changed neither contents nor draws
        np.testing.assert_array_equal(x, y)
    assert (memory.nb_entries, memory.nb_transitions) == before[2:]


def test_read_state_changes_nothing_and_set_state_applies_it(tmp_path):
    path, _ = saved_memory(tmp_path)
    memory = SequentialMemory(limit=64, window_length=2, seed=1)
    state = memory.read_state(path)
    assert memory.nb_entries == 0 and memory.nbytes == 64 * 5  # still empty
    memory.set_state(state)
    original = SequentialMemory(limit=64, window_length=2, seed=9)
    original.load(path)
    assert memory.nb_entries == original.nb_entries == 32 and memory.nb_transitions == 28
    for x, y in zip(memory.sample(16), original.sample(16)):
        np.testing.assert_array_equal(x, y)


def test_an_empty_memory_round_trips(tmp_path):
    SequentialMemory(limit=10).save(tmp_path / "empty.npz")
    memory = SequentialMemory(limit=10)
    memory.load(tmp_path / "empty.npz")
    assert memory.nb_entries == 0
    fill(memory, 1, 3)
    assert memory.nb_transitions == 3
