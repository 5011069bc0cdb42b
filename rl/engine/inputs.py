"""The acting half every agent shares: states into network inputs, packed into one compiled call.

An agent acts on a *state*: the last `window_length` observations, `[B, W, *obs]`, which a
`Processor` may turn into the networks' inputs (`process_state_batch`). This module:

- `process_states(processor, states)`: the state batch as a list of arrays, one per input;
- `fit_state_shapes(...)`: checks the first state of a run against a network's inputs and returns
  the model-side shape of each input (the window axis dropped for plain `obs_shape` inputs when
  `window_length == 1`), with errors that name the network and the shapes;
- `state_fields(shapes, n)`, `pack_states(parts)`, `model_input(states)`: the acting call's packed
  input (`rl.engine.fields.Fields`) and its unpacking in the graph.

Used by the off-policy agents, SARSA, CEM and `rl.distributed.ActingPolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rl.engine.fields import Fields

__all__ = [
    "acting_fields",
    "export_states",
    "fit_state_shapes",
    "fits",
    "model_input",
    "pack_states",
    "process_states",
    "state_fields",
]


def process_states(processor: Any, states: np.ndarray) -> list[np.ndarray]:
    """`states` `[B, W, *obs]` through `processor.process_state_batch` (if any), as a list of arrays.

    Args:
        processor: an `rl.core.Processor`, or `None`.
        states: a batch of states.

    Returns:
        One array per network input, `[B, ...]` each.
    """
    if processor is not None:
        states = processor.process_state_batch(states)
    if isinstance(states, (list, tuple)):
        return [np.asarray(s) for s in states]
    return [np.asarray(states)]


def fits(got: tuple, want: tuple) -> bool:
    """Whether shape `got` fits a Keras input shape `want` (where `None` takes any size)."""
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got, want))


def fit_state_shapes(
    parts: Sequence[np.ndarray],
    inputs: Sequence[Any],
    *,
    obs_shape: tuple,
    window_length: int,
    drop_window: bool,
    network: str = "model",
    received: str = "observation",
) -> list[tuple]:
    """The model-side shape of each input for a processed state `parts` (a batch of one or more).

    Args:
        parts: the processed state, one array `[B, ...]` per input.
        inputs: the network's Keras inputs (`model.inputs`).
        obs_shape: the observation's shape, for messages.
        window_length: the number of observations per state.
        drop_window: whether a part `[B, 1, *obs]` may feed an input of shape `obs` (plain
            observation inputs with `window_length == 1`).
        network: the network's name in messages. Defaults to `"model"`.
        received: what the caller received, for messages. Defaults to `"observation"`.

    Returns:
        One shape per input, without the batch axis.

    Raises:
        ValueError: if the state gives another number of inputs than the network has, or a part
            does not fit its input.
    """
    if len(parts) != len(inputs):
        raise ValueError(
            f"The {network} has {len(inputs)} observation input(s) but the (processed) state gives {len(parts)}. "
            f"Use a Processor whose process_state_batch returns one array per input. Received: {received}={obs_shape}"
        )
    shapes = []
    for part, model_in in zip(parts, inputs):
        want, got = tuple(model_in.shape[1:]), tuple(part.shape[1:])
        if fits(got, want):
            shapes.append(got)
        elif drop_window and fits(got[1:], want):
            shapes.append(got[1:])  # plain obs_shape inputs when window_length == 1
        else:
            raise ValueError(
                f"Observations of shape {obs_shape} with window_length={window_length} give states of shape {got}, "
                f"which does not fit the {network}'s input shape {tuple(model_in.shape)}. "
                f"Received: {received}={obs_shape}"
            )
    return shapes


def export_states(processor: Any, states: Any) -> list[Any]:
    """In the graph, for an export: the processor's `export_state_batch` of `states`, as a list.

    Raises:
        ValueError: naming the processor, if it batches states in Python only.
    """
    if processor is not None:
        try:
            states = processor.export_state_batch(states)
        except NotImplementedError:
            name = type(processor).__name__
            raise ValueError(
                f"{name}.process_state_batch runs in Python: implement {name}.export_state_batch(batch) with "
                "TensorFlow ops to export the policy (see rl.core.Processor.export_state_batch). "
                f"Received: processor={processor!r}"
            ) from None
    return list(states) if isinstance(states, (list, tuple)) else [states]


def state_fields(shapes: Sequence[tuple], n: int = 1, name: str = "state") -> tuple[str, list[tuple]]:
    """The field of `n` states of input shapes `shapes`, for `rl.engine.fields.Fields`: `(name, [(n, *s), ...])`."""
    return (name, [(n,) + tuple(s) for s in shapes])


def acting_fields(shapes: Sequence[tuple], n: int = 1) -> Fields:
    """The packed input of an acting call on `n` states."""
    return Fields([state_fields(shapes, n)])


def pack_states(parts: Sequence[np.ndarray]) -> np.ndarray:
    """The processed state's parts as one float32 vector, in input order (an acting call's input)."""
    return np.concatenate([np.asarray(p).reshape(-1) for p in parts], dtype=np.float32)


def model_input(states: Sequence[Any]) -> Any:
    """In the graph: the unpacked state parts as a network takes them (one tensor, or a list)."""
    return states[0] if len(states) == 1 else states
