"""The `rl.memory` package: its names, the transition row layout, the one storage writer, and saved files."""

import ast
import hashlib
import inspect
import os
import pickle
import tempfile

import numpy as np
import pytest

import rl.memory
from rl.memory import (
    Batch,
    EpisodeParameterMemory,
    PrioritizedMemory,
    SequentialMemory,
    TransitionRows,
)
from rl.memory import datasets as memory_datasets
from rl.memory import sequential as memory_sequential

PUBLIC = {
    "Batch",
    "EpisodeParameterMemory",
    "Experience",
    "Memory",
    "MixedMemory",
    "ObservationWindow",
    "PrioritizedMemory",
    "RingBuffer",
    "RolloutBuffer",
    "SequentialMemory",
    "SumTree",
    "TransitionRows",
    "sample_batch_indexes",
    "zeroed_observation",
}
SUBMODULES = [
    "datasets",
    "episode",
    "keras_rl",
    "mixed",
    "prioritized",
    "rollout",
    "rows",
    "sequential",
    "state",
    "window",
]


# ------------------------------------------------------------------ names
def test_every_public_name_is_importable_from_rl_memory():
    assert set(rl.memory.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(rl.memory, name) is not None


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules_export_only_names_rl_memory_exports(name):
    """The API reference documents each name once, under `rl.memory`."""
    module = getattr(rl.memory, name)
    assert module.__doc__ and module.__doc__.strip()
    for public in module.__all__:
        assert public in rl.memory.__all__
        assert getattr(module, public) is getattr(rl.memory, public)


# ------------------------------------------------------------------ TransitionRows
def test_transition_rows_layout_and_readers():
    layout = TransitionRows(3)
    assert (layout.width, layout.reward_column, layout.terminal_column) == (5, 3, 4)
    rows = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(layout.action(rows), [[0, 1, 2], [5, 6, 7]])
    np.testing.assert_array_equal(layout.reward(rows), [3, 8])
    np.testing.assert_array_equal(layout.terminal(rows), [4, 9])
    action, reward, terminal = layout.split(rows[0])  # one row
    np.testing.assert_array_equal(action, [0, 1, 2])
    assert (reward, terminal) == (3, 4)
    assert np.shares_memory(layout.reward(rows), rows)  # numpy readers are views


def test_transition_rows_read_tensors_by_slicing():
    tf = pytest.importorskip("tensorflow")
    layout = TransitionRows(2)
    rows = layout.pack(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5]), np.array([False, True]))
    action, reward, terminal = layout.split(tf.constant(rows))
    np.testing.assert_array_equal(action.numpy(), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(reward.numpy(), [0.5, -0.5])
    np.testing.assert_array_equal(terminal.numpy(), [0, 1])
    np.testing.assert_array_equal(layout.reward(tf.constant(rows)).numpy(), layout.reward(rows))


def test_transition_rows_write_pack_and_zeros():
    layout = TransitionRows(6)
    rows = layout.zeros(4)
    assert rows.shape == (4, 8) and rows.dtype == np.float32 and not rows.any()
    layout.write(rows, action=np.ones((4, 2, 3)), reward=[1, 2, 3, 4], terminal=np.array([0, 0, 1, 0], bool))
    np.testing.assert_array_equal(rows[:, :6], 1.0)
    np.testing.assert_array_equal(rows[:, 6], [1, 2, 3, 4])
    np.testing.assert_array_equal(rows[:, 7], [0, 0, 1, 0])
    layout.write(rows[2], reward=9.0)  # one row, in place through the view; the other fields are kept
    np.testing.assert_array_equal(rows[2], [1, 1, 1, 1, 1, 1, 9, 1])
    packed = layout.pack(np.arange(6), 0.25, True)
    assert packed.shape == (8,) and packed.dtype == np.float32
    np.testing.assert_array_equal(packed, [0, 1, 2, 3, 4, 5, 0.25, 1])


def test_transition_rows_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"Received: action_size=2.0"):
        TransitionRows(2.0)
    with pytest.raises(TypeError, match=r"Received: action_size=True"):
        TransitionRows(True)
    with pytest.raises(ValueError, match=r"Received: action_size=-1"):
        TransitionRows(-1)
    with pytest.raises(ValueError, match=r"Received: rows.shape=\(3, 4\)"):
        TransitionRows(1).write(np.zeros((3, 4), np.float32), reward=1.0)
    with pytest.raises(ValueError):
        TransitionRows(2).write(np.zeros((3, 4), np.float32), action=np.zeros((3, 3)))


