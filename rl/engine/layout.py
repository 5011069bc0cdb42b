"""Weight layouts: how a network's weights are held while an agent trains it.

Both layouts have one interface, used by the agents' compiled training steps:

- `variables`: what the optimizer updates; `state`: what a target network copies;
- `net(inputs, training)`: runs the network on those weights;
- `soft_update(source, tau)` / `copy_from(source)`: target updates;
- `pull()` / `push()`: copy the Keras model's own weights in / out (no-ops for `VariableWeights`).

`VariableWeights` uses the model's own Keras variables (any model, any optimizer).
`FlatWeights` packs a network's small weight arrays into one flat variable: each variable a
compiled call touches costs a fixed overhead, larger than a small network's whole training step,
so packing removes most of it. The maths is the same; `flat_layout_fits` says where it is exact.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.engine.fused import apply_adam, fused_adam_fits

__all__ = ["FlatWeights", "ParameterWeights", "VariableWeights", "apply_gradients", "flat_layout_fits"]

# Weight arrays at least this large get a variable each in the flat layout: slicing them out of a
# flat vector copies them on every use, which costs more than a variable's own overhead.
PACK_MAX_SIZE = 4096

# Keras optimizers whose update is element-wise: on one flat vector they do exactly what they do
# on the separate weights. `clipnorm` (per variable) is applied per original weight array by
# `apply_gradients`; `clipvalue` is element-wise and `global_clipnorm` spans all arrays anyway.
_ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion", "Ftrl")


def flat_layout_fits(
    models: list[keras.Model],
    optimizers: list[keras.optimizers.Optimizer],
    pairs: list[tuple[keras.Model, keras.Model]] = (),
) -> bool:
    """Whether the flat layout computes exactly what the models' own variables would.

    True when every optimizer is one of Keras' element-wise optimizers without weight-decay
    exclusions, every model's trainable weights are float32, and the two models of each pair (a
    target network and its source, which target updates copy between) split their weights into
    trainable and non-trainable alike (a layer frozen after its target was cloned does not).
    Non-trainable weights (batch normalisation's statistics, a dropout's seed, a frozen layer's
    weights) stay the model's own variables, updated by the training step as a plain call would
    update them.
    """
    for optimizer in optimizers:
        cls = type(optimizer)
        if not (cls.__module__.startswith("keras.") and cls.__name__ in _ELEMENTWISE_OPTIMIZERS):
            return False
        if getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
            optimizer, "_exclude_from_weight_decay_pattern", None
        ):
            return False
    for a, b in pairs:
        for part in ("trainable_variables", "non_trainable_variables"):
            if [tuple(v.shape) for v in getattr(a, part)] != [tuple(v.shape) for v in getattr(b, part)]:
                return False
    return all(all(v.dtype == "float32" for v in m.trainable_variables) for m in models)


class VariableWeights:
    """A network used through its own Keras variables."""

    def __init__(self, model: keras.Model):
        self.model = model

    @property
    def variables(self) -> list:
        """The variables gradients are applied to."""
        return self.model.trainable_variables

    @property
    def state(self) -> list:
        """Every variable that defines the network (what target updates and checkpoints copy)."""
        return self.model.weights

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        return self.model(inputs, training=training)

    def soft_update(self, source: VariableWeights, tau: float) -> None:
        """`self <- (1 - tau) * self + tau * source`, variable by variable (target networks)."""
        for t, s in zip(self.state, source.state):
            t.assign(t * (1.0 - tau) + s * tau)

    def copy_from(self, source: VariableWeights) -> None:
        """Copies `source`'s state into this one (a hard target update)."""
        for t, s in zip(self.state, source.state):
            t.assign(s)

    def clip_by_norm(self, grads: list[tf.Tensor], clipnorm: float) -> list[tf.Tensor]:
        """Clips each original weight array's gradient to norm `clipnorm`, as Keras' `clipnorm` does."""
        return [_clip_by_norm(g, clipnorm) for g in grads]

    def pull(self) -> None:
        """Nothing to do: the model's variables are the state."""

    def push(self) -> None:
        """Nothing to do: the model's variables are the state."""

    def pull_in_graph(self) -> None:
        """In a compiled function: what `pull` does (nothing here)."""

    def push_in_graph(self) -> None:
        """In a compiled function: what `push` does (nothing here)."""


class ParameterWeights(VariableWeights):
    """A single trained variable that is not a network (e.g. SAC's log entropy coefficient)."""

    def __init__(self, variable: keras.Variable):
        self.model = None
        self.variable = variable

    @property
    def variables(self) -> list:
        """The one trained variable."""
        return [self.variable]

    @property
    def state(self) -> list:
        """The one trained variable, which is all a target copy of it needs."""
        return [self.variable]

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        return self.variable.value


