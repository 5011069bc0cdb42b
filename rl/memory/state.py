"""The memories' saved state: the `.npz` files `save` writes and `read_state` checks, without pickles.

A `SequentialMemory` file holds `config` (`[limit, window_length, ignore_episode_boundaries]`),
`counters` (`[next, size, nb_valid, pending, open]`), `episode_step`, `valid` and `rng_state`, and,
once something is stored, `observations` (in the dtype they were stored in), `rows` (see
`TransitionRows`) and `action_shape`. A `PrioritizedMemory` file adds `priority_leaves` and
`priority_state` (`[max_priority, nb_batches]`).
An `EpisodeParameterMemory` file holds `config` (`[limit, window_length]`), `counters`
(`[next, size]`), `returns`, `episode_reward`, `rng_state` and, once an episode is stored, `params`.
`rng_state` is the sampling generator's PCG64 state as 10 uint64 values.

The memories' `save`, `read_state` and `_state_arrays` call these functions; their `set_state`
puts what `read_state` returned in place.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rl.memory.rows import TransitionRows
from rl.util import atomic_path

__all__: list[str] = []


# ------------------------------------------------------------------ files and generators
def write_npz(filepath: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` to a `.npz` file at `filepath`, atomically (numpy's format, no pickled objects)."""
    with atomic_path(filepath) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def rng_state_array(rng: np.random.Generator) -> np.ndarray:
    """Encodes a PCG64 generator's state as an int array (no pickle needed)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise TypeError(f"Only PCG64 generators can be saved. Received: {st['bit_generator']}")
    parts = []
    for value in (st["state"]["state"], st["state"]["inc"]):
        parts += [(value >> (32 * k)) & 0xFFFFFFFF for k in range(4)]
    parts += [st["has_uint32"], st["uinteger"]]
    return np.array(parts, dtype=np.uint64)


def check_rng_state_array(arr: np.ndarray, filepath: str) -> dict[str, Any]:
    """Decodes `rng_state_array`'s output into a PCG64 state, checked on a throwaway generator."""
    if arr.dtype != np.uint64 or arr.shape != (10,):
        raise ValueError(
            "The memory file is invalid: `rng_state` must be 10 uint64 values. "
            f"Received: rng_state=<array of shape {arr.shape}, dtype {arr.dtype}> in filepath={filepath!r}"
        )
    vals = [int(v) for v in arr]
    state = {
        "bit_generator": "PCG64",
        "state": {
            "state": sum(v << (32 * k) for k, v in enumerate(vals[0:4])),
            "inc": sum(v << (32 * k) for k, v in enumerate(vals[4:8])),
        },
        "has_uint32": vals[8],
        "uinteger": vals[9],
    }
    try:
        if any(v >= 1 << 32 for v in vals[:8] + vals[9:]) or vals[8] not in (0, 1):
            raise ValueError("a value is out of range")
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(
            f"The memory file is invalid: `rng_state` is not a PCG64 state ({e}). "
            f"Received: rng_state={arr.tolist()!r} in filepath={filepath!r}"
        ) from e
    return state


# ------------------------------------------------------------------ SequentialMemory
def sequential_arrays(memory: Any) -> dict[str, np.ndarray]:
    """The arrays a `SequentialMemory`'s `save` writes."""
    arrays: dict[str, np.ndarray] = {
        "config": np.array([memory.limit, memory.window_length, int(memory.ignore_episode_boundaries)], dtype=np.int64),
        "counters": np.array([int(v) for v in memory._counters()], dtype=np.int64),
        "episode_step": memory._episode_step,
        "valid": memory._valid,
        "rng_state": rng_state_array(memory.rng),
    }
    if memory._observations is not None:
        arrays["observations"] = memory._observations
        arrays["rows"] = memory._rows
        arrays["action_shape"] = np.array(memory._action_shape, dtype=np.int64)
    return arrays