def test_transition_rows_from_width():
    assert TransitionRows.from_width(np.zeros((3, 7)).shape[-1]) == TransitionRows(5)
    assert TransitionRows.from_width(2).action_size == 0
    with pytest.raises(ValueError, match=r"Received: width=1"):
        TransitionRows.from_width(1)
    with pytest.raises(TypeError, match=r"Received: width='4'"):
        TransitionRows.from_width("4")


def test_transition_rows_value_semantics():
    assert TransitionRows(np.int64(2)) == TransitionRows(2) != TransitionRows(3)
    assert hash(TransitionRows(2)) == hash(TransitionRows(2))
    assert repr(TransitionRows(2)) == "TransitionRows(action_size=2)"


def test_memory_rows_follow_the_layout():
    memory = fill_sequential(SequentialMemory(limit=60, seed=3), steps=50, act_dim=3)
    layout = TransitionRows(3)
    arrays = memory.sampling_arrays()
    assert arrays["rows"].shape == (60, layout.width)
    other = SequentialMemory.from_config(memory.get_config())
    other.set_state(state_of(memory))
    batch = memory.sample(16)
    s0, s1 = np.zeros_like(batch.state0), np.zeros_like(batch.state1)
    rows = layout.zeros(16)
    other.sample_into(16, s0, s1, rows)  # the same draws as `sample`, written as rows
    action, reward, terminal = layout.split(rows)
    np.testing.assert_array_equal(action, batch.action)
    np.testing.assert_array_equal(reward, batch.reward)
    np.testing.assert_array_equal(terminal, batch.terminal)


# ------------------------------------------------------------------ the storage writer
STORAGE = {"_observations", "_rows", "_valid", "_episode_step"}


def _writes_into_storage(tree):
    """(function, line) of every assignment into an element or slice of a storage array."""
    found = []
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Attribute):
                        if sub.value.attr in STORAGE:
                            found.append((func.name, node.lineno))
    return found


@pytest.mark.parametrize("name", SUBMODULES)
def test_only_write_changes_the_storage_arrays(name):
    tree = ast.parse(inspect.getsource(getattr(rl.memory, name)))
    writers = {func for func, _ in _writes_into_storage(tree)}
    assert writers <= {"_write"}, _writes_into_storage(tree)
    if name == "sequential":
        assert writers == {"_write"}


def test_from_arrays_writes_the_storage_as_appending_does():
    memory = fill_sequential(SequentialMemory(limit=200, window_length=2, seed=0), steps=60, stop=False)
    memory.end_episode()
    rebuilt = SequentialMemory.from_arrays(**memory.to_arrays(), window_length=2, limit=200, seed=0)
    for name in ("_observations", "_rows", "_valid", "_episode_step"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(memory, name), err_msg=name)
    assert (rebuilt._next, rebuilt._size, rebuilt._nb_valid, rebuilt._pending) == (
        memory._next,
        memory._size,
        memory._nb_valid,
        memory._pending,
    )
    assert_same_draws(memory, rebuilt)


def test_draw_rounds_setting_reaches_prioritized_sampling(monkeypatch):
    monkeypatch.setattr(memory_sequential, "_DRAW_ROUNDS", 0)  # every draw goes through the exact set
    memory = fill_sequential(PrioritizedMemory(limit=50, window_length=2, seed=0), steps=40)
    batch = memory.sample(20)
    assert isinstance(batch, Batch) and len(memory.last_indices) == 20


