"""Replay memory: a preallocated numpy ring buffer with vectorised, seeded sampling."""

from __future__ import annotations

import os
import warnings
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from rl.util import atomic_path, check_int, check_number

__all__ = [
    "Batch",
    "EpisodeParameterMemory",
    "Experience",
    "Memory",
    "ObservationWindow",
    "PrioritizedMemory",
    "RingBuffer",
    "SequentialMemory",
    "SumTree",
    "sample_batch_indexes",
    "zeroed_observation",
]


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


# ------------------------------------------------------------------ keras-rl's names
class Experience(NamedTuple):
    """One transition as keras-rl's memories return it (`memory.sample` of a memory filled with
    keras-rl's four-argument `append`, or `SequentialMemory.sample_experiences`).

    Attributes:
        state0: the window of observations `s_t`, shape `(window_length,) + obs_shape`.
        action: the action `a_t`.
        reward: the reward `r_t` (stored as float32).
        state1: the window `s_{t+1}`.
        terminal1: whether `s_{t+1}` is terminal.
    """

    state0: Any
    action: Any
    reward: float
    state1: Any
    terminal1: bool


def sample_batch_indexes(low: int, high: int, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Draws `size` integers in `[low, high)`: all different when the range holds `size` of them,
    otherwise with repetitions (and a warning).

    Args:
        low: the smallest index.
        high: one past the largest index, > `low`.
        size: the number of indices, >= 0.
        rng: the generator to draw with. Defaults to `None` (a fresh one).

    Returns:
        An int64 array of `size` indices.

    Raises:
        ValueError: if `high <= low` or `size < 0`.
    """
    low, high = check_int("low", low), check_int("high", high)
    size = check_int("size", size, minimum=0)
    if high <= low:
        raise ValueError(f"`high` must be greater than `low`. Received: low={low}, high={high}")
    rng = np.random.default_rng() if rng is None else rng
    if high - low >= size:
        return low + rng.choice(high - low, size=size, replace=False).astype(np.int64)
    warnings.warn(
        f"Only {high - low} indices for size={size}: sampling with repetitions. A longer warm-up avoids it.",
        stacklevel=2,
    )
    return rng.integers(low, high, size=size, dtype=np.int64)


class _RingBufferIndexError(IndexError, KeyError):
    """An index outside a `RingBuffer` (an `IndexError`, and keras-rl's `KeyError`)."""


class RingBuffer:
    """A list of at most `maxlen` items that drops its oldest item when full (keras-rl's helper).

    Args:
        maxlen: the largest number of items kept, >= 1.

    Raises:
        TypeError, ValueError: if `maxlen` is not a positive integer.
    """

    def __init__(self, maxlen: int):
        self.maxlen = check_int("maxlen", maxlen, minimum=1)
        self.data: deque = deque(maxlen=self.maxlen)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> Any:
        """Returns the item at `idx`, `0` being the oldest.

        Raises:
            IndexError: (also a `KeyError`, as in keras-rl) if `idx` is outside `[0, len)`.
        """
        if not 0 <= idx < len(self.data):
            raise _RingBufferIndexError(f"`idx` must be in [0, {len(self.data)}). Received: idx={idx!r}")
        return self.data[idx]

    def append(self, v: Any) -> None:
        """Adds `v` as the newest item (dropping the oldest when full)."""
        self.data.append(v)

    def length(self) -> int:
        """Returns the number of items."""
        return len(self.data)


def zeroed_observation(observation: Any) -> Any:
    """Returns zeros shaped like `observation`: an array, a list of arrays, or `0.0` for a number."""
    if hasattr(observation, "shape"):
        return np.zeros(observation.shape)
    if isinstance(observation, (list, tuple)):
        return [zeroed_observation(x) for x in observation]
    return 0.0


def _recent_state(recent: deque, current: Any, window_length: int, ignore_episode_boundaries: bool) -> list:
    """keras-rl's state: `current` after the observations of `recent` ((observation, ended) pairs,
    oldest first) that belong to its episode, zero-padded in front to `window_length`."""
    state = [current]
    for k in range(len(recent) - 1, max(len(recent) - window_length, -1), -1):
        before_ended = recent[k - 1][1] if k >= 1 else False
        if before_ended and not ignore_episode_boundaries:
            break  # the step before recent[k] ended an episode: recent[k] is that episode's final observation
        state.insert(0, recent[k][0])
    while len(state) < window_length:
        state.insert(0, zeroed_observation(state[0]))
    return state


class Memory:
    """keras-rl's base class of memories, for memories written against it.

    It keeps the last `window_length` observations given to `append`, for `get_recent_state`.
    A subclass implements `sample(batch_size, batch_idxs=None)` and stores what `append` gets.

    Args:
        window_length: number of observations in a state, >= 1.
        ignore_episode_boundaries: whether states may reach into the previous episode. Defaults
            to `False`.

    Raises:
        TypeError, ValueError: if `window_length` is not a positive integer.
    """

    def __init__(self, window_length: int, ignore_episode_boundaries: bool = False):
        self.window_length = check_int("window_length", window_length, minimum=1)
        self.ignore_episode_boundaries = bool(ignore_episode_boundaries)
        self._recent: deque = deque(maxlen=self.window_length)

    def sample(self, batch_size: int, batch_idxs: Any = None) -> Any:
        """Returns a batch of `batch_size` stored items; to be implemented by a subclass."""
        raise NotImplementedError

    def append(self, observation: Any, action: Any, reward: float, terminal: bool, training: bool = True) -> None:
        """Records `observation` (and whether its step ended the episode) for `get_recent_state`."""
        self._recent.append((observation, bool(terminal)))

    def get_recent_state(self, current_observation: Any) -> list:
        """Returns the `window_length` observations ending with `current_observation`: the ones
        appended before it in its episode, zero-padded in front (see `ignore_episode_boundaries`)."""
        return _recent_state(self._recent, current_observation, self.window_length, self.ignore_episode_boundaries)

    def get_config(self) -> dict[str, Any]:
        """Returns `window_length` and `ignore_episode_boundaries`."""
        return {"window_length": self.window_length, "ignore_episode_boundaries": self.ignore_episode_boundaries}


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
        n_step: steps per sampled transition, >= 1. With `n_step > 1` a sampled transition's
            reward is the discounted sum `r_t + gamma r_{t+1} + ... ` of up to `n_step` stored
            rewards of its episode, and it bootstraps from the observation `k` steps later with
            `gamma^k`, where `k <= n_step` is the number of steps taken: fewer at a termination
            (no bootstrap) or where the episode was truncated or stopped (the real final
            observation). Transitions are stored one step each, so `n_step` can be changed at any
            time. Defaults to `1`.
        gamma: discount of the n-step sums, in `[0, 1]`, or `None` for the discount of the agent
            that uses the memory (an off-policy agent sets it). Defaults to `None`.

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
        n_step: int = 1,
        gamma: float | None = None,
    ):
        self.limit = check_int("limit", limit, minimum=2)
        self.n_step = check_int("n_step", n_step, minimum=1)
        self.gamma = None if gamma is None else check_number("gamma", gamma, low=0.0, high=1.0)
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
        # keras-rl's API: the observations appended last, for `get_recent_state`; a transition
        # appended without its next observation waits for the next `append`.
        self._recent: deque = deque(maxlen=self.window_length)
        self._keras_rl_pending: tuple | None = None
        self._keras_rl_appends = False  # `append` was called keras-rl's way: `sample` returns Experiences

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
        next_observation: Any = None,
        truncated: bool = False,
        training: bool = True,
    ) -> None:
        """Stores the transition `(observation, action, reward, next_observation)`.

        Args:
            observation: the observation the action was taken in, `s_t`.
            action: the action taken, `a_t`.
            reward: the reward received, `r_t`.
            terminal: whether `next_observation` is terminal (the episode *terminated*): the
                learner does not bootstrap from it.
            next_observation: the observation after the step, `s_{t+1}`.
                Without it (keras-rl's `append(observation, action, reward, terminal)`), the
                transition is completed by the next call's `observation`, and the call after a
                terminal one only gives the episode's final observation, as keras-rl's loop does;
                `sample` then returns keras-rl's `Experience` list. Defaults to `None`.
            truncated: whether the episode stopped here without terminating (a time limit). The
                transition still bootstraps from `next_observation`. Defaults to `False`.
            training: `False` records `observation` for `get_recent_state` only, storing nothing
                (keras-rl's argument). Defaults to `True`.

        When `observation` is the `next_observation` of the previous call (same object or equal
        values) and that call did not end the episode, the slot already holding it is reused.
        """
        if next_observation is None:
            self._append_keras_rl(observation, action, reward, terminal, training)
            return
        ended = bool(terminal or truncated)
        self._recent.append((observation, ended))
        if ended:
            self._recent.append((next_observation, False))
        if training:
            self._store(observation, action, reward, terminal, next_observation, truncated)

    def _append_keras_rl(self, observation: Any, action: Any, reward: float, terminal: bool, training: bool) -> None:
        self._keras_rl_appends = True
        self._recent.append((observation, bool(terminal)))
        if not training:
            return
        pending, self._keras_rl_pending = self._keras_rl_pending, None
        if pending is None:
            self._keras_rl_pending = (np.asarray(observation), action, reward, bool(terminal))
            return
        self._store(*pending, observation)
        if not pending[3]:  # after a terminal step, `observation` was only the episode's final one
            self._keras_rl_pending = (np.asarray(observation), action, reward, bool(terminal))

    def get_recent_state(self, current_observation: Any) -> list:
        """Returns keras-rl's state for `current_observation`: the `window_length` observations
        ending with it, those appended before it in its episode, zero-padded in front.

        Args:
            current_observation: the newest observation, not appended yet.

        Returns:
            A list of `window_length` observations, oldest first.
        """
        return _recent_state(self._recent, current_observation, self.window_length, self.ignore_episode_boundaries)

    def _store(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        next_observation: Any,
        truncated: bool = False,
    ) -> None:
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
        self._keras_rl_pending = None

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

    def _states(self, idx: np.ndarray, k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        # The next observation sits in the next slot; slot `limit` wraps to 0 (`mode="wrap"`, `% limit`).
        if k is not None:  # n-step transitions: the next state is `k` slots on
            if self.window_length == 1:
                obs = self._observations
                return obs.take(idx, axis=0)[:, None], obs.take(idx + k, axis=0, mode="wrap")[:, None]
            step = self._episode_step[idx]
            return self._windows(idx, step), self._windows(idx + k, step + k)
        if self.window_length == 1:
            # ndarray.take gathers rows several times faster than fancy indexing.
            obs = self._observations
            return obs.take(idx, axis=0)[:, None], obs.take(idx + 1, axis=0, mode="wrap")[:, None]  # [B, 1, *obs]
        step = self._episode_step[idx]
        return self._windows(idx, step), self._windows(idx + 1, step + 1)

    def sample(self, batch_size: int, batch_idxs: Any = None) -> Batch | list[Experience]:
        """Samples `batch_size` transitions uniformly (with replacement).

        Args:
            batch_size: number of transitions.
            batch_idxs: the transitions to return instead of a random draw, by slot position
                (`0` is the oldest stored slot). As in keras-rl, a slot that starts no transition
                (an episode's final observation) is replaced by a random transition. Defaults to
                `None`.

        Returns:
            A `Batch` of numpy arrays; a list of keras-rl `Experience`s when the memory was filled
            with keras-rl's four-argument `append` (see `sample_experiences`).

        Raises:
            ValueError: if `batch_size` is not a positive integer, exceeds `limit`, or the memory
                holds no transition that can be sampled yet (none at all, or, with
                `ignore_episode_boundaries=True`, fewer than `window_length` stored steps); if
                `batch_idxs` does not hold `batch_size` positions in `[0, nb_entries)`.
        """
        batch = self._sample(batch_size, batch_idxs)
        return _experiences(batch) if self._keras_rl_appends else batch

    def sample_experiences(self, batch_size: int, batch_idxs: Any = None) -> list[Experience]:
        """Samples like `sample`, as a list of keras-rl `Experience` namedtuples.

        Returns:
            `batch_size` `Experience(state0, action, reward, state1, terminal1)`s.
        """
        return _experiences(self._sample(batch_size, batch_idxs))

    def _indices_at(self, batch_size: int, batch_idxs: Any) -> np.ndarray:
        idx = np.asarray(batch_idxs)
        if idx.shape != (batch_size,) or idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= self._size).any():
            raise ValueError(
                f"`batch_idxs` must hold batch_size={batch_size} integers in [0, nb_entries={self._size}). "
                f"Received: batch_idxs={batch_idxs!r:.200}"
            )
        oldest = self._next if self._size == self.limit else 0
        idx = (oldest + idx.astype(np.int64)) % self.limit
        ok = self._valid[idx]
        if self.window_length > 1:
            ok &= self._window_fits(idx)
        if not ok.all():
            idx[~ok] = self._sample_indices(int((~ok).sum()))
        return idx

    def _n_step_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n-step transitions at slots `idx`: their rows and the steps `k` each takes.

        Each row's reward is the discounted sum of up to `n_step` rewards of its episode; its
        terminal column holds `1 - gamma^(k-1) * (1 - terminal)`, so that a learner's
        `gamma * (1 - terminal)` is the bootstrap discount `gamma^k` (`0` at a termination).
        """
        if self.gamma is None:
            raise ValueError(
                "`gamma` must be set to sample n-step transitions: pass it to the memory, or give the memory "
                f"to an agent, which sets its own. Received: gamma=None, n_step={self.n_step}"
            )
        rows = self._rows.take(idx, axis=0)  # [B, A + 2]
        a, limit, gamma = self._nb_actions, self.limit, self.gamma
        reward = rows[:, a].astype(np.float64)
        done = rows[:, a + 1] > 0
        k = np.ones(len(idx), dtype=np.int64)
        discount = np.ones(len(idx))
        oldest = self._next if self._size == self.limit else 0
        age = (idx - oldest) % limit  # the following slots of the same episode are newer
        step = self._episode_step[idx]
        active = ~done
        for j in range(1, self.n_step):
            nxt = (idx + j) % limit
            active &= self._valid[nxt] & (self._episode_step[nxt] == step + j) & (age + j < self._size)
            if not active.any():
                break
            nrows = self._rows.take(nxt[active], axis=0)
            discount[active] *= gamma
            reward[active] += discount[active] * nrows[:, a]
            k[active] = j + 1
            ended = nrows[:, a + 1] > 0
            done[active] = ended
            active[np.flatnonzero(active)[ended]] = False
        rows[:, a] = reward
        rows[:, a + 1] = 1.0 - discount * (~done)  # discount is gamma^(k-1)
        return rows, k

    def _sample(self, batch_size: int, batch_idxs: Any = None) -> Batch:
        batch_size = self._check_batch_size(batch_size)
        idx = self._sample_indices(batch_size) if batch_idxs is None else self._indices_at(batch_size, batch_idxs)
        if self.n_step > 1:
            rows, k = self._n_step_rows(idx)
            state0, state1 = self._states(idx, k)
        else:
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
        if self.n_step > 1:
            rows[...], k = self._n_step_rows(idx)
            state0[...], state1[...] = self._states(idx, k)
            return
        obs = self._observations
        if self.window_length == 1 and state0.dtype == state1.dtype == obs.dtype:
            # mode="clip" writes straight into `out` (the indices are in range anyway).
            obs.take(idx, axis=0, out=state0[:, 0], mode="clip")
            obs.take(idx + 1, axis=0, out=state1[:, 0], mode="wrap")
        else:
            state0[...], state1[...] = self._states(idx)
        self._rows.take(idx, axis=0, out=rows, mode="clip")

    # ----------------------------------------------------------------- datasets
    @classmethod
    def from_arrays(
        cls,
        observations: Any,
        actions: Any,
        rewards: Any,
        terminals: Any,
        truncations: Any = None,
        next_observations: Any = None,
        window_length: int = 1,
        limit: int | None = None,
        seed: int | None = None,
    ) -> SequentialMemory:
        """Builds a memory from a dataset of flat per-step arrays (d3rlpy's layout).

        Row `t` of every array describes one step: the observation `s_t`, the action `a_t`
        taken in it, the reward `r_t`, and whether the episode ended after that step. Episodes
        end where `terminals | truncations`. A terminated step is stored without bootstrap. For a
        truncated step (a time limit), the learner bootstraps from the episode's real final
        observation: `next_observations[t]` when given; without `next_observations` that
        observation is unknown, so the truncated episode's last step is kept only as the final
        observation of the step before it, not as a transition of its own. When the last
        episode has no end flag it is kept as truncated, with a warning.

        Args:
            observations: `s_t`, shape `(N,) + obs_shape`, numbers.
            actions: `a_t`, shape `(N,) + action_shape` (e.g. `(N, nb_actions)`), numbers.
            rewards: `r_t`, shape `(N,)`.
            terminals: `True` (or 1) where the episode terminated after step `t`, shape `(N,)`.
            truncations: `True` where a time limit cut the episode after step `t`, shape `(N,)`,
                or `None` (no truncations). Defaults to `None`.
            next_observations: `s_{t+1}`, shape `(N,) + obs_shape`, or `None`. Inside an
                episode it must equal `observations[t + 1]`. Defaults to `None`.
            window_length: observations per state, as in the constructor. Defaults to `1`.
            limit: slots of the memory, or `None` for exactly the slots the dataset needs (one
                per step plus one per episode). Defaults to `None`.
            seed: seed of the memory's sampling generator. Defaults to `None`.

        Returns:
            A `SequentialMemory` holding the dataset's transitions, in order.

        Raises:
            TypeError: if an array is not numeric (or the end flags are not booleans or 0/1).
            ValueError: naming the array, if the arrays have different lengths, the dataset is
                empty, a value is NaN or infinite, `next_observations` disagrees with
                `observations` inside an episode, or `limit` is too small for the dataset.

        Example:

        >>> memory = SequentialMemory.from_arrays(obs, actions, rewards, terminals, truncations,
        ...                                       next_observations=next_obs)
        >>> memory.nb_transitions
        1000
        """
        obs = cls._dataset_array("observations", observations)
        act = cls._dataset_array("actions", actions)
        rew = cls._dataset_array("rewards", rewards)
        n = len(obs)
        term = cls._dataset_flags("terminals", terminals, n)
        trunc = np.zeros(n, dtype=bool) if truncations is None else cls._dataset_flags("truncations", truncations, n)
        nxt = None if next_observations is None else cls._dataset_array("next_observations", next_observations)
        named = [("actions", act), ("rewards", rew)] + ([("next_observations", nxt)] if nxt is not None else [])
        for name, a in named:
            if len(a) != n:
                raise ValueError(
                    f"Every dataset array must have one row per step, as `observations` ({n} rows). "
                    f"Received: {name} of shape {a.shape}"
                )
        if n == 0:
            raise ValueError(f"The dataset is empty. Received: observations of shape {obs.shape}")
        if rew.shape != (n,) and not (rew.ndim == 2 and rew.shape[1] == 1):
            raise ValueError(
                f"`rewards` must hold one number per step, shape ({n},). Received: rewards.shape={rew.shape}"
            )
        rew = rew.reshape(n)
        if nxt is not None and nxt.shape != obs.shape:
            raise ValueError(
                f"`next_observations` must have the shape of `observations` {obs.shape}. "
                f"Received: next_observations.shape={nxt.shape}"
            )
        ends = term | trunc
        if not ends[-1]:
            trunc = trunc.copy()
            trunc[-1] = True
            ends = term | trunc
            start = int(np.flatnonzero(ends[:-1])[-1]) + 1 if ends[:-1].any() else 0
            warnings.warn(
                f"The dataset's last episode (steps {start} to {n - 1}) has no end flag in `terminals` or "
                "`truncations`: it is kept as truncated"
                + (
                    " (its last step bootstraps from next_observations)."
                    if nxt is not None
                    else ", so its last step is not used as a transition (no next observation is known)."
                ),
                stacklevel=2,
            )
        if nxt is not None:
            inside = np.flatnonzero(~ends[:-1])  # steps whose next observation is the next row
            same = (nxt[inside] == obs[inside + 1]).reshape(len(inside), -1).all(axis=1)
            if not same.all():
                t = int(inside[np.argmin(same)])
                raise ValueError(
                    f"`next_observations[{t}]` must equal `observations[{t + 1}]`: the episode does not end at "
                    f"step {t} (terminals[{t}] and truncations[{t}] are False). Received: "
                    f"next_observations[{t}]={nxt[t]!r:.200}, observations[{t + 1}]={obs[t + 1]!r:.200}"
                )
        # Slots: each step's observation, plus a slot for an episode's final observation, except
        # after a truncated step with no known next observation (that step's own observation is
        # the final one, and the step is no transition).
        dropped = trunc & ~term if nxt is None else np.zeros(n, dtype=bool)
        extra = (ends & ~dropped).astype(np.int64)
        slot = np.arange(n) + np.cumsum(extra) - extra  # slot of each step's observation
        size = n + int(extra.sum())
        if limit is None:
            limit = max(size, window_length + 1)
        memory = cls(limit=limit, window_length=window_length, seed=seed)
        if size > memory.limit:
            raise ValueError(
                f"`limit` is too small for the dataset: it needs {size} slots ({n} steps and {int(extra.sum())} final "
                f"observations). Received: limit={limit}"
            )
        memory._allocate(obs[0], act[0].astype(np.float32))
        memory._observations[slot] = obs
        finals = slot[extra.astype(bool)] + 1
        if nxt is not None:
            memory._observations[finals] = nxt[extra.astype(bool)]  # terminal or truncated: the real s_{t+1}
        a = memory._nb_actions
        memory._rows[slot, :a] = act.reshape(n, a)
        memory._rows[slot, a] = rew
        memory._rows[slot, a + 1] = term
        keep = slot[~dropped]
        memory._valid[keep] = True
        starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])  # first step of each episode
        episode_of_step = np.cumsum(np.isin(np.arange(n), starts)) - 1
        position = np.arange(n) - starts[episode_of_step]
        memory._episode_step[slot] = position
        memory._episode_step[finals] = position[extra.astype(bool)] + 1
        memory._next = size % memory.limit
        memory._size = size
        memory._nb_valid = len(keep)
        memory._pending = size - 1
        memory._open = False
        return memory

    @classmethod
    def from_minari(
        cls, dataset: Any, window_length: int = 1, limit: int | None = None, seed: int | None = None
    ) -> SequentialMemory:
        """Builds a memory from a Minari dataset (`minari.MinariDataset`, the `minari` extra).

        Each Minari episode holds `T + 1` observations, `T` actions and rewards, and separate
        `terminations` and `truncations`; every step becomes a transition, and a truncated
        episode bootstraps from its real final observation.

        Args:
            dataset: a `minari.MinariDataset` (anything with `iterate_episodes()` yielding
                episodes with `observations`, `actions`, `rewards`, `terminations` and
                `truncations` arrays).
            window_length: observations per state. Defaults to `1`.
            limit: slots of the memory, or `None` for exactly what the dataset needs.
                Defaults to `None`.
            seed: seed of the memory's sampling generator. Defaults to `None`.

        Returns:
            A `SequentialMemory` holding every episode of `dataset`.

        Raises:
            TypeError: if `dataset` is not a Minari dataset, or its observations or actions
                are not arrays (flatten dictionary spaces first).
            ValueError: as `from_arrays`, or if an episode's arrays do not fit together.

        Example:

        >>> dataset = minari.load_dataset("pendulum/expert-v0")
        >>> memory = SequentialMemory.from_minari(dataset)
        """
        if not callable(getattr(dataset, "iterate_episodes", None)):
            raise TypeError(
                "`dataset` must be a Minari dataset (minari.MinariDataset; install the `minari` extra). "
                f"Received: dataset={dataset!r:.200}"
            )
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
        for episode in dataset.iterate_episodes():
            observations, actions = episode.observations, episode.actions
            for name, value in (("observations", observations), ("actions", actions)):
                if not isinstance(value, np.ndarray):
                    raise TypeError(
                        f"Episode {episode.id}'s {name} must be an array; flatten dictionary or tuple spaces (e.g. "
                        f"gymnasium.wrappers.FlattenObservation) before collecting. Received: {type(value).__name__}"
                    )
            t = len(actions)
            if len(observations) != t + 1:
                raise ValueError(
                    f"Episode {episode.id} must hold one more observation than actions. "
                    f"Received: {len(observations)} observations, {t} actions"
                )
            parts["obs"].append(observations[:-1])
            parts["next"].append(observations[1:])
            parts["act"].append(actions)
            parts["rew"].append(np.asarray(episode.rewards))
            parts["term"].append(np.asarray(episode.terminations, dtype=bool))
            parts["trunc"].append(np.asarray(episode.truncations, dtype=bool))
        if not parts["obs"]:
            raise ValueError(f"The Minari dataset holds no episode. Received: dataset={dataset!r:.200}")
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        return cls.from_arrays(
            arrays["obs"],
            arrays["act"],
            arrays["rew"],
            arrays["term"],
            arrays["trunc"],
            next_observations=arrays["next"],
            window_length=window_length,
            limit=limit,
            seed=seed,
        )

    @staticmethod
    def _dataset_array(name: str, value: Any) -> np.ndarray:
        """`value` as a numeric array of at least one dimension, all finite (for `from_arrays`)."""
        try:
            array = np.asarray(value)
        except Exception as e:  # noqa: BLE001 - ragged lists and the like
            raise TypeError(f"`{name}` must be an array of numbers. Received: {name}={value!r:.200}") from e
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise TypeError(
                f"`{name}` must be an array of numbers with one row per step. "
                f"Received: {name} of dtype {array.dtype} and shape {array.shape}"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            where = ", ".join(str(int(i)) for i in bad)
            raise ValueError(f"`{name}` must hold finite numbers only. Received: {name}[{where}]={array[tuple(bad)]!r}")
        return array

    @staticmethod
    def _dataset_flags(name: str, value: Any, n: int) -> np.ndarray:
        """End flags as booleans of shape `(n,)` (for `from_arrays`)."""
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
            raise TypeError(
                f"`{name}` must hold booleans (or 0/1), one per step. Received: {name} of dtype {array.dtype}"
                + ("" if array.dtype.kind not in "biuf" else f" with values {np.unique(array)[:5].tolist()}")
            )
        if array.shape != (n,):
            raise ValueError(
                f"Every dataset array must have one row per step, as `observations` ({n} rows). "
                f"Received: {name} of shape {array.shape}"
            )
        return array.astype(bool)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Returns the stored transitions as a dataset of flat per-step arrays, oldest first.

        The layout is `from_arrays`'s: `SequentialMemory.from_arrays(**memory.to_arrays())`
        rebuilds the same transitions. An episode still running in the memory ends with a
        truncation; a step stored without a next observation (see `from_arrays`) is not a
        transition and is left out.

        Returns:
            A dict of `observations` `(N,) + obs_shape`, `actions` `(N,) + action_shape`
            (float32), `rewards` `(N,)` (float32), `terminals` and `truncations` `(N,)` (bool),
            and `next_observations` `(N,) + obs_shape`.
        """
        if self._observations is None:
            raise ValueError("The memory is empty: there is nothing to export. Received: nb_entries=0")
        oldest = self._next if self._size == self.limit else 0
        order = (oldest + np.arange(self._size)) % self.limit
        slots = order[self._valid[order]]  # transitions, oldest first
        following = (slots + 1) % self.limit
        continues = np.zeros(len(slots), dtype=bool)
        continues[:-1] = following[:-1] == slots[1:]  # the next transition starts where this one ended
        a = self._nb_actions
        terminals = self._rows[slots, a + 1] > 0.5
        return {
            "observations": self._observations[slots].copy(),
            "actions": self._rows[slots, :a].reshape((len(slots),) + self._action_shape).copy(),
            "rewards": self._rows[slots, a].copy(),
            "terminals": terminals,
            "truncations": ~continues & ~terminals,
            "next_observations": self._observations[following].copy(),
        }

    def sampling_arrays(self) -> dict[str, np.ndarray]:
        """The storage a sampler needs, for samplers that run outside this class (`fit_offline`'s).

        Returns:
            A dict of `observations` (one row per slot), `rows` (`[action..., reward, terminal]`
            per slot, float32), `episode_step` (each slot's position in its episode) and
            `indices`: the slots that `sample` may draw (a transition whose window is complete),
            as int64. A transition at slot `i` has its next observation in slot
            `(i + 1) % limit`. The arrays are the memory's own (not copies): do not change them.

        Raises:
            TypeError: if the memory samples n-step transitions (`n_step > 1`), which such a
                sampler does not build.
        """
        if self.n_step > 1:
            raise TypeError(
                "Samplers outside the memory draw one-step transitions; this memory samples n-step ones. "
                f"Use a memory with n_step=1. Received: n_step={self.n_step}"
            )
        if self._observations is None:
            empty = np.zeros(0, dtype=np.int64)
            return {"observations": None, "rows": None, "episode_step": self._episode_step, "indices": empty}
        candidates = np.flatnonzero(self._valid[: self._size])
        if self.window_length > 1:
            candidates = candidates[self._window_fits(candidates)]
        return {
            "observations": self._observations,
            "rows": self._rows,
            "episode_step": self._episode_step,
            "indices": candidates.astype(np.int64),
        }

    # ------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "limit": self.limit,
            "window_length": self.window_length,
            "ignore_episode_boundaries": self.ignore_episode_boundaries,
            "seed": self.seed,
            "n_step": self.n_step,
            "gamma": self.gamma,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequentialMemory:
        """Creates an empty memory from `get_config()`'s output."""
        return cls(**config)

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes the memory's contents and sampling state to a `.npz` file, atomically.

        The file uses numpy's format without pickled objects.
        """
        arrays = self._state_arrays()
        with atomic_path(filepath) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The arrays `save` writes (a subclass adds its own)."""
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
        return arrays

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


def _tree_kernels(compiled: bool | None):
    """The compiled sum-tree loops (`rl._tree_kernels`) if numba is there and `compiled` allows them."""
    if compiled is not None and not isinstance(compiled, bool):
        raise TypeError(f"`compiled` must be True, False or None. Received: compiled={compiled!r}")
    if compiled is False:
        return None
    try:
        from rl import _tree_kernels
    except Exception as error:  # numba missing, or unusable here (a NumPy it does not support, no cache folder)
        if compiled:
            raise ImportError(
                'SumTree(compiled=True) needs numba: pip install "keras-rl3[numba]". '
                f"Received: compiled=True, and loading the compiled loops failed with: {error!r}"
            ) from error
        if not isinstance(error, ImportError):
            warnings.warn(f"The sum tree runs in numpy: its compiled loops failed to load ({error!r}).", stacklevel=3)
        return None
    return _tree_kernels


class SumTree:
    """A binary tree of non-negative values whose nodes hold the sums of their leaves.

    Leaves sit at positions `capacity .. 2 * capacity - 1` of one float64 array (`capacity` is a
    power of two), node `i` has children `2i` and `2i + 1`. The tree is kept from the leaves up to
    level `top` (at most 4096 nodes); above it, the running sums of that level's nodes stand in
    for the upper levels (`running_sums[i]` is what the nodes before node `i` of the top level hold),
    so that a prefix-sum search starts with one binary search over them and then goes down one
    level at a time. Batches of updates and of searches cost O(batch_size * log(size) + 4096).
    `set` refreshes the running sums at once; a single leaf's update (`set_one`, used once per
    stored transition) when they are next read.

    With numba installed (`pip install "keras-rl3[numba]"`), batches run in compiled loops (for
    batches of 256 from a million leaves, updates take about a third of numpy's time and searches
    about two thirds); without it, in numpy. Both give the same bits, so saved memories and seeded
    runs do not depend on which one ran. The loops are compiled on first use and cached on disk.

    Args:
        size: number of leaves, >= 1.
        compiled: `True` to require the compiled loops, `False` to use numpy, `None` (the default)
            for the compiled loops when numba can be imported (with a warning, numpy when numba
            is there but the loops fail to load).

    Raises:
        ImportError: if `compiled=True` and numba cannot be imported.
    """

    max_top_level = 12  # the top level kept holds at most 2**12 = 4096 nodes

    def __init__(self, size: int, compiled: bool | None = None):
        self.size = check_int("size", size, minimum=1)
        self._kernels = _tree_kernels(compiled)
        self.capacity = 1 << max(0, (self.size - 1).bit_length())
        self.depth = self.capacity.bit_length() - 1
        self.top = min(self.depth, self.max_top_level)
        self.nodes = np.zeros(2 * self.capacity, dtype=np.float64)  # nodes above level `top` stay 0
        self._running_sums = np.zeros((1 << self.top) + 1, dtype=np.float64)
        self._stale_from = 1 << self.top  # running sums from this top node on need a refresh

    @property
    def compiled(self) -> bool:
        """Whether batches run in the compiled loops."""
        return self._kernels is not None

    @property
    def running_sums(self) -> np.ndarray:
        """The running sums of the top level's nodes, `[2**top + 1]` (brought up to date first)."""
        return self._fresh_running_sums()

    @property
    def total(self) -> float:
        """The sum of all leaves."""
        return float(self._fresh_running_sums()[-1])

    @property
    def leaves(self) -> np.ndarray:
        """The leaves' values, `[size]` (a view: change them with `set`)."""
        return self.nodes[self.capacity : self.capacity + self.size]

    def set(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Sets leaves `indices` to `values` and updates their ancestors (the last write wins on repeats).

        Raises:
            ValueError: if an index is outside `[0, size)`.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ValueError(f"`indices` must lie in [0, {self.size}). Received: indices={indices!r:.200}")
        if not idx.size:
            return
        if self._kernels is not None:
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if values.shape != idx.shape:
                values = np.broadcast_to(values, idx.shape).copy()
            changed = self._kernels.set_leaves(self.nodes, idx, values, self.capacity, self.depth - self.top)
        else:
            pos = idx + self.capacity
            nodes = self.nodes
            nodes[pos] = values
            for _ in range(self.depth - self.top):
                pos >>= 1
                child = pos << 1
                nodes[pos] = nodes.take(child) + nodes.take(child + 1)
            changed = int(pos.min())
        self._stale_from = min(self._stale_from, changed - (1 << self.top))
        self._fresh_running_sums()  # here, so that an update's cost is paid by the update

    def set_one(self, index: int, value: float) -> None:
        """Sets one leaf (a scalar path, faster than `set` for a single index)."""
        nodes = self.nodes
        pos = int(index) + self.capacity
        nodes[pos] = value
        for _ in range(self.depth - self.top):
            pos >>= 1
            nodes[pos] = nodes[2 * pos] + nodes[2 * pos + 1]
        self._stale_from = min(self._stale_from, pos - (1 << self.top))

    def _fresh_running_sums(self) -> np.ndarray:
        first, start = 1 << self.top, self._stale_from
        if start < first:
            # The same additions in the same order as one cumsum of the whole level: the sums do
            # not depend on which leaves were set one at a time.
            sums, level = self._running_sums, self.nodes[first : 2 * first]
            if self._kernels is not None:
                self._kernels.set_running_sums(level, sums, start)
            else:
                tail = np.concatenate((sums[start : start + 1], level[start:]))
                np.cumsum(tail, out=tail)
                sums[start + 1 :] = tail[1:]
            self._stale_from = first
        return self._running_sums

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """The leaf of each prefix sum: the first `i` with `sum(leaves[: i + 1]) > prefix`, `[B]` int64."""
        sums, first = self._fresh_running_sums(), 1 << self.top
        if self._kernels is not None:
            u = np.ascontiguousarray(prefix, dtype=np.float64).reshape(-1)
            levels = self.depth - self.top
            return self._kernels.find(self.nodes, sums, u, self.top, levels, self.capacity, self.size)
        nodes, u = self.nodes, np.array(prefix, dtype=np.float64).reshape(-1)
        pos = np.minimum(np.searchsorted(sums[1:], u, side="right"), first - 1)
        u -= sums.take(pos)
        pos += first
        for _ in range(self.depth - self.top):
            pos <<= 1
            left = nodes.take(pos)
            right = u >= left
            left *= right
            u -= left
            pos += right
        pos -= self.capacity
        return np.minimum(pos, self.size - 1, out=pos)

    def rebuild(self) -> None:
        """Recomputes every node above the leaves, and the running sums, from the leaves."""
        nodes = self.nodes
        for level in range(self.depth - 1, self.top - 1, -1):
            lo, hi = 1 << level, 2 << level
            nodes[lo:hi] = nodes[2 * lo : 2 * hi : 2] + nodes[2 * lo + 1 : 2 * hi : 2]
        self._stale_from = 0


class PrioritizedMemory(SequentialMemory):
    """Prioritized experience replay (proportional variant, Schaul et al. 2016) on `SequentialMemory`.

    A transition is drawn with probability `P(i) = p_i^alpha / sum_k p_k^alpha`, where its
    priority `p_i = |td_error_i| + epsilon` is set by `update_priorities` after each training
    step; a new transition gets the largest priority seen so far, so that it is drawn at least
    once soon. The sampling bias is corrected by the importance-sampling weights
    `w_i = (N * P(i))^-beta / max_j w_j` (the max over the batch), which an off-policy agent
    uses to weight its TD loss; `beta` grows linearly from its initial value to `1` over
    `beta_steps` sampled batches. The priorities live in a `SumTree`, so drawing a batch and
    updating its priorities are O(batch_size * log(limit)), vectorised in numpy. Storage,
    episodes, windows, truncation, n-step returns, `save`/`load` and checkpoints are those of
    `SequentialMemory`; the priorities are saved with the transitions.

    Sampling is stratified: the total priority is cut into `batch_size` equal segments and one
    transition is drawn from each.

    Args:
        limit: number of slots, as in `SequentialMemory`.
        alpha: how much the priorities count, >= 0 (`0`: uniform sampling). Defaults to `0.6`.
        beta: initial importance-sampling exponent, in `[0, 1]`. Defaults to `0.4`.
        beta_steps: sampled batches over which `beta` grows linearly to `1`, >= 1. Defaults to
            `100_000`.
        epsilon: added to `|td_error|`, > 0, so that no transition gets probability zero.
            Defaults to `1e-6`.
        window_length, ignore_episode_boundaries, seed, n_step, gamma: as in `SequentialMemory`.

    Raises:
        ValueError: if an argument is out of range.

    Example:

    >>> memory = PrioritizedMemory(limit=100_000, alpha=0.6, beta=0.4, beta_steps=50_000, seed=0)
    >>> agent = DQNAgent(model, nb_actions=2, memory=memory, ...)  # the agent updates the priorities
    >>> batch = memory.sample(32)
    >>> memory.last_indices, memory.last_weights  # the draw's slots and importance weights
    """

    def __init__(
        self,
        limit: int,
        alpha: float = 0.6,
        beta: float = 0.4,
        beta_steps: int = 100_000,
        epsilon: float = 1e-6,
        window_length: int = 1,
        ignore_episode_boundaries: bool = False,
        seed: int | None = None,
        n_step: int = 1,
        gamma: float | None = None,
    ):
        super().__init__(limit, window_length, ignore_episode_boundaries, seed, n_step, gamma)
        self.alpha = check_number("alpha", alpha, low=0.0)
        self.beta = check_number("beta", beta, low=0.0, high=1.0)
        self.beta_steps = check_int("beta_steps", beta_steps, minimum=1)
        self.epsilon = check_number("epsilon", epsilon, low=0.0, low_inclusive=False)
        self.tree = SumTree(self.limit)
        self.max_priority = 1.0
        self.nb_batches = 0  # batches sampled so far (for beta's annealing)
        self.last_indices = np.zeros(0, dtype=np.int64)
        self.last_weights = np.zeros(0, dtype=np.float32)

    @property
    def current_beta(self) -> float:
        """The importance-sampling exponent of the next batch: `beta` annealed linearly to `1`."""
        return self.beta + (1.0 - self.beta) * min(1.0, self.nb_batches / self.beta_steps)

    @property
    def priorities(self) -> np.ndarray:
        """Each slot's priority `p_i` (`0` for slots that start no transition), `[limit]` (a copy)."""
        leaves = self.tree.leaves
        if self.alpha == 0:
            return np.where(leaves > 0, 1.0, 0.0)
        return leaves ** (1.0 / self.alpha)

    # ------------------------------------------------------------------ writing
    def _take_slot(self) -> int:
        i = super()._take_slot()
        if self.tree.leaves[i] != 0.0:
            self.tree.set_one(i, 0.0)
        return i

    def _store(self, *args: Any, **kwargs: Any) -> None:
        super()._store(*args, **kwargs)
        self.tree.set_one((self._pending - 1) % self.limit, self.max_priority**self.alpha)

    def _sync_tree(self) -> None:
        """Gives every stored transition without a priority the maximum one (memories built from data)."""
        leaves = self.tree.leaves
        missing = self._valid & (leaves == 0)
        if missing.any():
            leaves[missing] = self.max_priority**self.alpha
            leaves[~self._valid] = 0.0
            self.tree.rebuild()

    # ----------------------------------------------------------------- sampling
    def _sample_indices(self, batch_size: int) -> np.ndarray:
        tree = self.tree
        total = tree.total
        if total <= 0 or total == np.inf:
            self._sync_tree()
            total = tree.total
        leaves = tree.leaves
        idx = p = np.empty(0, dtype=np.int64)
        for _ in range(_DRAW_ROUNDS):
            need = batch_size - idx.size
            u = self.rng.random(need)
            u += np.arange(need)
            u *= total / need
            new = tree.find(u)
            p_new = leaves.take(new)
            ok = p_new > 0  # guards against rounding at the segments' edges
            if self.window_length > 1:
                ok &= self._window_fits(new)
            if ok.all() and not idx.size:
                idx, p = new, p_new
                break
            idx, p = np.concatenate([idx, new[ok]]), np.concatenate([p, p_new[ok]])
            if idx.size >= batch_size:
                break
        else:  # few transitions can be sampled (short windows): draw the rest uniformly among them
            idx = np.concatenate([idx, super()._sample_indices(batch_size - idx.size)])
            p = leaves.take(idx)
        self._record(idx, p)
        return idx

    def _indices_at(self, batch_size: int, batch_idxs: Any) -> np.ndarray:
        batches = self.nb_batches  # replacement draws inside count with this batch, not on their own
        idx = super()._indices_at(batch_size, batch_idxs)
        self.nb_batches = batches
        self._record(idx)
        return idx

    def _record(self, idx: np.ndarray, p: np.ndarray | None = None) -> None:
        if p is None:
            p = self.tree.leaves.take(idx)
        low = p.min()
        if low <= 0:  # slots drawn uniformly or by position may have no priority yet
            p = np.where(p > 0, p, p[p > 0].min() if (p > 0).any() else 1.0)
            low = p.min()
        self.last_weights = ((p * (1.0 / low)) ** -self.current_beta).astype(np.float32)
        self.last_indices = idx
        self.nb_batches += 1

    def update_priorities(self, indices: Any, td_errors: Any) -> None:
        """Sets the priorities of sampled transitions to `|td_errors| + epsilon`.

        Slots that no longer start a transition (overwritten since the draw) are left alone.

        Args:
            indices: slots, as `last_indices` returned them, `[B]` integers in `[0, limit)`.
            td_errors: the transitions' TD errors (their sign is dropped), `[B]` finite numbers.

        Raises:
            ValueError: if the arrays differ in length, an index is out of range, or an error
                is not finite.
        """
        idx = np.asarray(indices)
        err = np.abs(np.asarray(td_errors, dtype=np.float64)).reshape(-1)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or err.shape != idx.shape:
            raise ValueError(
                "`indices` must be a 1-D integer array as long as `td_errors`. "
                f"Received: indices.shape={idx.shape}, td_errors.shape={np.shape(td_errors)}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.limit):
            raise ValueError(f"`indices` must lie in [0, {self.limit}). Received: indices={idx!r:.200}")
        if not np.isfinite(err).all():
            raise ValueError(f"`td_errors` must be finite. Received: td_errors={np.asarray(td_errors)!r:.200}")
        keep = self._valid[idx]
        if not keep.all():
            idx, err = idx[keep], err[keep]
        if not idx.size:
            return
        p = err + self.epsilon
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(idx, p**self.alpha)

    def sampling_arrays(self) -> dict[str, np.ndarray]:
        """Not available: samplers outside the memory would ignore the priorities.

        Raises:
            TypeError: always.
        """
        raise TypeError(
            "PrioritizedMemory samples by priority, which samplers outside the memory (fit_offline's) do not do. "
            f"Use a SequentialMemory. Received: memory={type(self).__name__}"
        )

    # ------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "beta_steps": self.beta_steps,
            "epsilon": self.epsilon,
        }

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._state_arrays()
        arrays["priority_leaves"] = self.tree.leaves.copy()
        arrays["priority_state"] = np.array([self.max_priority, float(self.nb_batches)], dtype=np.float64)
        return arrays

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, as `SequentialMemory.read_state`, with the priorities.

        A file saved by a `SequentialMemory` is accepted: its transitions get the maximum priority.

        Raises:
            ValueError: naming the file and the field, if anything is missing or wrong.
        """
        state = super().read_state(filepath)
        with np.load(os.fspath(filepath), allow_pickle=False) as data:
            leaves = data["priority_leaves"] if "priority_leaves" in data.files else None
            extra = data["priority_state"] if "priority_state" in data.files else None
        if leaves is None:
            state["priority_leaves"] = np.where(state["valid"], 1.0, 0.0)
            state["priority_state"] = (1.0, 0)
            return state
        if leaves.dtype != np.float64 or leaves.shape != (self.limit,) or not np.isfinite(leaves).all():
            raise ValueError(
                f"The memory file is invalid: `priority_leaves` must be finite float64 of shape ({self.limit},). "
                f"Received: priority_leaves of shape {leaves.shape}, dtype {leaves.dtype} in filepath={filepath!r}"
            )
        if (leaves < 0).any() or (leaves[~state["valid"]] != 0).any():
            raise ValueError(
                "The memory file is invalid: `priority_leaves` must be >= 0, and 0 for slots that start no "
                f"transition. Received: filepath={filepath!r}"
            )
        if extra is None or extra.shape != (2,) or not np.isfinite(extra).all() or extra[0] <= 0 or extra[1] < 0:
            raise ValueError(
                "The memory file is invalid: `priority_state` must be [max_priority > 0, nb_batches >= 0]. "
                f"Received: priority_state={None if extra is None else extra.tolist()!r} in filepath={filepath!r}"
            )
        state["priority_leaves"] = leaves
        state["priority_state"] = (float(extra[0]), int(extra[1]))
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the contents, sampling state and priorities with `state`, as `read_state` returned it."""
        super().set_state(state)
        self.tree.leaves[:] = state["priority_leaves"]
        self.tree.rebuild()
        self.max_priority, self.nb_batches = state["priority_state"]


def _experiences(batch: Batch) -> list[Experience]:
    return [
        Experience(batch.state0[k], batch.action[k], float(batch.reward[k]), batch.state1[k], bool(batch.terminal[k]))
        for k in range(len(batch.reward))
    ]


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


class EpisodeParameterMemory(Memory):
    """Parameter vectors, each with the total reward of the episode it played: `CEMAgent`'s memory.

    While an episode runs, `append` adds up its rewards; `finalize_episode(params)` stores the
    parameters the episode was played with and its total reward, in a ring buffer of `limit`
    episodes (the oldest is dropped first). `sample` draws stored episodes uniformly.

    Args:
        limit: number of episodes kept, >= 1.
        window_length: number of consecutive observations that make one state (the agent
            builds its states with it; `get_recent_state` returns them). Defaults to `1`.
        ignore_episode_boundaries: whether `get_recent_state` may reach into the previous
            episode. Defaults to `False`.
        seed: seed of the sampling generator. Defaults to `None` (fresh entropy).

    Raises:
        TypeError, ValueError: naming the argument, for a non-integer or non-positive `limit`
            or `window_length`.

    Example:

    >>> memory = EpisodeParameterMemory(limit=1000, window_length=1, seed=0)
    >>> memory.append(observation, action, reward=1.0, terminal=False)
    >>> memory.finalize_episode(params)           # params: the flat parameter vector played
    >>> params_batch, returns = memory.sample(50)
    """

    def __init__(
        self, limit: int, window_length: int = 1, ignore_episode_boundaries: bool = False, seed: int | None = None
    ):
        super().__init__(window_length, ignore_episode_boundaries)
        self.limit = check_int("limit", limit, minimum=1)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._params: np.ndarray | None = None  # (limit, nb_params) float32, allocated by the first episode
        self._returns = np.zeros(self.limit, dtype=np.float64)
        self._next = 0  # slot written next
        self._size = 0  # slots in use
        self._episode_reward = 0.0  # the running episode's rewards so far

    @property
    def nb_entries(self) -> int:
        """Number of episodes stored."""
        return self._size

    @property
    def episode_reward(self) -> float:
        """The sum of the rewards appended since the last finished episode."""
        return self._episode_reward

    def append(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        training: bool = True,
        truncated: bool = False,
        next_observation: Any = None,
    ) -> None:
        """Adds `reward` to the running episode's total (when `training`).

        Takes the arguments of a transition, as other memories do; only `reward` is kept, and
        the last `window_length` observations for `get_recent_state`.

        Args:
            observation: the observation acted on (not stored).
            action: the action taken (not stored).
            reward: the step's reward.
            terminal: whether the episode terminated (not stored: `finalize_episode` ends it).
            training: whether the step belongs to training; other steps are not counted.
                Defaults to `True`.
            truncated: whether a time limit cut the episode (not stored). Defaults to `False`.
            next_observation: the next observation (not stored). Defaults to `None`.

        Raises:
            ValueError: if `reward` is not a finite number.
        """
        if training:
            self._episode_reward += check_number("reward", reward)
        super().append(observation, action, reward, bool(terminal or truncated), training)

    def finalize_episode(self, params: np.ndarray) -> None:
        """Stores the running episode: `params` (the parameters it was played with) and its total reward.

        Args:
            params: a 1-D array of parameters, the same size for every episode.

        Raises:
            ValueError: if `params` is not a finite 1-D array of the size stored before.
        """
        params = np.asarray(params)
        if params.ndim != 1 or params.dtype.kind not in "biuf" or not np.isfinite(params).all():
            raise ValueError(
                f"`params` must be a finite 1-D array of numbers. Received: params of shape {params.shape}, "
                f"dtype {params.dtype}"
            )
        if self._params is None:
            self._params = np.zeros((self.limit, params.size), dtype=np.float32)
        elif params.size != self._params.shape[1]:
            raise ValueError(
                f"`params` must have the size of the stored ones ({self._params.shape[1]}). "
                f"Received: params of shape {params.shape}"
            )
        self._params[self._next] = params
        self._returns[self._next] = self._episode_reward
        self._next = (self._next + 1) % self.limit
        self._size = min(self._size + 1, self.limit)
        self._episode_reward = 0.0

    def end_episode(self) -> None:
        """Abandons the running episode (a run stopped in its middle): its rewards are forgotten."""
        self._episode_reward = 0.0

    def sample(self, batch_size: int, batch_idxs: Any = None) -> tuple[list[np.ndarray], list[float]]:
        """Draws stored episodes uniformly: without replacement when `batch_size <= nb_entries`,
        with replacement (and a warning) otherwise.

        Args:
            batch_size: number of episodes, >= 1.
            batch_idxs: the episodes to return instead of a random draw, as indices in
                `[0, nb_entries)`, oldest first. Defaults to `None`.

        Returns:
            `(params, returns)`: a list of `batch_size` parameter vectors and the list of
            their episodes' total rewards.

        Raises:
            ValueError: if the memory is empty, or `batch_idxs` does not hold `batch_size`
                indices in range.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if self._size == 0:
            raise ValueError(
                "The memory holds no finished episode yet: call finalize_episode first. "
                f"Received: batch_size={batch_size}"
            )
        if batch_idxs is None:
            if batch_size <= self._size:
                idx = self.rng.choice(self._size, size=batch_size, replace=False)
            else:
                warnings.warn(
                    f"Only {self._size} episodes are stored, fewer than batch_size={batch_size}: sampling with "
                    "replacement. A longer warm-up avoids it.",
                    stacklevel=2,
                )
                idx = self.rng.integers(0, self._size, size=batch_size)
        else:
            idx = np.asarray(batch_idxs)
            if idx.shape != (batch_size,) or idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= self._size).any():
                raise ValueError(
                    f"`batch_idxs` must hold batch_size={batch_size} integers in [0, {self._size}). "
                    f"Received: batch_idxs={batch_idxs!r:.200}"
                )
        slots = (idx + (self._next if self._size == self.limit else 0)) % self.limit  # oldest first
        return [self._params[s].copy() for s in slots], [float(self._returns[s]) for s in slots]

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {**super().get_config(), "limit": self.limit, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EpisodeParameterMemory:
        """Creates an empty memory from `get_config()`'s output."""
        return cls(**config)

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes the memory's contents and sampling state to a `.npz` file, atomically (no pickles)."""
        arrays = {
            "config": np.array([self.limit, self.window_length], dtype=np.int64),
            "counters": np.array([self._next, self._size], dtype=np.int64),
            "returns": self._returns,
            "episode_reward": np.array(self._episode_reward, dtype=np.float64),
            "rng_state": _rng_state_array(self.rng),
        }
        if self._params is not None:
            arrays["params"] = self._params
        with atomic_path(filepath) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load(self, filepath: str | os.PathLike) -> None:
        """Restores what `save` wrote: `set_state(read_state(filepath))`.

        Raises:
            ValueError: if the file is missing, damaged, or does not fit this memory.
        """
        self.set_state(self.read_state(filepath))

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, without changing the memory.

        Returns:
            The memory's state, for `set_state`.

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
            return ValueError(
                f"The memory file is invalid: `{field}` must be {expected}. Received: filepath={filepath!r}"
            )

        required = {"config", "counters", "returns", "episode_reward", "rng_state"}
        if not required <= arrays.keys():
            raise ValueError(
                f"Not an episode parameter memory file: missing {sorted(required - arrays.keys())}. "
                f"Received: filepath={filepath!r}"
            )
        config, counters = arrays["config"], arrays["counters"]
        if config.dtype.kind not in "iu" or config.shape != (2,):
            raise bad("config", "2 integers")
        if (int(config[0]), int(config[1])) != (self.limit, self.window_length):
            raise ValueError(
                f"The memory file was saved with limit={int(config[0])}, window_length={int(config[1])}; this memory "
                f"has limit={self.limit}, window_length={self.window_length}. Received: filepath={filepath!r}"
            )
        if counters.dtype.kind not in "iu" or counters.shape != (2,):
            raise bad("counters", "2 integers")
        nxt, size = int(counters[0]), int(counters[1])
        in_ring = nxt == size if size < self.limit else 0 <= nxt < self.limit  # fills 0, 1, ... then wraps
        if not 0 <= size <= self.limit or not in_ring:
            raise bad("counters", f"a ring-buffer position and size within limit={self.limit} (got {nxt}, {size})")
        returns = arrays["returns"]
        if returns.dtype != np.float64 or returns.shape != (self.limit,) or not np.isfinite(returns).all():
            raise bad("returns", f"{self.limit} finite float64 values")
        episode_reward = arrays["episode_reward"]
        if episode_reward.dtype != np.float64 or episode_reward.shape != () or not np.isfinite(episode_reward):
            raise bad("episode_reward", "a finite float64 scalar")
        params = arrays.get("params")
        if params is None:
            if size:
                raise bad("params", f"present: the file counts {size} episodes")
        elif params.dtype != np.float32 or params.ndim != 2 or params.shape[0] != self.limit:
            raise bad("params", f"float32 of shape ({self.limit}, nb_params)")
        elif not np.isfinite(params).all():
            raise bad("params", "finite")
        return {
            "next": nxt,
            "size": size,
            "returns": returns,
            "episode_reward": float(episode_reward),
            "params": params,
            "rng_state": _check_rng_state_array(arrays["rng_state"], filepath),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the memory's contents and sampling state with `state`, as `read_state` returned it."""
        self._next, self._size = state["next"], state["size"]
        self._returns = state["returns"]
        self._episode_reward = state["episode_reward"]
        self._params = state["params"]
        self.rng.bit_generator.state = state["rng_state"]
