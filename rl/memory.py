"""Replay memory: a preallocated numpy ring buffer with vectorised, seeded sampling."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from rl.util import atomic_path, check_int

__all__ = ["Batch", "ObservationWindow", "SequentialMemory"]


# Rounds of cheap rejection draws before `_sample_indices` computes the sampleable slots exactly.
_DRAW_ROUNDS = 8


class Batch(NamedTuple):
    """A batch of transitions sampled from a memory.

    Attributes:
        state0: observations windows `s_t`, shape `(B, window_length) + obs_shape`.
        action: actions `a_t`, shape `(B,) + action_shape`, float32.
        reward: rewards `r_t`, shape `(B,)`, float32.
        state1: next observation windows `s_{t+1}`, same shape as `state0`.
        terminal: `1.0` where `s_{t+1}` is terminal (no bootstrap), else `0.0`; shape `(B,)`, float32.
            A time-limit truncation is *not* terminal: its `state1` is the real final observation.
    """

    state0: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    state1: np.ndarray
    terminal: np.ndarray


class ObservationWindow:
    """The last `window_length` observations of the current episode, zero-padded at its start.

    Agents use it to build the state they act on, matching the windows `SequentialMemory` samples.

    Args:
        window_length: number of observations in a state. Defaults to `1`.
    """

    def __init__(self, window_length: int = 1):
        self.window_length = check_int("window_length", window_length, minimum=1)
        self._buffer: np.ndarray | None = None

    def reset(self) -> None:
        """Forgets the observations of the episode that ended."""
        if self._buffer is not None:
            self._buffer[:] = 0

    def push(self, observation: Any) -> np.ndarray:
        """Adds `observation` and returns the state, shape `(window_length,) + obs_shape`."""
        observation = np.asarray(observation)
        if self.window_length == 1:
            return observation[None]
        if self._buffer is None or self._buffer.shape[1:] != observation.shape:
            self._buffer = np.zeros((self.window_length,) + observation.shape, dtype=observation.dtype)
        self._buffer[:-1] = self._buffer[1:]
        self._buffer[-1] = observation
        return self._buffer.copy()


class SequentialMemory:
    """Replay memory of transitions in preallocated numpy arrays, used as a ring buffer.

    Each observation is stored once: a transition's next observation is the slot that follows it.
    When an episode ends (terminated or truncated) its final observation gets a slot of its own, so
    a time-limit truncation keeps the real `s_{t+1}` to bootstrap from, and no sampled transition
    ever runs from one episode into the next. Memory use is proportional to `limit`; sampling is
    O(batch_size), vectorised, and seeded, and always returns: when few stored transitions can be
    sampled, the memory finds them exactly (O(limit)), and when none can, `sample` raises.

    Args:
        limit: number of slots (transitions plus one final observation per finished episode), at
            least `window_length + 1`.
        window_length: number of consecutive observations that make one state. Windows never mix
            two episodes: slots before an episode's first observation are zeros. Defaults to `1`.
        ignore_episode_boundaries: if `True`, windows may reach back into the previous episode
            instead of being zero-padded (transitions themselves still never cross). Defaults to
            `False`.
        seed: seed of the sampling generator. Defaults to `None` (fresh entropy).

    Raises:
        ValueError: if `limit < window_length + 1`: no window and next observation would fit.

    Example:

    >>> memory = SequentialMemory(limit=100_000, window_length=1, seed=0)
    >>> memory.append(obs, action, reward, terminal=False, next_observation=next_obs)
    >>> batch = memory.sample(64)
    >>> batch.state0.shape
    (64, 1, 3)
    """

    def __init__(
        self,
        limit: int,
        window_length: int = 1,
        ignore_episode_boundaries: bool = False,
        seed: int | None = None,
    ):
        self.limit = check_int("limit", limit, minimum=2)
        self.window_length = check_int("window_length", window_length, minimum=1)
        if self.limit < self.window_length + 1:
            raise ValueError(
                "`limit` must leave room for one transition: a window of `window_length` observations and the "
                f"next one, so at least window_length + 1 = {self.window_length + 1} slots. "
                f"Received: limit={self.limit}, window_length={self.window_length}"
            )
        self.ignore_episode_boundaries = bool(ignore_episode_boundaries)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._observations: np.ndarray | None = None
        # One row per slot: [action..., reward, terminal], gathered in one go when sampling.
        self._rows: np.ndarray | None = None
        # `_valid[i]`: slot i starts a transition whose next observation is in slot i + 1.
        self._valid = np.zeros(self.limit, dtype=bool)
        self._nb_actions = 0
        # Position of each slot's observation inside its episode (for zero-padding windows).
        self._episode_step = np.zeros(self.limit, dtype=np.int32)
        self._next = 0  # slot written next
        self._size = 0  # slots in use
        self._nb_valid = 0
        self._pending = -1  # slot holding the last next_observation, -1 if none
        self._open = False  # the last transition did not end its episode
        self._last_next_obs: Any = None

    # ------------------------------------------------------------------ writing
    @property
    def nb_entries(self) -> int:
        """Number of slots in use: one per stored step, plus one per finished episode."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the memory's arrays (allocated at the first `append`)."""
        arrays = (self._observations, self._rows, self._valid, self._episode_step)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def nb_transitions(self) -> int:
        """Number of transitions that `sample` can return."""
        return self._nb_valid

    def _allocate(self, observation: np.ndarray, action: np.ndarray) -> None:
        obs_dtype = np.float32 if observation.dtype.kind == "f" else observation.dtype
        self._observations = np.zeros((self.limit,) + observation.shape, dtype=obs_dtype)
        self._action_shape = action.shape
        self._nb_actions = int(np.prod(action.shape))
        self._rows = np.zeros((self.limit, self._nb_actions + 2), dtype=np.float32)

    def _take_slot(self) -> int:
        i = self._next
        if self._valid[i]:
            self._valid[i] = False
            self._nb_valid -= 1
        self._next = (i + 1) % self.limit
        if self._size < self.limit:
            self._size += 1
        return i

    def append(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        next_observation: Any,
        truncated: bool = False,
    ) -> None:
        """Stores the transition `(observation, action, reward, next_observation)`.

        Args:
            observation: the observation the action was taken in, `s_t`.
            action: the action taken, `a_t`.
            reward: the reward received, `r_t`.
            terminal: whether `next_observation` is terminal (the episode *terminated*): the
                learner does not bootstrap from it.
            next_observation: the observation after the step, `s_{t+1}`.
            truncated: whether the episode stopped here without terminating (a time limit). The
                transition still bootstraps from `next_observation`. Defaults to `False`.

        When `observation` is the `next_observation` of the previous call (same object or equal
        values) and that call did not end the episode, the slot already holding it is reused.
        """
        observation = np.asarray(observation)
        action = np.asarray(action, dtype=np.float32)
        if self._observations is None:
            self._allocate(observation, action)
        obs_store, rows = self._observations, self._rows
        if observation.shape != obs_store.shape[1:]:
            raise ValueError(
                "`observation` has a different shape from the ones already stored "
                f"{obs_store.shape[1:]}. Received: observation.shape={observation.shape}"
            )
        if action.shape != self._action_shape:
            raise ValueError(
                "`action` has a different shape from the ones already stored "
                f"{self._action_shape}. Received: action.shape={action.shape}"
            )
        continuing = (
            self._open
            and self._pending >= 0
            and (observation is self._last_next_obs or np.array_equal(observation, obs_store[self._pending]))
        )
        if continuing:
            i = self._pending
        else:
            i = self._take_slot()
            obs_store[i] = observation
            self._episode_step[i] = 0
        a = self._nb_actions
        rows[i, :a] = action.reshape(-1)
        rows[i, a] = reward
        rows[i, a + 1] = 1.0 if terminal else 0.0
        j = self._take_slot()
        obs_store[j] = next_observation
        self._episode_step[j] = self._episode_step[i] + 1
        self._valid[i] = True  # its next observation is in slot j
        self._nb_valid += 1
        self._pending = j
        self._open = not (terminal or truncated)
        self._last_next_obs = next_observation

    def end_episode(self) -> None:
        """Marks the current episode as over, so the next `append` starts a new one.

        Call it when an episode is abandoned without a terminal or truncated step (for example
        when training stops in the middle of an episode).
        """
        self._open = False
        self._last_next_obs = None

    # ----------------------------------------------------------------- sampling
    def _sample_indices(self, batch_size: int) -> np.ndarray:
        # Some slots cannot start a transition (final observations, the newest slot): draw a few
        # spare indices up front and keep the first `batch_size` valid ones, so that a redraw is rare.
        # Raw 64-bit draws modulo `size`: uniform up to a bias below size / 2**64, and several times
        # cheaper than `Generator.integers` for a few dozen draws.
        raw, valid, size = self.rng.bit_generator.random_raw, self._valid, self._size
        draws = batch_size + 8 + batch_size // 16
        idx = np.empty(0, dtype=np.int64)
        for _ in range(_DRAW_ROUNDS):
            new = (raw(draws) % size).view(np.int64)
            ok = valid[new]
            if self.window_length > 1:
                ok &= self._window_fits(new)
            idx = new[ok] if not idx.size else np.concatenate([idx, new[ok]])
            if idx.size >= batch_size:
                return idx[:batch_size]
        # Few slots (or none) can start a transition: draw the rest from the exact set, which
        # keeps the draws uniform over the sampleable transitions and always terminates.
        candidates = np.flatnonzero(valid[:size])
        if self.window_length > 1:
            candidates = candidates[self._window_fits(candidates)]
        if not candidates.size:
            raise ValueError(
                f"None of the memory's {self._nb_valid} transitions can be sampled yet: each needs a window of "
                f"window_length={self.window_length} observations"
                + (
                    ", and with ignore_episode_boundaries=True the window reaches back over the "
                    f"{self.window_length - 1} slots before it, which must already be filled"
                    if self.ignore_episode_boundaries
                    else " from slots that still hold its episode"
                )
                + ". Append more transitions before sampling (an agent's warm-up should be at least "
                f"window_length={self.window_length} steps). Received: nb_entries={self._size}"
            )
        extra = candidates[self.rng.integers(0, candidates.size, batch_size - idx.size)]
        return np.concatenate([idx, extra])

    def _window_fits(self, idx: np.ndarray) -> np.ndarray:
        """Whether the slots a window of `idx` reaches back to still hold that window's data."""
        back = np.full(idx.shape, self.window_length - 1)
        if not self.ignore_episode_boundaries:
            back = np.minimum(back, self._episode_step[idx])
        oldest = self._next if self._size == self.limit else 0
        return (idx - oldest) % self.limit >= back

    def _windows(self, idx: np.ndarray, episode_step: np.ndarray) -> np.ndarray:
        w = self.window_length
        offsets = np.arange(-(w - 1), 1)  # [W]
        positions = (idx[:, None] + offsets[None, :]) % self.limit  # [B, W]
        states = np.take(self._observations, positions, axis=0)  # [B, W, *obs]
        if not self.ignore_episode_boundaries:
            before_start = -offsets[None, :] > episode_step[:, None]  # [B, W]
            states[before_start] = 0
        return states

    def _check_batch_size(self, batch_size: int) -> int:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > self.limit:
            raise ValueError(
                f"`batch_size` cannot exceed the memory's limit ({self.limit}). Received: batch_size={batch_size}"
            )
        if self._nb_valid == 0:
            raise ValueError("The memory holds no transition yet: append some before calling `sample`.")
        return batch_size

    def _states(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The next observation sits in the next slot; slot `limit` wraps to 0 (`mode="wrap"`, `% limit`).
        if self.window_length == 1:
            # ndarray.take gathers rows several times faster than fancy indexing.
            obs = self._observations
            return obs.take(idx, axis=0)[:, None], obs.take(idx + 1, axis=0, mode="wrap")[:, None]  # [B, 1, *obs]
        step = self._episode_step[idx]
        return self._windows(idx, step), self._windows(idx + 1, step + 1)

    def sample(self, batch_size: int) -> Batch:
        """Samples `batch_size` transitions uniformly (with replacement).

        Returns:
            A `Batch` of numpy arrays.

        Raises:
            ValueError: if `batch_size` is not a positive integer, exceeds `limit`, or the memory
                holds no transition that can be sampled yet (none at all, or, with
                `ignore_episode_boundaries=True`, fewer than `window_length` stored steps).
        """
        idx = self._sample_indices(self._check_batch_size(batch_size))
        state0, state1 = self._states(idx)
        rows = self._rows.take(idx, axis=0)  # [B, A + 2]
        a = self._nb_actions
        action = rows[:, :a].reshape((len(idx),) + self._action_shape)
        return Batch(state0, action, rows[:, a].copy(), state1, rows[:, a + 1].copy())

    def sample_into(self, batch_size: int, state0: np.ndarray, state1: np.ndarray, rows: np.ndarray) -> None:
        """Samples like `sample` (same draws for the same seed), writing into arrays you provide.

        For agents that pack a batch into one buffer: nothing is allocated per batch beyond the
        indices.

        Args:
            batch_size: number of transitions, `B`.
            state0: receives `s_t`, shape `(B, window_length) + obs_shape`.
            state1: receives `s_{t+1}`, same shape.
            rows: receives each transition's flattened action, then its reward, then `1.0` where
                `s_{t+1}` is terminal; shape `(B, nb_actions + 2)`, float32.
        """
        b = self._check_batch_size(batch_size)  # checked before drawing: a refused call draws nothing
        shape = (b, self.window_length) + self._observations.shape[1:]
        for name, out in (("state0", state0), ("state1", state1)):
            if out.shape != shape:
                raise ValueError(f"`{name}` must have shape {shape}. Received: {name}.shape={out.shape}")
        if rows.shape != (b, self._nb_actions + 2) or rows.dtype != np.float32:
            raise ValueError(
                f"`rows` must be float32 of shape {(b, self._nb_actions + 2)}. "
                f"Received: rows.shape={rows.shape}, rows.dtype={rows.dtype}"
            )
        idx = self._sample_indices(b)
        obs = self._observations
        if self.window_length == 1 and state0.dtype == state1.dtype == obs.dtype:
            # mode="clip" writes straight into `out` (the indices are in range anyway).
            obs.take(idx, axis=0, out=state0[:, 0], mode="clip")
            obs.take(idx + 1, axis=0, out=state1[:, 0], mode="wrap")
        else:
            state0[...], state1[...] = self._states(idx)
        self._rows.take(idx, axis=0, out=rows, mode="clip")

    # ------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "limit": self.limit,
            "window_length": self.window_length,
            "ignore_episode_boundaries": self.ignore_episode_boundaries,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequentialMemory:
        """Creates an empty memory from `get_config()`'s output."""
        return cls(**config)

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes the memory's contents and sampling state to a `.npz` file, atomically.

        The file uses numpy's format without pickled objects.
        """
        arrays: dict[str, np.ndarray] = {
            "config": np.array([self.limit, self.window_length, int(self.ignore_episode_boundaries)], dtype=np.int64),
            "counters": np.array(
                [self._next, self._size, self._nb_valid, self._pending, int(self._open)], dtype=np.int64
            ),
            "episode_step": self._episode_step,
            "valid": self._valid,
            "rng_state": _rng_state_array(self.rng),
        }
        if self._observations is not None:
            arrays["observations"] = self._observations
            arrays["rows"] = self._rows
            arrays["action_shape"] = np.array(self._action_shape, dtype=np.int64)
        with atomic_path(filepath) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load(self, filepath: str | os.PathLike) -> None:
        """Restores what `save` wrote: `set_state(read_state(filepath))`.

        The memory must have the same `limit` and `window_length`; the file's
        `ignore_episode_boundaries` is restored with its contents. Nothing is changed unless the
        whole file is valid.

        Raises:
            ValueError: if the file is missing, truncated, not a memory file, was saved by a
                memory of another configuration, or holds inconsistent contents.
        """
        self.set_state(self.read_state(filepath))

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, without changing the memory.

        Everything is checked against this memory and against itself: the configuration (`limit`,
        `window_length`), the ring-buffer counters (in range and consistent with the arrays), the
        shapes and dtypes of every array, and the sampling generator's state.

        Returns:
            The memory's state, for `set_state`.

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

        limit, window_length, ignore = (int(v) for v in int_array("config", (3,)))
        if (limit, window_length) != (self.limit, self.window_length):
            raise ValueError(
                f"The memory file was saved with limit={limit}, window_length={window_length}; this memory has "
                f"limit={self.limit}, window_length={self.window_length}. Received: filepath={filepath!r}"
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

        # The ring buffer fills slots 0, 1, ... then wraps: `_next == _size` until it is full.
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
            if observations.dtype != np.float32 and observations.dtype.kind not in "biuc":
                raise bad("observations", "float32, or of integer, boolean or complex dtype", observations.dtype)
            shape_array = arrays["action_shape"]
            if shape_array.dtype.kind not in "iu" or shape_array.ndim != 1 or (shape_array < 0).any():
                raise bad("action_shape", "a 1-D array of non-negative integers", shape_array)
            action_shape = tuple(int(v) for v in shape_array)
            nb_actions = int(np.prod(action_shape))
            if rows.dtype != np.float32 or rows.shape != (limit, nb_actions + 2):
                raise bad("rows", f"float32 of shape ({limit}, {nb_actions + 2})", rows.shape)
        elif size:
            raise bad("counters[1] (size)", "0 in a file without observations", size)

        rng_state = _check_rng_state_array(arrays["rng_state"], filepath)
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

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the memory's contents and sampling state with `state`, as `read_state` returned it.

        `read_state` checked everything, so this cannot fail part-way.
        """
        self.ignore_episode_boundaries = state["ignore_episode_boundaries"]
        self._next, self._size = state["next"], state["size"]
        self._nb_valid, self._pending, self._open = state["nb_valid"], state["pending"], state["open"]
        self._episode_step = state["episode_step"]
        self._valid = state["valid"]
        self._observations = state["observations"]
        self._rows = state["rows"]
        self._action_shape = state["action_shape"]
        self._nb_actions = int(np.prod(self._action_shape)) if self._rows is not None else 0
        self._last_next_obs = None
        self.rng.bit_generator.state = state["rng_state"]


def _rng_state_array(rng: np.random.Generator) -> np.ndarray:
    """Encodes a PCG64 generator's state as an int array (no pickle needed)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise TypeError(f"Only PCG64 generators can be saved. Received: {st['bit_generator']}")
    parts = []
    for value in (st["state"]["state"], st["state"]["inc"]):
        parts += [(value >> (32 * k)) & 0xFFFFFFFF for k in range(4)]
    parts += [st["has_uint32"], st["uinteger"]]
    return np.array(parts, dtype=np.uint64)


def _check_rng_state_array(arr: np.ndarray, filepath: str) -> dict[str, Any]:
    """Decodes `_rng_state_array`'s output into a PCG64 state, checked on a throwaway generator."""
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