# ------------------------------------------------------------------ saved memories
def fill_sequential(memory, steps, obs_dim=3, act_dim=2, period=7, stop=True):
    """Deterministic episodes: every `period`-th step ends one (terminated, truncated, or stopped in turn)."""
    obs = np.arange(obs_dim, dtype=np.float32)
    for t in range(steps):
        nxt = obs + np.float32(1.0 + 0.01 * t)
        end = t % period == period - 1
        kind = (t // period) % 3 if stop else (t // period) % 2
        action = np.linspace(-1.0, 1.0, act_dim) * (t % 5)
        reward = float(t % 11) - 5.0
        memory.append(obs, action, reward, end and kind == 0, next_observation=nxt, truncated=end and kind == 1)
        if end and kind == 2:
            memory.end_episode()
        obs = nxt if not end else np.full(obs_dim, -t, np.float32)
    return memory


def fill_episodes(memory, episodes=6):
    for e in range(episodes):
        for t in range(4):
            memory.append(np.full(2, t), 0, float(e - t), terminal=t == 3)
        memory.finalize_episode(np.linspace(0.0, 1.0, 5) * e)
    memory.append(np.zeros(2), 0, 2.5, False)  # an episode under way
    return memory


def build_sequential(cls=SequentialMemory):
    return fill_sequential(cls(limit=40, window_length=3, seed=5), steps=50)  # wraps around


def build_prioritized(cls=PrioritizedMemory, alpha=0.7, exact=False):
    memory = fill_sequential(cls(limit=30, n_step=3, gamma=0.9, alpha=alpha, beta=0.5, beta_steps=20, seed=6), steps=25)
    slots = np.flatnonzero(memory._valid)
    if exact:  # values every machine computes alike (no sin or fractional powers, whose last bits vary by CPU)
        memory.update_priorities(slots, (slots % 7 - 3) * 0.75)
    else:
        memory.update_priorities(slots, np.sin(slots.astype(np.float64)) * 4.0)
    return memory


def build_episode(cls=EpisodeParameterMemory):
    return fill_episodes(cls(limit=4, window_length=2, seed=7))


def saved_digest(path):
    """SHA-256 over the saved arrays: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    with np.load(path, allow_pickle=False) as data:
        for key in sorted(data.files):
            array = data[key]
            digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def state_of(memory):
    """The memory's state as `read_state` returns it, through a saved file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "memory.npz")
        memory.save(path)
        return memory.read_state(path)


def draws(memory, n=4, batch_size=6):
    out = []
    for k in range(n):
        if isinstance(memory, EpisodeParameterMemory):
            params, returns = memory.sample(3)
            out.append(params + [np.array(returns)])
            continue
        out.append(list(memory.sample(batch_size)))
        if isinstance(memory, PrioritizedMemory):
            out.append([memory.last_indices.copy(), memory.last_weights.copy()])
            memory.update_priorities(memory.last_indices, np.cos(memory.last_indices + k))
    return out


def assert_same_draws(a, b):
    for x, y in zip(draws(a), draws(b), strict=True):
        for u, v in zip(x, y, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape
            np.testing.assert_array_equal(u, v)


# The saved files of these memories, as the single-module `rl/memory.py` wrote them before the
# package: a file written by either loads in the other. The prioritized memory's file is built with
# exact priorities and alpha = 1: numpy's sin and fractional powers differ in their last bits from one
# CPU to another (SIMD kernels), which would change the file's bytes, not its format.
SAVED_DIGESTS = {
    "sequential": "d6b68c9f526016d19e6b08adb36e903d25d0382d44de763c145a1eb7d229902f",
    "prioritized": "f97d1560d915bce3aece15e02aa8a19de2de2eb2dc12665d8180572a0f4ce209",
    "episode": "f96e56c2edce6dd4e42b2fa1a370f590b1a95b745a6686d31932a7b66a1e9cb1",
}
BUILDERS = {
    "sequential": build_sequential,
    "prioritized": lambda: build_prioritized(alpha=1.0, exact=True),
    "episode": build_episode,
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_saved_file_format_is_unchanged(tmp_path, kind):
    memory = BUILDERS[kind]()
    memory.save(tmp_path / "memory.npz")
    assert saved_digest(tmp_path / "memory.npz") == SAVED_DIGESTS[kind]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_save_and_reload_samples_the_same_batches(tmp_path, kind):
    memory = BUILDERS[kind]()
    memory.save(tmp_path / "memory.npz")
    reloaded = type(memory).from_config(memory.get_config())
    reloaded.load(tmp_path / "memory.npz")
    assert_same_draws(memory, reloaded)
    reloaded.save(tmp_path / "again.npz")  # and the draws moved both generators alike
    memory.save(tmp_path / "memory.npz")
    assert saved_digest(tmp_path / "again.npz") == saved_digest(tmp_path / "memory.npz")


@pytest.mark.parametrize("kind", ["sequential", "episode"])
def test_pickled_memories_sample_the_same_batches(kind):
    memory = BUILDERS[kind]()
    assert_same_draws(memory, pickle.loads(pickle.dumps(memory)))


def test_a_memory_pickled_before_the_row_layout_object_still_works():
    memory = build_sequential()
    legacy = {k: v for k, v in pickle.loads(pickle.dumps(memory)).__dict__.items() if k != "_layout"}
    legacy["_nb_actions"] = 2  # what the single-module memory held instead of `_layout`
    restored = SequentialMemory.__new__(SequentialMemory)
    restored.__setstate__(legacy)
    assert restored._layout == TransitionRows(2) and not hasattr(restored, "_nb_actions")
    assert_same_draws(memory, restored)
    empty = SequentialMemory.__new__(SequentialMemory)
    empty.__setstate__({**SequentialMemory(limit=5).__dict__, "_nb_actions": 0})
    assert empty._layout is None


def test_datasets_module_checks_arrays_by_name():
    with pytest.raises(TypeError, match=r"`actions` must be an array of numbers"):
        memory_datasets.dataset_array("actions", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"Received: terminals of shape \(2,\)"):
        memory_datasets.dataset_flags("terminals", [0, 1], 3)
