"""The registry of an agent's compiled functions: traced once per signature, called directly.

Every compiled function of an agent takes one float32 vector (its inputs packed by
`rl.engine.fields.Fields`) and returns one float32 vector. `CompiledFunctions.call` traces the
function the first time a `Signature` is seen, then runs the traced graph directly (see
`direct_mode`), skipping `tf.function`'s Python dispatch, which costs more than a small network's
whole training step. When XLA cannot compile a function and the agent's `jit_compile` was
`"auto"`, it warns once and runs everything without XLA from then on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from rl.engine.xla import accelerator_visible
from rl.util import warn_at_caller

__all__ = ["CompiledFunctions", "Signature", "direct_mode"]

# What a compiled function's first call raises when XLA cannot compile its graph.
_XLA_COMPILE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)


class Signature(NamedTuple):
    """What a traced function is specialised for.

    Attributes:
        name: the function's role, e.g. `"act"` or `"train"`.
        options: the trace-time choices the function was built with (hashable), e.g. which
            networks train in this call.
        size: the number of float32 values in its input vector.
    """

    name: str
    options: Hashable
    size: int


class _Entry(NamedTuple):
    function: Any  # the tf.function (for its trace count)
    run: Callable[[np.ndarray], tf.Tensor]
    xla: bool
    called: list  # [bool]: whether it ran once (XLA compiles at the first call)


class CompiledFunctions:
    """An agent's compiled functions, one per `Signature`.

    Args:
        xla: whether functions that may use XLA are compiled with it.
        fallback: whether an XLA compile failure falls back to plain TensorFlow (with a warning)
            instead of raising. `jit_compile="auto"` asks for it.
    """

    def __init__(self, xla: bool, fallback: bool):
        self.xla = bool(xla)
        self.fallback = bool(fallback)
        self.fell_back = False  # XLA failed to compile a function: it stays off
        self._entries: dict[Signature, _Entry] = {}
        self._retired_traces = 0

    def use_xla(self, xla: bool) -> None:
        """Switches XLA on or off for the functions traced from now on (the traced ones are dropped).

        Nothing changes after a fallback: XLA could not compile this agent's step.
        """
        if bool(xla) != self.xla and not self.fell_back:
            self.xla = bool(xla)
            self.clear()

    @property
    def trace_count(self) -> int:
        """How many times functions were traced (cleared ones included), for retrace checks."""
        return self._retired_traces + sum(e.function.experimental_get_tracing_count() for e in self._entries.values())

    def clear(self) -> None:
        """Forgets every traced function (after the networks, optimizers or input shapes changed)."""
        self._retired_traces = self.trace_count
        self._entries = {}

    def call(
        self,
        signature: Signature,
        build: Callable[[], Callable[[tf.Tensor], tf.Tensor]],
        x: np.ndarray,
        may_use_xla: bool = True,
    ) -> np.ndarray:
        """Runs the function for `signature` on the float32 vector `x`; returns its output as numpy.

        Args:
            signature: what the function is specialised for; `signature.size == x.shape[0]`.
            build: returns the Python function to trace (called only when tracing).
            x: the packed input.
            may_use_xla: whether this function is worth compiling with XLA (acting alone is not).
        """
        entry = self._entries.get(signature)
        if entry is None:
            entry = self._trace(signature, build, may_use_xla and self.xla)
        if entry.called[0]:
            return entry.run(x).numpy()
        try:
            out = entry.run(x).numpy()
        except _XLA_COMPILE_ERRORS as e:
            if not (entry.xla and self.fallback):
                raise
            warn_at_caller(f"XLA could not compile the {signature.name} step ({e}); running without XLA.")
            self.xla = False
            self.fell_back = True
            self.clear()
            return self.call(signature, build, x, may_use_xla)
        entry.called[0] = True
        return out

    def _trace(self, signature: Signature, build: Callable, xla: bool) -> _Entry:
        python_fn = build()
        spec = tf.TensorSpec([signature.size], tf.float32)
        # Traced without AutoGraph first (much faster to trace); a metric with Python control flow
        # on tensors needs it, and then the trace fails with a TypeError and is redone with it.
        function = tf.function(python_fn, jit_compile=xla, autograph=False)
        try:
            concrete = function.get_concrete_function(spec)
        except TypeError:
            function = tf.function(python_fn, jit_compile=xla, autograph=True)
            concrete = function.get_concrete_function(spec)
        entry = _Entry(function, _executor(concrete, direct_mode()), xla, [False])
        self._entries[signature] = entry
        return entry


def _executor(concrete: Any, mode: str) -> Callable[[np.ndarray], tf.Tensor]:
    """Returns `run(x: np.ndarray) -> tf.Tensor` running `concrete` (one float32 input, one output).

    `mode` picks how the traced graph is reached:
    - `"execute"`: the function op is executed by name, with the input built straight from the numpy
      array. This skips every Python layer of `tf.function` (signature binding, cache lookup,
      context managers, attribute building).
    - `"call_flat"`: through `ConcreteFunction._call_flat` (skips signature binding only).
    - `"public"`: the public call.
    The first two rely on TensorFlow internals, so `direct_mode` checks them once per process.
    """
    if mode == "execute":
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import context, core
        from tensorflow.python.framework import ops

        ctx = context.context()
        ctx.ensure_initialized()
        name = concrete._inference_function.name
        name = name.decode() if isinstance(name, bytes) else str(name)
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        captures = list(concrete.captured_inputs)
        execute, tensor, not_ok = pywrap_tfe.TFE_Py_Execute, ops.EagerTensor, core._NotOkStatusException
        float32 = tf.float32.as_datatype_enum
        # Without accelerators the input is built in host memory directly (no device name): ~2 us,
        # against ~11 us through the placement that a device name asks for.
        host_only = not accelerator_visible()

        def run(x: np.ndarray) -> tf.Tensor:
            device = ctx.device_name
            inputs = [tensor(x, None if host_only else device, float32)] + captures
            try:
                return execute(ctx._handle, device, name, inputs, attrs, 1)[0]
            except not_ok as e:
                raise core._status_to_exception(e) from None

        return run
    if mode == "call_flat":
        call_flat, captures = concrete._call_flat, list(concrete.captured_inputs)
        return lambda x: call_flat([tf.constant(x)], captures)
    return lambda x: concrete(tf.constant(x))


def _mode_works(mode: str) -> bool:
    try:
        v = tf.Variable([2.0, 3.0])

        def probe(x):
            v.assign_add(x)
            return v * 2.0 + 1.0

        concrete = tf.function(probe, jit_compile=True).get_concrete_function(tf.TensorSpec([2], tf.float32))
        out = _executor(concrete, mode)(np.array([5.0, 7.0], np.float32)).numpy()
        return bool(np.array_equal(out, [15.0, 21.0]) and np.array_equal(v.numpy(), [7.0, 10.0]))
    except Exception:  # noqa: BLE001 - any failure means: not this mode
        return False


_DIRECT_MODE: str | None = None


def direct_mode() -> str:
    """The fastest way of calling a traced graph that works with this TensorFlow (see `_executor`).

    Checked once per process on a small XLA function that updates a captured variable: each mode
    must return what the public call returns and apply the update exactly once.
    """
    global _DIRECT_MODE
    if _DIRECT_MODE is None:
        _DIRECT_MODE = next((m for m in ("execute", "call_flat") if _mode_works(m)), "public")
    return _DIRECT_MODE
