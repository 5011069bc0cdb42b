"""keras-rl's processors: `MultiInputProcessor` for multi-input networks, `WhiteningNormalizerProcessor`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rl.core import Processor
from rl.util import WhiteningNormalizer, check_int, check_number

__all__ = ["MultiInputProcessor", "WhiteningNormalizerProcessor"]


class MultiInputProcessor(Processor):
    """Feeds observations made of several arrays to a network with one input per array.

    An environment may return a list (or tuple) of arrays at each step, `[camera, joints]`, or a
    dict of them, `{"camera": ..., "joints": ...}`; the network then has one input per part, each
    taking a batch of windows `(B, window_length) + part_shape`. This processor packs each
    observation into one flat vector (`process_observation`), which the replay memory and the
    observation window store like any array, and splits batches of states back into one batch per
    input (`process_state_batch`). Parts come in list order, or in the dict's key order of the
    first observation; the network's inputs must be in that order.

    `process_state_batch` also accepts keras-rl's unpacked form, a batch of windows of
    observations that are each a list of `nb_inputs` arrays.

    Args:
        nb_inputs: the number of parts in an observation (the network's observation inputs), >= 1.

    Raises:
        TypeError, ValueError: if `nb_inputs` is not a positive integer.

    Example:

    ```python
    processor = MultiInputProcessor(nb_inputs=2)
    flat = processor.process_observation([np.zeros(3), np.ones(4)])  # shape (7,)
    parts = processor.process_state_batch(flat[None, None])  # [(1, 1, 3), (1, 1, 4)]
    ```
    """

    def __init__(self, nb_inputs: int):
        self.nb_inputs = check_int("nb_inputs", nb_inputs, minimum=1)
        self.keys: list | None = None  # the dict keys, in input order (dict observations only)
        self.shapes: list[tuple[int, ...]] | None = None  # the shape of each part
        self._sizes: list[int] = []

    def _parts(self, observation: Any) -> list[np.ndarray]:
        if isinstance(observation, Mapping):
            if self.keys is None:
                self.keys = list(observation)
            if len(observation) != self.nb_inputs or set(observation) != set(self.keys):
                raise ValueError(
                    f"Each observation must be a dict with the {self.nb_inputs} keys {self.keys}. "
                    f"Received: observation with keys {list(observation)}"
                )
            return [np.asarray(observation[k]) for k in self.keys]
        if isinstance(observation, (list, tuple)):
            if len(observation) != self.nb_inputs:
                raise ValueError(
                    f"Each observation must be a list of nb_inputs={self.nb_inputs} arrays. "
                    f"Received: an observation of {len(observation)} parts"
                )
            return [np.asarray(part) for part in observation]
        raise TypeError(
            "MultiInputProcessor takes observations that are a list, tuple or dict of arrays. "
            f"Received: observation of type {type(observation).__name__}"
        )

    def process_observation(self, observation: Any) -> np.ndarray:
        """Packs a list, tuple or dict of arrays into one flat vector (the parts one after another).

        Args:
            observation: `nb_inputs` arrays, in a list, tuple or dict.

        Returns:
            A 1-D array of all the parts' values, of their common dtype.

        Raises:
            TypeError: if `observation` is not a list, tuple or dict.
            ValueError: if it has the wrong number of parts, or a part's shape differs from the
                first observation's.
        """
        parts = self._parts(observation)
        shapes = [p.shape for p in parts]
        if self.shapes is None:
            self.shapes = shapes
            self._sizes = [int(np.prod(s)) for s in shapes]
        elif shapes != self.shapes:
            raise ValueError(
                f"The parts of each observation must keep the shapes of the first one, {self.shapes}. "
                f"Received: parts of shapes {shapes}"
            )
        dtype = np.result_type(*parts)
        if dtype.kind == "b":
            dtype = np.dtype(np.uint8)
        return np.concatenate([p.reshape(-1) for p in parts]).astype(dtype, copy=False)

    def process_state_batch(self, batch: Any) -> list[np.ndarray]:
        """Splits a batch of states into one batch per network input.

        Args:
            batch: packed states `(B, window_length, total_size)` made of `process_observation`'s
                vectors, or keras-rl's nested form (a batch of windows of lists of arrays).

        Returns:
            A list of `nb_inputs` arrays, the `i`-th of shape `(B, window_length) + shape_i`.

        Raises:
            ValueError: if `batch` fits neither form.
        """
        if isinstance(batch, np.ndarray) and batch.dtype != object:
            if self.shapes is None:
                raise ValueError(
                    "MultiInputProcessor.process_state_batch got packed states before any observation was "
                    "packed by process_observation, so the parts' shapes are unknown. "
                    f"Received: batch of shape {batch.shape}"
                )
            total = sum(self._sizes)
            if batch.ndim < 2 or batch.shape[-1] != total:
                raise ValueError(
                    f"Packed states must have shape (batch, window_length, {total}). "
                    f"Received: batch.shape={batch.shape}"
                )
            lead = batch.shape[:-1]
            splits = np.cumsum(self._sizes)[:-1]
            return [p.reshape(lead + s) for p, s in zip(np.split(batch, splits, axis=-1), self.shapes)]
        # keras-rl's form: batch[b][w] is one observation, a list of nb_inputs arrays.
        per_input: list[list] = [[] for _ in range(self.nb_inputs)]
        for state in batch:
            windows: list[list] = [[] for _ in range(self.nb_inputs)]
            for observation in state:
                for k, part in enumerate(self._parts(observation)):
                    windows[k].append(part)
            for k in range(self.nb_inputs):
                per_input[k].append(windows[k])
        return [np.asarray(x) for x in per_input]

    def export_state_batch(self, batch: Any) -> list[Any]:
        """In the graph, for `Agent.export`: packed states `(B, window_length, total_size)` split into
        one tensor per network input, as `process_state_batch` splits arrays.

        Raises:
            ValueError: if no observation was packed yet (the parts' shapes are unknown).
        """
        import tensorflow as tf

        if self.shapes is None:
            raise ValueError(
                "MultiInputProcessor cannot be exported before it has packed an observation: the parts' shapes are "
                "unknown. Received: shapes=None"
            )
        lead = tf.shape(batch)[:-1]
        parts = tf.split(batch, self._sizes, axis=-1)
        return [tf.reshape(p, tf.concat([lead, tf.constant(s, tf.int32)], 0)) for p, s in zip(parts, self.shapes)]

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {"nb_inputs": self.nb_inputs}


class WhiteningNormalizerProcessor(Processor):
    """Whitens observations: `(x - mean) / std` per dimension, with running statistics.

    The statistics are updated from every observation the episode loop passes through
    `process_observation` (each real observation counted once; no batch is counted twice), and
    every batch of states the networks see is whitened with the current statistics in
    `process_state_batch`, replayed batches included. The memory keeps raw observations. Before
    the first observation nothing changes (`mean` 0, `std` 1). The statistics are part of the
    agent's checkpoints (`get_state` / `set_state`); with `save_weights` alone, keep them yourself.

    keras-rl's processor updated its statistics from each batch it whitened, replayed batches
    included, per window position; this one counts observations, per observation dimension.

    Args:
        eps: the smallest standard deviation, > 0 (constant dimensions are divided by it).
            Defaults to `1e-2`.
        update: whether observations update the statistics; set `processor.update = False` to
            freeze them (for example before `test`). Defaults to `True`.

    Raises:
        TypeError, ValueError: if `eps` is not a positive number.

    Example:

    ```python
    processor = WhiteningNormalizerProcessor()
    for obs in ([0.0, 10.0], [2.0, 30.0]):
        processor.process_observation(np.array(obs))
    processor.process_state_batch(np.array([[[1.0, 20.0]]]))  # [[[0.0, 0.0]]]
    ```
    """

    def __init__(self, eps: float = 1e-2, update: bool = True):
        self.eps = check_number("eps", eps, low=0.0, low_inclusive=False)
        self.update = bool(update)
        self.normalizer: WhiteningNormalizer | None = None  # created by the first observation

    def process_observation(self, observation: Any) -> Any:
        """Adds `observation` to the statistics (while `update`) and returns it unchanged.

        Raises:
            TypeError: if `observation` is not a numeric array (use a Processor that makes one first).
            ValueError: if its shape differs from the first observation's.
        """
        if not self.update:
            return observation
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biuf":
            raise TypeError(
                "WhiteningNormalizerProcessor whitens numeric arrays. "
                f"Received: observation of type {type(observation).__name__} ({observation!r:.100})"
            )
        if self.normalizer is None:
            self.normalizer = WhiteningNormalizer(obs.shape, eps=self.eps)
        elif obs.shape != self.normalizer.shape:
            raise ValueError(
                f"Observations must keep the shape of the first one, {self.normalizer.shape}. "
                f"Received: observation.shape={obs.shape}"
            )
        self.normalizer.update(obs)
        return observation

    def process_state_batch(self, batch: Any) -> np.ndarray:
        """Returns the batch of states whitened with the current statistics, as float32.

        Args:
            batch: states `(B, window_length) + obs_shape`.

        Returns:
            `(batch - mean) / std`, float32, of the same shape.
        """
        batch = np.asarray(batch)
        if self.normalizer is None:
            return batch.astype(np.float32, copy=False)
        return self.normalizer.normalize(batch).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        """Returns the statistics as JSON-compatible values (saved in the agent's checkpoints)."""
        if self.normalizer is None:
            return {"shape": None}
        return {"shape": list(self.normalizer.shape), **self.normalizer.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned.

        Raises:
            ValueError: if `state` is not such a state.
        """
        if not isinstance(state, dict) or "shape" not in state:
            raise ValueError(f"Not a WhiteningNormalizerProcessor state. Received: state={state!r:.200}")
        if state["shape"] is None:
            self.normalizer = None
            return
        shape = state["shape"]
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise ValueError(f"The state's `shape` must be a list of sizes. Received: shape={shape!r}")
        normalizer = WhiteningNormalizer(tuple(shape), eps=self.eps)
        normalizer.set_state(state)
        self.normalizer = normalizer

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {"eps": self.eps, "update": self.update}
