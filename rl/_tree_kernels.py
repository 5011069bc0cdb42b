"""Compiled loops for `rl.memory.SumTree`, used when numba is installed (`pip install -e ".[numba]"`).

Each kernel does, element by element and in the same order, the floating-point operations of the
numpy code it replaces, so that both give the same bits: a memory saved by one loads and samples
the same in the other.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["find", "set_leaves", "set_running_sums"]

_jit = numba.njit(cache=True, nogil=True)


@_jit
def set_running_sums(level: np.ndarray, sums: np.ndarray, start: int) -> None:
    """`sums[i + 1] = sums[i] + level[i]` for `i >= start` (numpy's cumsum, from `start` on)."""
    acc = sums[start]
    for i in range(start, level.shape[0]):
        acc += level[i]
        sums[i + 1] = acc


@_jit
def set_leaves(nodes: np.ndarray, indices: np.ndarray, values: np.ndarray, capacity: int, levels: int) -> int:
    """Writes the leaves, then recomputes the `levels` ancestors of each; returns the first top node changed."""
    for i in range(indices.shape[0]):
        nodes[indices[i] + capacity] = values[i]
    first_changed = capacity
    for i in range(indices.shape[0]):
        pos = indices[i] + capacity
        for _ in range(levels):
            pos >>= 1
            nodes[pos] = nodes[2 * pos] + nodes[2 * pos + 1]
        first_changed = min(first_changed, pos)
    return first_changed


@_jit
def find(
    nodes: np.ndarray, sums: np.ndarray, prefix: np.ndarray, top: int, levels: int, capacity: int, size: int
) -> np.ndarray:
    """The leaf of each prefix sum: a binary search over the running sums, then `levels` levels down.

    Level by level over the whole batch, as the numpy code goes: the batch's reads of one level are
    independent of each other, so the processor overlaps their cache misses.
    """
    first = 1 << top
    n = prefix.shape[0]
    pos = np.empty(n, dtype=np.int64)
    rest = np.empty(n, dtype=np.float64)
    for i in range(n):
        u = prefix[i]
        j = 0  # how many of sums[1 : first + 1] are <= u (numpy's searchsorted, side="right")
        step = first >> 1
        while step:
            j += step * (sums[j + step] <= u)
            step >>= 1
        j += sums[j + 1] <= u
        j = min(j, first - 1)
        rest[i] = u - sums[j]
        pos[i] = j + first
    for _ in range(levels):
        for i in range(n):
            p = pos[i] << 1
            left = nodes[p]
            right = rest[i] >= left
            rest[i] -= left * right
            pos[i] = p + right
    for i in range(n):
        pos[i] = min(pos[i] - capacity, size - 1)
    return pos
