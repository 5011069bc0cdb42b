"""The one rule behind `jit_compile="auto"`: when to compile an agent's training step with XLA."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import keras
import tensorflow as tf

__all__ = ["XLA_MIN_WEIGHTS", "accelerator_visible", "intra_op_threads", "resolve_jit_compile", "xla_pays"]

# Networks whose largest trainable weight array has at least this many values count as large.
XLA_MIN_WEIGHTS = 4096


def accelerator_visible() -> bool:
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def intra_op_threads() -> int:
    """Threads TensorFlow may split one op over: its setting, else `TF_NUM_INTRAOP_THREADS`, else the cores."""
    n = tf.config.threading.get_intra_op_parallelism_threads()
    if n <= 0:
        try:
            n = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
        except ValueError:
            n = 0
    if n <= 0:  # TensorFlow's default: one per core it may use
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return n


def xla_pays(models: Iterable[keras.Model]) -> bool:
    """What `jit_compile="auto"` picks.

    XLA where TensorFlow sees a GPU or TPU; on CPUs, XLA for large networks (a trainable weight
    array of `XLA_MIN_WEIGHTS` values or more) while TensorFlow may split an op over several
    threads, and plain TensorFlow otherwise. The measurements behind it are on the benchmarks page.
    """
    if accelerator_visible():
        return True
    large = any(math.prod(w.shape) >= XLA_MIN_WEIGHTS for m in models for w in m.trainable_weights)
    return large and intra_op_threads() > 1


def resolve_jit_compile(jit_compile: bool | str, models: Iterable[keras.Model]) -> bool:
    """Checks a `jit_compile` argument and returns whether XLA is used."""
    if isinstance(jit_compile, bool):
        return jit_compile
    if jit_compile == "auto":
        return xla_pays(models)
    raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
