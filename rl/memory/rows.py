"""What a transition looks like: the stored row layout `[action..., reward, terminal]`, and a sampled `Batch`.

This module uses numpy only. `TransitionRows` reads rows by plain slicing of the last axis, so the
same object reads numpy arrays and TensorFlow (or any Keras backend) tensors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Batch", "TransitionRows"]


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


class TransitionRows:
    """The layout of a transition row: `[action..., reward, terminal]`, float32, `action_size + 2` wide.

    A replay memory stores one row per transition, and agents receive batches of rows (`sample_into`,
    `sampling_arrays`). The row holds the flattened action, then the reward, then the terminal column:
    `1.0` where the next state is terminal (no bootstrap), else `0.0`. In n-step samples the terminal
    column holds `1 - gamma^(k-1) * (1 - terminal)` instead, so that `gamma * (1 - terminal)` is the
    bootstrap discount `gamma^k`.

    The readers (`action`, `reward`, `terminal`, `split`) only slice the last axis, so they read one
    row `[width]` or a batch `[B, width]`, as numpy arrays (views) or as tensors of any Keras backend.
    The writers (`write`, `pack`, `zeros`) are numpy only.

    Args:
        action_size: number of values in a flattened action, >= 0: `nb_actions` for a continuous
            action, `1` for one discrete action.

    Raises:
        TypeError: if `action_size` is not an integer.
        ValueError: if `action_size` is negative.

    Example:

    >>> layout = TransitionRows(action_size=2)
    >>> rows = layout.pack(action=[[0.5, -1.0], [1.0, 0.0]], reward=[1.0, 2.0], terminal=[False, True])
    >>> rows.shape
    (2, 4)
    >>> layout.reward(rows)
    array([1., 2.], dtype=float32)
    >>> action, reward, terminal = layout.split(tf.constant(rows))  # tensors slice the same way
    """

    dtype = np.float32

    def __init__(self, action_size: int):
        if isinstance(action_size, bool) or not isinstance(action_size, (int, np.integer)):
            raise TypeError(f"`action_size` must be an integer. Received: action_size={action_size!r}")
        if action_size < 0:
            raise ValueError(f"`action_size` must be >= 0. Received: action_size={action_size}")
        self.action_size = int(action_size)

    @classmethod
    def from_width(cls, width: int) -> TransitionRows:
        """The layout of rows `width` columns wide (for rows whose action size is not known otherwise).

        Args:
            width: the number of columns, >= 2.

        Returns:
            `TransitionRows(width - 2)`.

        Raises:
            TypeError: if `width` is not an integer.
            ValueError: if `width < 2`: a row holds at least a reward and a terminal column.
        """
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
            raise TypeError(f"`width` must be an integer. Received: width={width!r}")
        if width < 2:
            raise ValueError(
                f"`width` must be >= 2: a row holds at least a reward and a terminal column. Received: width={width}"
            )
        return cls(int(width) - 2)

    @property
    def width(self) -> int:
        """The number of columns of a row: `action_size + 2`."""
        return self.action_size + 2

    @property
    def reward_column(self) -> int:
        """The index of the reward column: `action_size`."""
        return self.action_size

    @property
    def terminal_column(self) -> int:
        """The index of the terminal column: `action_size + 1`."""
        return self.action_size + 1

    def action(self, rows: Any) -> Any:
        """The flattened actions of `rows`: `rows[..., :action_size]`, `[..., action_size]` (a view for numpy)."""
        return rows[..., : self.action_size]

    def reward(self, rows: Any) -> Any:
        """The rewards of `rows`: `rows[..., action_size]`, `[...]` (a view for numpy)."""
        return rows[..., self.action_size]

    def terminal(self, rows: Any) -> Any:
        """The terminal column of `rows`: `rows[..., action_size + 1]`, `[...]` (a view for numpy)."""
        return rows[..., self.action_size + 1]

    def split(self, rows: Any) -> tuple[Any, Any, Any]:
        """Reads the three fields at once.

        Args:
            rows: rows of this layout, `[..., width]`: a numpy array or a tensor.

        Returns:
            `(action, reward, terminal)`: `[..., action_size]`, `[...]` and `[...]`.
        """
        a = self.action_size
        return rows[..., :a], rows[..., a], rows[..., a + 1]

    def write(self, rows: np.ndarray, action: Any = None, reward: Any = None, terminal: Any = None) -> None:
        """Writes fields into numpy `rows`, in place; a field left `None` keeps its values.

        Values are cast to float32 as numpy assignment casts them (booleans become `1.0` and `0.0`).

        Args:
            rows: float32 rows of this layout, `[..., width]` (a view into a larger array writes
                through to it).
            action: actions, `rows.shape[:-1] + action_shape` for any `action_shape` of
                `action_size` values. Defaults to `None`.
            reward: rewards, broadcastable to `rows.shape[:-1]`. Defaults to `None`.
            terminal: terminal flags or values, broadcastable to `rows.shape[:-1]`. Defaults to `None`.

        Raises:
            ValueError: if `rows` is not `width` wide.
        """
        a, shape = self.action_size, rows.shape
        if shape[-1:] != (a + 2,):
            raise ValueError(f"`rows` must have {a + 2} columns (action_size={a} + 2). Received: rows.shape={shape}")
        if action is not None:
            action, flat_shape = np.asarray(action), shape[:-1] + (a,)
            rows[..., :a] = action if action.shape == flat_shape else action.reshape(flat_shape)
        if reward is not None:
            rows[..., a] = reward
        if terminal is not None:
            rows[..., a + 1] = terminal

    def pack(self, action: Any, reward: Any, terminal: Any) -> np.ndarray:
        """Returns new rows holding `action`, `reward` and `terminal`.

        Args:
            action: actions, `reward.shape + action_shape`.
            reward: rewards; their shape is the shape of the batch (`()` for one row).
            terminal: terminal flags or values, broadcastable to `reward`'s shape.

        Returns:
            A float32 array of shape `reward.shape + (width,)`.
        """
        reward = np.asarray(reward)
        rows = np.empty(reward.shape + (self.width,), dtype=self.dtype)
        self.write(rows, action, reward, terminal)
        return rows

    def zeros(self, size: int) -> np.ndarray:
        """Returns `size` rows of zeros, a float32 array of shape `(size, width)`."""
        return np.zeros((size, self.width), dtype=self.dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransitionRows) and other.action_size == self.action_size

    def __hash__(self) -> int:
        return hash((TransitionRows, self.action_size))

    def __repr__(self) -> str:
        return f"TransitionRows(action_size={self.action_size})"
