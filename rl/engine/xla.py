"""The one rule behind `jit_compile="auto"`: when to compile an agent's training step with XLA."""

from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import tensorflow as tf

__all__ = ["XLA_MAX_WEIGHTS", "XLA_MIN_STEPS", "accelerator_visible", "resolve_jit_compile", "xla_pays"]

XLA_MIN_STEPS = 10_000
"""With `jit_compile="auto"` on a CPU, training runs that end at this many steps or more compile
their step with XLA (when the networks are small: see `XLA_MAX_WEIGHTS`)."""

XLA_MAX_WEIGHTS = 4096
"""Networks count as small for `jit_compile="auto"` when no trainable weight array has this many values."""


def accelerator_visible() -> bool:
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def xla_pays(models: Iterable[keras.Model], end_step: int) -> bool:
    """What `jit_compile="auto"` picks for a training run of `models` that ends at step `end_step`.

    XLA where TensorFlow sees a GPU or TPU. On CPUs, XLA for small networks (every trainable
    weight array under `XLA_MAX_WEIGHTS` values) when training reaches `XLA_MIN_STEPS` steps:
    fusing their many small operations repays the seconds of compiling; larger networks run
    faster on TensorFlow's own kernels. The measurements behind it are on the benchmarks page.
    """
    if accelerator_visible():
        return True
    small = all(math.prod(w.shape) < XLA_MAX_WEIGHTS for m in models for w in m.trainable_weights)
    return small and end_step >= XLA_MIN_STEPS


def resolve_jit_compile(jit_compile: bool | str, models: Iterable[keras.Model], end_step: int = 0) -> bool:
    """Checks a `jit_compile` argument and returns whether XLA is used for a run ending at `end_step`."""
    if isinstance(jit_compile, bool):
        return jit_compile
    if jit_compile == "auto":
        return xla_pays(models, end_step)
    raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
