"""The one rule behind `jit_compile="auto"`: when to compile an agent's training step with XLA."""

from __future__ import annotations

import os
from collections.abc import Iterable

import keras
import tensorflow as tf

__all__ = ["XLA_MIN_STEPS", "accelerator_visible", "intra_op_threads", "resolve_jit_compile", "xla_pays"]

# On CPUs, training runs that end at this many steps or more compile their step with XLA.
XLA_MIN_STEPS = 10_000


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


def xla_pays(models: Iterable[keras.Model], end_step: int) -> bool:
    """What `jit_compile="auto"` picks for a training run that ends at step `end_step`.

    XLA where TensorFlow sees a GPU or TPU, and on CPUs when the agent's training reaches
    `XLA_MIN_STEPS` steps: compiling takes seconds, which XLA's cheaper step repays over a few
    thousand steps. The measurements behind it are on the benchmarks page.
    """
    return accelerator_visible() or end_step >= XLA_MIN_STEPS


def resolve_jit_compile(jit_compile: bool | str, models: Iterable[keras.Model], end_step: int = 0) -> bool:
    """Checks a `jit_compile` argument and returns whether XLA is used for a run ending at `end_step`."""
    if isinstance(jit_compile, bool):
        return jit_compile
    if jit_compile == "auto":
        return xla_pays(models, end_step)
    raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
