"""`ObservationWindow`: the state an agent acts on, built the way `SequentialMemory` samples windows."""

from __future__ import annotations

from typing import Any

import numpy as np

from rl.util import check_int

__all__ = ["ObservationWindow"]


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
