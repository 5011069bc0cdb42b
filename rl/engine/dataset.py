"""`GraphDataset`: a replay memory's transitions in TensorFlow variables, sampled inside compiled steps.

Offline training (`OffPolicyAgent.fit_offline`) copies the memory's storage here once, then
draws every batch inside one compiled call with the agent's stateless seed stream, so no batch
crosses from Python to the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from rl.engine.batch import GraphBatch
from rl.memory.rows import TransitionRows

__all__ = ["GraphDataset"]


class GraphDataset:
    """A replay memory's storage in TensorFlow variables, sampled inside compiled functions.

    `load(memory, input_shape)` copies what `memory.sampling_arrays()` returns; reloading data of
    the same shapes only assigns the variables, so the traced functions stay valid. `version`
    changes when the variables are replaced (the functions reading them must then be traced anew).
    """

    def __init__(self) -> None:
        self.version = 0
        self._vars: dict[str, tf.Variable] | None = None
        self._key: tuple | None = None

    def load(self, memory: Any, input_shape: tuple[int, ...]) -> None:
        """Copies `memory`'s transitions into the variables the compiled sampler reads (once per dataset)."""
        arrays = memory.sampling_arrays()
        obs = arrays["observations"]
        store = obs if obs.dtype.kind == "f" else obs.astype(np.float32)
        key = (store.shape, arrays["rows"].shape, memory.window_length, memory.ignore_episode_boundaries, input_shape)
        values = {
            "observations": store,
            "rows": arrays["rows"],
            "episode_step": arrays["episode_step"].astype(np.int64),
            "indices": arrays["indices"],
        }
        if self._vars is not None and key == self._key:
            for name, value in values.items():
                self._vars[name].assign(value)
            return
        self._vars = {
            name: tf.Variable(value, False, name=f"offline_{name}", shape=[None] if name == "indices" else None)
            for name, value in values.items()
        }
        self._key = key
        self.limit = int(store.shape[0])
        self.window_length = int(memory.window_length)
        self.ignore_episode_boundaries = bool(memory.ignore_episode_boundaries)
        self.input_shape = tuple(input_shape)
        self.version += 1

    def sample(self, seed: tf.Tensor, batch_size: int, action_size: int) -> GraphBatch:
        """In the graph: `batch_size` transitions drawn uniformly (with replacement) with `seed`."""
        v = self._vars
        n = tf.shape(v["indices"], out_type=tf.int64)[0]
        zero = tf.constant(0, tf.int64)
        draw = tf.random.stateless_uniform([batch_size], seed, minval=zero, maxval=n, dtype=tf.int64)
        idx = tf.gather(v["indices"], draw)  # [B] slots
        nxt = (idx + 1) % self.limit  # the next observation's slot
        if self.window_length == 1:
            s0, s1 = tf.gather(v["observations"], idx), tf.gather(v["observations"], nxt)  # [B, *obs]
        else:
            step = tf.gather(v["episode_step"], idx)  # [B]
            s0, s1 = self._windows(idx, step), self._windows(idx + 1, step + 1)  # [B, W, *obs]
        shape = (batch_size,) + self.input_shape
        s0, s1 = (tf.reshape(tf.cast(s, tf.float32), shape) for s in (s0, s1))
        rows = tf.gather(v["rows"], idx)  # [B, A + 2]: [action..., reward, terminal]
        return GraphBatch(s0, *TransitionRows(action_size).split(rows), s1)

    def _windows(self, idx: tf.Tensor, episode_step: tf.Tensor) -> tf.Tensor:
        """As `SequentialMemory._windows`: `[B, W, *obs]`, zeros before the episode's start."""
        offsets = tf.range(-(self.window_length - 1), 1, dtype=tf.int64)  # [W]
        positions = (idx[:, None] + offsets[None, :]) % self.limit  # [B, W]
        states = tf.gather(self._vars["observations"], positions)  # [B, W, *obs]
        if self.ignore_episode_boundaries:
            return states
        inside = tf.cast(-offsets[None, :] <= episode_step[:, None], states.dtype)  # [B, W]
        return states * tf.reshape(inside, tf.concat([tf.shape(inside), tf.ones([tf.rank(states) - 2], tf.int32)], 0))
