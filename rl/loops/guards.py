"""The checks every source of experience applies, written once: observations, rewards, actions.

- `ObservationGuard` checks and copies each observation a run keeps (not `None`, finite, the
  shape of the run's first one);
- `checked_reward` turns a reward into a finite Python float or raises, naming where it came from;
- `NonFiniteAction` stops a run whose agent returned NaN or inf, before the environment sees it;
- `all_finite`, `finite_array`, `short_repr`: the small helpers they share.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

__all__ = [
    "NonFiniteAction",
    "ObservationGuard",
    "all_finite",
    "check_rows_finite",
    "checked_reward",
    "finite_array",
    "short_repr",
    "where",
]


def short_repr(value: Any, limit: int = 300) -> str:
    """`repr(value)`, cut to `limit` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(episode: int, step: int | None, agent_step: int | None = None, env_index: int | None = None) -> str:
    """Where a value came from, for messages: `'at step 3 of episode 1 (sub-environment 2, agent step 9)'`."""
    if step is None:
        return f"during the random start steps of episode {episode}"
    text = f"at step {step} of episode {episode}"
    inside = []
    if env_index is not None:
        inside.append(f"sub-environment {env_index}")
    if agent_step is not None:
        inside.append(f"agent step {agent_step}")
    return text + (f" ({', '.join(inside)})" if inside else "")


def finite_array(a: np.ndarray) -> bool:
    """Whether a float or complex array holds no NaN or inf.

    Exact either way; for the small float arrays of most observations and actions, Python's
    `math.isfinite` over the values is several times faster than numpy's per-call overhead.
    """
    if a.size <= 16 and a.dtype.char in "efd":  # float16, float32, float64
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def all_finite(value: Any) -> bool:
    """Whether no float or complex number in `value` (an array, number, or dict/tuple/list of them) is NaN or inf."""
    if isinstance(value, (bool, int, np.integer, np.bool_, str)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or finite_array(value)
    if isinstance(value, (float, complex, np.floating, np.complexfloating)):
        return bool(np.isfinite(value))
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    return True


def checked_reward(reward: Any, source: str, place: str) -> float:
    """`reward` as a finite Python float, or an error naming `source` and `place`.

    Args:
        reward: what the environment (or a processor) returned: a Python or numpy scalar, or a
            0-d array.
        source: who returned it, e.g. "`env.step()`".
        place: where in the run, e.g. `where(episode, step, agent_step)`.

    Raises:
        TypeError: if the reward is not a number.
        ValueError: if it is an array of more than one value, NaN or inf.
    """
    if type(reward) is not float:
        if isinstance(reward, (int, np.integer, np.floating)):
            reward = float(reward)
        elif isinstance(reward, np.ndarray) and reward.dtype.kind in "biuf":
            if reward.ndim != 0:
                raise ValueError(
                    f"The reward must be a scalar, but {source} returned an array of shape {reward.shape} {place}. "
                    f"Received: reward={short_repr(reward)}"
                )
            reward = float(reward)
        else:
            raise TypeError(
                f"The reward must be a number (a Python or numpy scalar), but {source} returned a "
                f"{type(reward).__name__} {place}. Received: reward={short_repr(reward)}"
            )
    if not math.isfinite(reward):
        raise ValueError(f"The environment returned a non-finite reward {place}. Received: reward={reward!r}")
    return reward


def check_rows_finite(observations: np.ndarray, describe: Any) -> np.ndarray:
    """Raises if a row of `observations` `[N, ...]` holds NaN or inf; `describe(i)` says where row `i` came from."""
    if observations.dtype.kind in "fc" and not finite_array(observations):
        i = int(np.flatnonzero(~np.isfinite(observations.reshape(len(observations), -1)).all(axis=1))[0])
        raise ValueError(
            f"The environment returned an observation with NaN or inf {describe(i)}. "
            f"Received: observation={short_repr(observations[i])}"
        )
    return observations


class NonFiniteAction(ValueError):
    """Raised inside a run; reported (with the non-finite weights) once the run has ended."""

    def __init__(self, action: Any, episode: int, step: int, agent_step: int):
        super().__init__(
            f"returned a non-finite action at step {step} of episode {episode} (agent step {agent_step}); it was "
            f"not sent to the environment. Received: action={short_repr(action)}"
        )


class ObservationGuard:
    """Checks and copies each observation a run keeps; one per run.

    An environment may return the same array at every step and update it in place, and a
    processor may return a view: the run keeps (and the agent stores) a copy of each observation,
    made once. The copy is refused when the observation is `None`, holds NaN or inf, or does not
    have the shape (the structure, for dicts, tuples and lists) of the run's first observation.

    Args:
        source: who makes the observations, for messages (e.g. "the environment").
    """

    __slots__ = ("shape", "structure", "source")

    def __init__(self, source: str):
        self.shape: tuple | None = None  # the first observation's shape, when it was an array
        self.structure: Any = _UNSET
        self.source = source

    def __call__(self, observation: Any, episode: int, step: int | None) -> Any:
        """A checked copy of `observation`, seen at `step` of `episode` (`None`: a random start step)."""
        if type(observation) is np.ndarray and observation.shape == self.shape:
            if observation.dtype.kind in "fc" and not finite_array(observation):
                raise _nonfinite_observation(observation, episode, step)
            return observation.copy()
        return self._check(observation, episode, step)

    def _check(self, observation: Any, episode: int, step: int | None) -> Any:
        place = where(episode, step)
        if observation is None:
            raise TypeError(
                f"`observation` must be an array or a structure of arrays, but {self.source} returned None {place}. "
                "Received: observation=None"
            )
        structure = _structure(observation)
        if self.structure is _UNSET:
            self.structure = structure
            self.shape = observation.shape if type(observation) is np.ndarray else None
        elif structure != self.structure:
            raise ValueError(
                f"The observation's shape changed during the run: the run's first observation had shape "
                f"{self.structure}, the one {place} has {structure}. Received: observation={short_repr(observation)}"
            )
        if not all_finite(observation):
            raise _nonfinite_observation(observation, episode, step)
        return _copy_observation(observation)


_UNSET = object()


def _nonfinite_observation(observation: Any, episode: int, step: int | None) -> ValueError:
    return ValueError(
        f"The environment returned an observation with NaN or inf {where(episode, step)}. "
        f"Received: observation={short_repr(observation)}"
    )


def _structure(value: Any) -> Any:
    """The shape of an observation: an array's shape, or the shapes inside a dict, tuple or list."""
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        parts = tuple(_structure(v) for v in value)
        if all(p == () for p in parts):
            return (len(parts),)  # a list of numbers has the shape of the array it makes
        return parts
    return ()  # a number (or another object)


def _copy_observation(value: Any) -> Any:
    """A copy of `value` that later in-place changes to the original do not reach."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        out = copy.copy(value)  # keeps the mapping's type (OrderedDict, ...)
        for k, v in value.items():
            out[k] = _copy_observation(v)
        return out
    if isinstance(value, tuple):
        items = [_copy_observation(v) for v in value]
        return value._make(items) if hasattr(value, "_make") else tuple(items)  # named tuples keep their type
    if isinstance(value, list):
        return [_copy_observation(v) for v in value]
    return value  # numbers and strings cannot change
