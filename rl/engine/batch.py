"""The types a training step works with, below every agent: `GraphBatch`, `UpdateStep`, `TrainOptions`.

Agents (`rl.agents.*`), the offline sampler (`rl.engine.dataset`) and the loops (`rl.loops`)
import them from here, so none of them imports another's module for its types.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

__all__ = ["GraphBatch", "TrainOptions", "UpdateStep"]


class GraphBatch(NamedTuple):
    """One gradient step's batch inside the graph.

    Attributes:
        state0: `s_t` as the networks take it (a tensor, or a list for multi-input models), `[B, ...]`.
        action: `a_t`, `[B, A]`.
        reward: `r_t`, `[B]`.
        terminal: `1.0` where `s_{t+1}` is terminal (no bootstrap), `[B]`. With an n-step memory
            (`n_step > 1`), `reward` is the discounted n-step return and `terminal` holds
            `1 - gamma^(k-1) * (1 - terminal)` for a transition of `k` steps, so that
            `gamma * (1 - terminal)` is its bootstrap discount `gamma^k`.
        state1: `s_{t+1}` (`s_{t+k}` with n-step returns), as `state0`.
        weight: the importance-sampling weights `[B]` of a prioritized memory, or `None` (every
            transition weighs the same). Losses average with `OffPolicyAgent.weighted_mean`.
    """

    state0: Any
    action: tf.Tensor
    reward: tf.Tensor
    terminal: tf.Tensor
    state1: Any
    weight: Any = None


class UpdateStep(NamedTuple):
    """Trace-time facts about one gradient step.

    Attributes:
        groups: the optimizer groups past their warm-up (those the step may train).
        index: the update's number modulo the agent's `update_cycle` (e.g. TD3's policy delay).
    """

    groups: frozenset
    index: int

    def trains(self, group: str) -> bool:
        """Whether this step may train optimizer group `group` (it is past its warm-up)."""
        return group in self.groups


class TrainOptions(NamedTuple):
    """What one compiled training call does; part of the call's signature (traced once per value).

    Attributes:
        groups: optimizer groups trained by this call (empty: only a hard target copy).
        first_index: the first update's number modulo `update_cycle`.
        hard_update: copy the target networks after the updates.
        updates: gradient steps of this call; `None`: the agent's `gradient_steps`.
    """

    groups: frozenset
    first_index: int
    hard_update: bool
    updates: int | None = None