class FlatWeights(VariableWeights):
    """A network trained through variables of its own, its small weight arrays packed into one.

    Arrays of `PACK_MAX_SIZE` elements or more get a variable each. The model's own trainable
    variables are refreshed by `push` and read back by `pull`. Its non-trainable variables (for
    example batch normalisation's moving statistics) are used as they are: a training-mode call
    writes their new values back to them, as calling the model itself does.
    """

    def __init__(self, model: keras.Model, name: str):
        super().__init__(model)
        weights = list(model.trainable_variables)
        self.shapes = [tuple(v.shape) for v in weights]
        self.packed = [i for i, s in enumerate(self.shapes) if math.prod(s) < PACK_MAX_SIZE]
        self.unpacked = [i for i in range(len(weights)) if i not in self.packed]
        self.sizes = [math.prod(self.shapes[i]) for i in self.packed]
        self.flat = (
            keras.Variable(np.zeros(sum(self.sizes), np.float32), name=name, dtype="float32") if self.packed else None
        )
        self.own = [
            keras.Variable(np.zeros(self.shapes[i], np.float32), name=f"{name}_{i}", dtype="float32")
            for i in self.unpacked
        ]

    @property
    def variables(self) -> list:
        """The packed variable (if any small arrays) and the large arrays' own variables."""
        return ([self.flat] if self.flat is not None else []) + self.own

    @property
    def state(self) -> list:
        """`variables`, then the model's non-trainable variables: what defines the network while training."""
        return self.variables + list(self.model.non_trainable_variables)

    def _values(self) -> list[tf.Tensor]:
        values: list[Any] = [None] * len(self.shapes)
        if self.flat is not None:
            for i, part in zip(self.packed, tf.split(self.flat.value, self.sizes)):
                values[i] = tf.reshape(part, self.shapes[i])
        for i, v in zip(self.unpacked, self.own):
            values[i] = v.value
        return values

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        own = self.model.non_trainable_variables
        given = [v.value for v in own]
        outputs, updated = self.model.stateless_call(self._values(), given, inputs, training=training)
        # What the layers' own assignments would have written; a value no layer assigned comes back
        # as the tensor given (a frozen layer's weights, every value in inference) and is not written.
        for variable, before, after in zip(own, given, updated):
            if after is not before:
                variable.assign(after)
        return outputs

    def clip_by_norm(self, grads: list[tf.Tensor], clipnorm: float) -> list[tf.Tensor]:
        out = []
        if self.flat is not None:
            # Every packed array's norm at once (one segment sum), each array scaled by its own factor.
            segments = tf.constant(np.repeat(np.arange(len(self.sizes), dtype=np.int32), self.sizes))
            l2sum = tf.math.unsorted_segment_sum(tf.square(grads[0]), segments, len(self.sizes))  # [arrays]
            out.append(grads[0] * tf.gather(_clip_factor(l2sum, clipnorm), segments))
            grads = grads[1:]
        return out + [_clip_by_norm(g, clipnorm) for g in grads]

    def pull_in_graph(self) -> None:
        """In a compiled function: the training variables from the model's own (as `pull`)."""
        weights = self.model.trainable_variables
        if self.flat is not None:
            self.flat.assign(tf.concat([tf.reshape(weights[i].value, [-1]) for i in self.packed], 0))
        for i, v in zip(self.unpacked, self.own):
            v.assign(weights[i].value)

    def push_in_graph(self) -> None:
        """In a compiled function: the model's own variables from the training ones (as `push`)."""
        weights = self.model.trainable_variables
        for i, value in enumerate(self._values()):
            weights[i].assign(value)

    def pull(self) -> None:
        weights = self.model.trainable_variables
        if self.flat is not None:
            self.flat.assign(np.concatenate([np.ravel(weights[i].numpy()) for i in self.packed]))
        for i, v in zip(self.unpacked, self.own):
            v.assign(weights[i].numpy())

    def push(self) -> None:
        weights = self.model.trainable_variables
        if self.flat is not None:
            values = np.split(self.flat.numpy(), np.cumsum(self.sizes)[:-1])
            for i, x in zip(self.packed, values):
                weights[i].assign(x.reshape(self.shapes[i]))
        for i, v in zip(self.unpacked, self.own):
            weights[i].assign(v.numpy())


def _clip_factor(l2sum: tf.Tensor, clipnorm: float) -> tf.Tensor:
    # Keras' formula (BaseOptimizer._clip_by_norm): g * c / max(||g||, c), with ||0|| = 0.
    l2norm = tf.where(l2sum > 0, tf.sqrt(tf.where(l2sum > 0, l2sum, 1.0)), l2sum)
    return clipnorm / tf.maximum(l2norm, clipnorm)


def _clip_by_norm(g: tf.Tensor, clipnorm: float) -> tf.Tensor:
    return g * _clip_factor(tf.reduce_sum(tf.square(g)), clipnorm)


def apply_gradients(
    optimizer: keras.optimizers.Optimizer, loss_grads: list[tf.Tensor], weights: list[VariableWeights]
) -> None:
    """Applies gradients (ordered as the `variables` of `weights`, one after another) with `optimizer`.

    An optimizer's `clipnorm` clips each original weight array on its own, also where the flat
    layout packs several arrays into one variable: the clipping is done here, per array, and the
    optimizer applies the clipped gradients as they are. Keras' plain `Adam` is applied by
    TensorFlow's one-kernel Adam update (`rl.engine.fused`): the same formulas, fewer operations.
    """
    variables = [v for w in weights for v in w.variables]
    clipnorm = getattr(optimizer, "clipnorm", None)
    grads = list(loss_grads)
    if clipnorm:
        grads, k = [], 0
        for w in weights:
            n = len(w.variables)
            grads += w.clip_by_norm(loss_grads[k : k + n], clipnorm)
            k += n
    if fused_adam_fits(optimizer, variables):
        apply_adam(optimizer, grads, variables)
        return
    if not clipnorm:
        optimizer.apply(grads, variables)
        return
    optimizer.clipnorm = None  # at trace time: the graph keeps the clipping done above
    try:
        optimizer.apply(grads, variables)
    finally:
        optimizer.clipnorm = clipnorm