def read_sequential_state(filepath: str | os.PathLike, limit: int, window_length: int) -> dict[str, Any]:
    """Reads and checks a `SequentialMemory` file for a memory of `limit` slots and windows of `window_length`.

    Returns:
        The state for `SequentialMemory.set_state`.

    Raises:
        ValueError: naming the file and the field, if anything is missing or wrong.
    """
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        raise ValueError(f"The memory file does not exist. Received: filepath={filepath!r}")
    try:
        with np.load(filepath, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zipfile/numpy raise many types for a damaged file
        raise ValueError(f"The memory file is corrupt or truncated ({e}). Received: filepath={filepath!r}") from e

    def bad(field: str, expected: str, value: Any) -> ValueError:
        if isinstance(value, np.ndarray) and value.size > 10:
            shown = f"<array of shape {value.shape}, dtype {value.dtype}>"
        else:
            shown = repr(value.tolist() if isinstance(value, np.ndarray) else value)
        return ValueError(
            f"The memory file is invalid: `{field}` must be {expected}. "
            f"Received: {field}={shown} in filepath={filepath!r}"
        )

    required = {"config", "counters", "episode_step", "valid", "rng_state"}
    if not required <= arrays.keys():
        raise ValueError(
            f"Not a memory file: missing {sorted(required - arrays.keys())}. Received: filepath={filepath!r}"
        )

    def int_array(field: str, shape: tuple) -> np.ndarray:
        a = arrays[field]
        if a.dtype.kind not in "iu" or a.shape != shape:
            raise bad(field, f"integers of shape {shape}", a)
        return a

    file_limit, file_window_length, ignore = (int(v) for v in int_array("config", (3,)))
    if (file_limit, file_window_length) != (limit, window_length):
        raise ValueError(
            f"The memory file was saved with limit={file_limit}, window_length={file_window_length}; this memory "
            f"has limit={limit}, window_length={window_length}. Received: filepath={filepath!r}"
        )
    if ignore not in (0, 1):
        raise bad("config[2] (ignore_episode_boundaries)", "0 or 1", ignore)
    nxt, size, nb_valid, pending, is_open = (int(v) for v in int_array("counters", (5,)))

    valid = arrays["valid"]
    if valid.dtype != np.bool_ or valid.shape != (limit,):
        raise bad("valid", f"booleans of shape ({limit},)", valid)
    episode_step = arrays["episode_step"]
    if episode_step.dtype != np.int32 or episode_step.shape != (limit,):
        raise bad("episode_step", f"int32 of shape ({limit},)", episode_step)
    if (episode_step < 0).any():
        i = int(np.argmax(episode_step < 0))
        raise bad(f"episode_step[{i}]", "non-negative", int(episode_step[i]))

    # The ring buffer fills slots 0, 1, ... then wraps: `next == size` until it is full.
    if not 0 <= size <= limit:
        raise bad("counters[1] (size)", f"in [0, {limit}]", size)
    if not (nxt == size if size < limit else 0 <= nxt < limit):
        expected = f"equal to size={size}" if size < limit else f"in [0, {limit})"
        raise bad("counters[0] (next)", expected, nxt)
    if nb_valid != int(valid.sum()):
        raise bad("counters[2] (nb_valid)", f"the number of valid slots, {int(valid.sum())}", nb_valid)
    if valid[size:].any():
        i = size + int(np.argmax(valid[size:]))
        raise bad(f"valid[{i}]", f"False: the slot is unused (size={size})", True)
    expected_pending = -1 if size == 0 else (nxt - 1) % limit
    if pending != expected_pending:
        raise bad("counters[3] (pending)", f"the newest slot, {expected_pending}", pending)
    if pending >= 0 and valid[pending]:
        raise bad(f"valid[{pending}]", "False: the newest slot's next observation is not stored yet", True)
    if is_open not in (0, 1) or (is_open and size == 0):
        raise bad("counters[4] (open)", "0 or 1, and 0 in an empty memory", is_open)

    observations = rows = None
    action_shape: tuple[int, ...] = ()
    stored = {"observations", "rows", "action_shape"} & arrays.keys()
    if stored and stored != {"observations", "rows", "action_shape"}:
        raise bad("observations, rows, action_shape", "all present or all absent", sorted(stored))
    if stored:
        observations, rows = arrays["observations"], arrays["rows"]
        if observations.ndim < 1 or observations.shape[0] != limit:
            raise bad("observations", f"an array of {limit} rows", observations.shape)
        # Observations keep the dtype they were stored in (files of earlier versions hold float32).
        if observations.dtype.kind not in "biufc":
            raise bad("observations", "of a float, integer, boolean or complex dtype", observations.dtype)
        shape_array = arrays["action_shape"]
        if shape_array.dtype.kind not in "iu" or shape_array.ndim != 1 or (shape_array < 0).any():
            raise bad("action_shape", "a 1-D array of non-negative integers", shape_array)
        action_shape = tuple(int(v) for v in shape_array)
        width = TransitionRows(int(np.prod(action_shape))).width
        if rows.dtype != TransitionRows.dtype or rows.shape != (limit, width):
            raise bad("rows", f"float32 of shape ({limit}, {width})", rows.shape)
    elif size:
        raise bad("counters[1] (size)", "0 in a file without observations", size)

    rng_state = check_rng_state_array(arrays["rng_state"], filepath)
    return {
        "ignore_episode_boundaries": bool(ignore),
        "next": nxt,
        "size": size,
        "nb_valid": nb_valid,
        "pending": pending,
        "open": bool(is_open),
        "episode_step": episode_step,
        "valid": valid,
        "observations": observations,
        "rows": rows,
        "action_shape": action_shape,
        "rng_state": rng_state,
    }


# ------------------------------------------------------------------ PrioritizedMemory
def priority_arrays(memory: Any) -> dict[str, np.ndarray]:
    """The arrays a `PrioritizedMemory` saves besides `sequential_arrays`."""
    return {
        "priority_leaves": memory.tree.leaves.copy(),
        "priority_state": np.array([memory.max_priority, float(memory.nb_batches)], dtype=np.float64),
    }


def read_priority_state(filepath: str | os.PathLike, limit: int, valid: np.ndarray) -> dict[str, Any]:
    """Reads and checks the priorities of a file whose `SequentialMemory` state `read_sequential_state` read.

    A file without priorities (saved by a `SequentialMemory`) gives every transition the maximum priority.

    Args:
        filepath: the file.
        limit: the memory's number of slots.
        valid: the file's `valid` flags (which slots start a transition).

    Returns:
        `{"priority_leaves": [limit] float64, "priority_state": (max_priority, nb_batches)}`.

    Raises:
        ValueError: naming the file and the field, if the priorities are wrong.
    """
    with np.load(os.fspath(filepath), allow_pickle=False) as data:
        leaves = data["priority_leaves"] if "priority_leaves" in data.files else None
        extra = data["priority_state"] if "priority_state" in data.files else None
    if leaves is None:
        return {"priority_leaves": np.where(valid, 1.0, 0.0), "priority_state": (1.0, 0)}
    if leaves.dtype != np.float64 or leaves.shape != (limit,) or not np.isfinite(leaves).all():
        raise ValueError(
            f"The memory file is invalid: `priority_leaves` must be finite float64 of shape ({limit},). "
            f"Received: priority_leaves of shape {leaves.shape}, dtype {leaves.dtype} in filepath={filepath!r}"
        )
    if (leaves < 0).any() or (leaves[~valid] != 0).any():
        raise ValueError(
            "The memory file is invalid: `priority_leaves` must be >= 0, and 0 for slots that start no "
            f"transition. Received: filepath={filepath!r}"
        )
    if extra is None or extra.shape != (2,) or not np.isfinite(extra).all() or extra[0] <= 0 or extra[1] < 0:
        raise ValueError(
            "The memory file is invalid: `priority_state` must be [max_priority > 0, nb_batches >= 0]. "
            f"Received: priority_state={None if extra is None else extra.tolist()!r} in filepath={filepath!r}"
        )
    return {"priority_leaves": leaves, "priority_state": (float(extra[0]), int(extra[1]))}


# ------------------------------------------------------------------ EpisodeParameterMemory
def episode_arrays(memory: Any) -> dict[str, np.ndarray]:
    """The arrays an `EpisodeParameterMemory`'s `save` writes."""
    arrays = {
        "config": np.array([memory.limit, memory.window_length], dtype=np.int64),
        "counters": np.array([memory._next, memory._size], dtype=np.int64),
        "returns": memory._returns,
        "episode_reward": np.array(memory._episode_reward, dtype=np.float64),
        "rng_state": rng_state_array(memory.rng),
    }
    if memory._params is not None:
        arrays["params"] = memory._params
    return arrays


def read_episode_state(filepath: str | os.PathLike, limit: int, window_length: int) -> dict[str, Any]:
    """Reads and checks an `EpisodeParameterMemory` file for a memory of `limit` episodes.

    Returns:
        The state for `EpisodeParameterMemory.set_state`.

    Raises:
        ValueError: naming the file and the field, if anything is missing or wrong.
    """
    filepath = os.fspath(filepath)
    try:
        with np.load(filepath, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # missing, truncated or damaged
        raise ValueError(f"The memory file is missing or damaged ({e}). Received: filepath={filepath!r}") from e

    def bad(field: str, expected: str) -> ValueError:
        return ValueError(f"The memory file is invalid: `{field}` must be {expected}. Received: filepath={filepath!r}")

    required = {"config", "counters", "returns", "episode_reward", "rng_state"}
    if not required <= arrays.keys():
        raise ValueError(
            f"Not an episode parameter memory file: missing {sorted(required - arrays.keys())}. "
            f"Received: filepath={filepath!r}"
        )
    config, counters = arrays["config"], arrays["counters"]
    if config.dtype.kind not in "iu" or config.shape != (2,):
        raise bad("config", "2 integers")
    if (int(config[0]), int(config[1])) != (limit, window_length):
        raise ValueError(
            f"The memory file was saved with limit={int(config[0])}, window_length={int(config[1])}; this memory "
            f"has limit={limit}, window_length={window_length}. Received: filepath={filepath!r}"
        )
    if counters.dtype.kind not in "iu" or counters.shape != (2,):
        raise bad("counters", "2 integers")
    nxt, size = int(counters[0]), int(counters[1])
    in_ring = nxt == size if size < limit else 0 <= nxt < limit  # fills 0, 1, ... then wraps
    if not 0 <= size <= limit or not in_ring:
        raise bad("counters", f"a ring-buffer position and size within limit={limit} (got {nxt}, {size})")
    returns = arrays["returns"]
    if returns.dtype != np.float64 or returns.shape != (limit,) or not np.isfinite(returns).all():
        raise bad("returns", f"{limit} finite float64 values")
    episode_reward = arrays["episode_reward"]
    if episode_reward.dtype != np.float64 or episode_reward.shape != () or not np.isfinite(episode_reward):
        raise bad("episode_reward", "a finite float64 scalar")
    params = arrays.get("params")
    if params is None:
        if size:
            raise bad("params", f"present: the file counts {size} episodes")
    elif params.dtype != np.float32 or params.ndim != 2 or params.shape[0] != limit:
        raise bad("params", f"float32 of shape ({limit}, nb_params)")
    elif not np.isfinite(params).all():
        raise bad("params", "finite")
    return {
        "next": nxt,
        "size": size,
        "returns": returns,
        "episode_reward": float(episode_reward),
        "params": params,
        "rng_state": check_rng_state_array(arrays["rng_state"], filepath),
    }
