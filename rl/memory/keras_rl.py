"""keras-rl's memory API: `Experience`, `sample_batch_indexes`, `RingBuffer`, `zeroed_observation`, `Memory`.

Scripts written against keras-rl's `rl.memory` keep working: these are its names, with its behaviour.
"""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any, NamedTuple

import numpy as np

from rl.memory.rows import Batch
from rl.util import check_int

__all__ = ["Experience", "Memory", "RingBuffer", "sample_batch_indexes", "zeroed_observation"]


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


def experiences(batch: Batch) -> list[Experience]:
    """The transitions of `batch` as a list of keras-rl `Experience`s."""
    return [
        Experience(batch.state0[k], batch.action[k], float(batch.reward[k]), batch.state1[k], bool(batch.terminal[k]))
        for k in range(len(batch.reward))
    ]


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


def recent_state(recent: deque, current: Any, window_length: int, ignore_episode_boundaries: bool) -> list:
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
        return recent_state(self._recent, current_observation, self.window_length, self.ignore_episode_boundaries)

    def get_config(self) -> dict[str, Any]:
        """Returns `window_length` and `ignore_episode_boundaries`."""
        return {"window_length": self.window_length, "ignore_episode_boundaries": self.ignore_episode_boundaries}
