"""Prioritized experience replay: `SumTree`, and `PrioritizedMemory` on top of `SequentialMemory`."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from rl.memory import sequential
from rl.memory import state as saved
from rl.memory.sequential import SequentialMemory
from rl.util import check_int, check_number

__all__ = ["PrioritizedMemory", "SumTree"]

# The smallest positive normal float32: the floor of the importance-sampling weights.
_MIN_WEIGHT = float(np.finfo(np.float32).tiny)


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
                'SumTree(compiled=True) needs numba: pip install -e ".[numba]". '
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

    With numba installed (`pip install -e ".[numba]"`), batches run in compiled loops (for
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

    Every finite TD error keeps the tree finite: a leaf `p_i^alpha` is clipped to
    `priority_cap`, the largest float64 over `2 * limit` (about `9e307 / limit`), so that the
    sum of all leaves stays finite, and an importance weight too small for float32 is floored
    at float32's smallest normal value (about `1.2e-38`), so that a drawn transition never
    weighs exactly `0`. Both limits lie far beyond ordinary TD errors, whose priorities and
    weights they leave unchanged.

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
    def priority_cap(self) -> float:
        """The largest value of a leaf of the tree, the largest float64 over `2 * limit`.

        A transition's leaf is `p_i^alpha` clipped to this cap, so that the sum of `limit` leaves
        (the tree's total) stays finite in float64 for every finite TD error.
        """
        return float(np.finfo(np.float64).max) / (2 * self.limit)

    def _leaf_of_max_priority(self) -> float:
        """The leaf of a new transition: `max_priority^alpha`, clipped to `priority_cap`."""
        try:
            value = self.max_priority**self.alpha
        except OverflowError:  # Python floats raise where numpy would give inf
            return self.priority_cap
        return min(value, self.priority_cap)

    @property
    def priorities(self) -> np.ndarray:
        """Each slot's priority `p_i` (`0` for slots that start no transition), `[limit]` (a copy).

        A priority whose `p_i^alpha` was clipped to `priority_cap` reads as `priority_cap^(1 / alpha)`.
        """
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
        self.tree.set_one((self._pending - 1) % self.limit, self._leaf_of_max_priority())

    def _sync_tree(self) -> None:
        """Gives every stored transition without a priority the maximum one (memories built from data)."""
        leaves = self.tree.leaves
        missing = self._valid & (leaves == 0)
        if missing.any():
            leaves[missing] = self._leaf_of_max_priority()
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
        for _ in range(sequential._DRAW_ROUNDS):  # read from its module, where a test may change it
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
        beta = self.current_beta
        with np.errstate(over="ignore"):
            ratio = p * (1.0 / low)
            weights = ratio**-beta
        huge = ratio == np.inf
        if huge.any():  # the ratio overflows float64: the same weight from logarithms
            weights[huge] = np.exp(-beta * (np.log(p[huge]) - np.log(low)))
        weights = weights.astype(np.float32)
        self.last_weights = np.maximum(weights, _MIN_WEIGHT, out=weights)  # never 0 (see the class docstring)
        self.last_indices = idx
        self.nb_batches += 1

    def update_priorities(self, indices: Any, td_errors: Any) -> None:
        """Sets the priorities of sampled transitions to `|td_errors| + epsilon`.

        Slots that no longer start a transition (overwritten since the draw) are left alone. A
        leaf `(|td_error| + epsilon)^alpha` larger than `priority_cap` is clipped to it, so
        that the tree's total stays finite for every finite TD error (`max_priority` keeps the
        unclipped value).

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
        with np.errstate(over="ignore"):  # a leaf that overflows to inf is clipped to the cap
            leaves = p**self.alpha
        self.tree.set(idx, np.minimum(leaves, self.priority_cap, out=leaves))

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
        return {**super()._state_arrays(), **saved.priority_arrays(self)}

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, as `SequentialMemory.read_state`, with the priorities.

        A file saved by a `SequentialMemory` is accepted: its transitions get the maximum priority.

        Raises:
            ValueError: naming the file and the field, if anything is missing or wrong.
        """
        state = super().read_state(filepath)
        return {**state, **saved.read_priority_state(filepath, self.limit, state["valid"])}

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the contents, sampling state and priorities with `state`, as `read_state` returned it."""
        super().set_state(state)
        self.tree.leaves[:] = np.minimum(state["priority_leaves"], self.priority_cap)  # files of earlier versions
        self.tree.rebuild()
        self.max_priority, self.nb_batches = state["priority_state"]
