"""Action policies of value-based agents: from Q-values (or probabilities) to one discrete action.

keras-rl's names and arguments. Each policy draws from a numpy `Generator` of its own, seeded by
`seed=`; without one, the seed is drawn from numpy's global generator, so `np.random.seed(...)` or
`keras.utils.set_random_seed(...)` before building the policy makes a run repeatable. A policy's
generator state (and any counts it keeps) goes into the agent's checkpoints through `get_state`.

```
GreedyQPolicy            argmax_a Q(a)
EpsGreedyQPolicy         a random action with probability eps, else argmax_a Q(a)
BoltzmannQPolicy         P(a) proportional to exp(clip(Q(a) / tau))
MaxBoltzmannQPolicy      Boltzmann with probability eps, else argmax_a Q(a)
BoltzmannGumbelQPolicy   argmax_a Q(a) + C / sqrt(N(a)) * Gumbel noise (Cesa-Bianchi et al., 2017)
SoftmaxPolicy            an action drawn from given probabilities
LinearAnnealedPolicy     anneals one attribute of another policy (e.g. eps) over the training steps
```
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rl.util import check_int, check_number

__all__ = [
    "BoltzmannGumbelQPolicy",
    "BoltzmannQPolicy",
    "EpsGreedyQPolicy",
    "GreedyQPolicy",
    "LinearAnnealedPolicy",
    "MaxBoltzmannQPolicy",
    "Policy",
    "SoftmaxPolicy",
]


def _seed_value(seed: int | None) -> int:
    if seed is None:
        return int(np.random.randint(0, 2**31 - 1))
    return check_int("seed", seed, minimum=0)


def _q_vector(q_values: Any) -> np.ndarray:
    if type(q_values) is np.ndarray and q_values.ndim == 1 and q_values.shape[0] and q_values.dtype.kind == "f":
        return q_values  # the agents' case: no copy
    q = np.asarray(q_values, dtype=np.float64)
    if q.ndim != 1 or q.shape[0] == 0:
        raise ValueError(f"`q_values` must be a non-empty 1-D array. Received: q_values.shape={q.shape}")
    return q


def _check_clip(clip: Any) -> tuple[float, float]:
    if not (isinstance(clip, (tuple, list)) and len(clip) == 2):
        raise TypeError(f"`clip` must be a pair (low, high). Received: clip={clip!r}")
    low = check_number("clip[0]", clip[0], allow_inf=True)
    high = check_number("clip[1]", clip[1], allow_inf=True)
    if not low < high:
        raise ValueError(f"`clip` must satisfy low < high. Received: clip={clip!r}")
    return low, high


class Policy:
    """Base class of the policies: picks an action from what the agent computed.

    A subclass implements `select_action(**kwargs)` (value-based agents call
    `select_action(q_values=q)` with a 1-D array of Q-values) and draws its randomness from
    `self.rng`. The agent calls `_set_agent(agent)` when it takes the policy, so a policy may read
    `agent.training` and `agent.step`.

    Args:
        seed: seed of the policy's generator. Defaults to `None` (drawn from numpy's global
            generator).

    Attributes:
        agent: the agent using the policy (set by `_set_agent`), or `None`.
        rng: the policy's `numpy.random.Generator`.
    """

    agent: Any = None

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._rng = np.random.default_rng(_seed_value(seed))

    @property
    def rng(self) -> np.random.Generator:
        """The policy's generator (created on first use for subclasses that skip `__init__`)."""
        if getattr(self, "_rng", None) is None:
            self._rng = np.random.default_rng(_seed_value(None))
        return self._rng

    def _set_agent(self, agent: Any) -> None:
        """Attaches the policy to `agent` (done by the agent)."""
        self.agent = agent

    @property
    def metrics_names(self) -> list[str]:
        """Names of the values `metrics` reports (the agents log them every step)."""
        return []

    @property
    def metrics(self) -> list[float]:
        """The policy's current metrics, ordered as `metrics_names`."""
        return []

    def select_action(self, **kwargs: Any) -> Any:
        """Returns the action for the given inputs (e.g. `q_values=`)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Returns the policy's constructor arguments."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """The policy's changing state (its generator's), JSON-compatible, for checkpoints."""
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned.

        Raises:
            ValueError: if `state` does not fit the policy.
        """
        if not isinstance(state, dict) or not isinstance(state.get("rng"), dict):
            raise ValueError(f"A policy state must be a dict with an 'rng' entry. Received: state={state!r:.200}")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]  # on a fresh generator first: a bad state changes nothing
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"The policy's generator state is invalid ({e}). Received: state={state!r:.200}") from e
        self.rng.bit_generator.state = state["rng"]


class LinearAnnealedPolicy(Policy):
    """Anneals attribute `attr` of `inner_policy` linearly from `value_max` to `value_min`.

    While training, the value at agent step `t` is `max(value_min, value_max - (value_max -
    value_min) * t / nb_steps)`; outside training it is `value_test`. The value is set on the
    inner policy before each of its `select_action` calls.

    Args:
        inner_policy: the `Policy` whose attribute is annealed (e.g. `EpsGreedyQPolicy()`).
        attr: the attribute's name (e.g. `'eps'`).
        value_max: the value at step 0.
        value_min: the value from step `nb_steps` on.
        value_test: the value outside training (in `test`).
        nb_steps: steps over which the value goes from `value_max` to `value_min`, >= 1.
        seed: unused (the inner policy draws); accepted for a uniform signature. Defaults to `None`.

    Raises:
        TypeError: if `inner_policy` is not a `Policy`.
        ValueError: if `inner_policy` has no attribute `attr`, or `nb_steps < 1`.

    Example:

    ```python
    policy = LinearAnnealedPolicy(EpsGreedyQPolicy(), attr="eps", value_max=1.0, value_min=0.1,
                                  value_test=0.05, nb_steps=1_000_000)
    ```
    """

    def __init__(
        self,
        inner_policy: Policy,
        attr: str,
        value_max: float,
        value_min: float,
        value_test: float,
        nb_steps: int,
        seed: int | None = None,
    ):
        if not isinstance(inner_policy, Policy):
            raise TypeError(f"`inner_policy` must be a Policy. Received: inner_policy={inner_policy!r}")
        if not isinstance(attr, str) or not hasattr(inner_policy, attr):
            raise ValueError(
                f"The inner policy {type(inner_policy).__name__} has no attribute {attr!r} to anneal. "
                f"Received: attr={attr!r}"
            )
        super().__init__(seed)
        self.inner_policy = inner_policy
        self.attr = attr
        self.value_max = check_number("value_max", value_max)
        self.value_min = check_number("value_min", value_min)
        self.value_test = check_number("value_test", value_test)
        self.nb_steps = check_int("nb_steps", nb_steps, minimum=1)

    def _set_agent(self, agent: Any) -> None:
        super()._set_agent(agent)
        self.inner_policy._set_agent(agent)

    def get_current_value(self) -> float:
        """The annealed value at the agent's current step (`value_test` outside training).

        Raises:
            ValueError: if the policy is not attached to an agent.
        """
        if self.agent is None:
            raise ValueError(
                "LinearAnnealedPolicy reads the agent's step: give it to an agent first. Received: agent=None"
            )
        if not self.agent.training:
            return self.value_test
        slope = -(self.value_max - self.value_min) / self.nb_steps
        return max(self.value_min, slope * float(self.agent.step) + self.value_max)

    def select_action(self, **kwargs: Any) -> Any:
        """Sets the annealed value on the inner policy, then returns its `select_action(**kwargs)`."""
        setattr(self.inner_policy, self.attr, self.get_current_value())
        return self.inner_policy.select_action(**kwargs)

    @property
    def metrics_names(self) -> list[str]:
        """`['mean_<attr>']`: the annealed value (averaged over an episode by the loggers)."""
        return [f"mean_{self.attr}"]

    @property
    def metrics(self) -> list[float]:
        return [float(getattr(self.inner_policy, self.attr))]

    def get_config(self) -> dict[str, Any]:
        return {
            "attr": self.attr,
            "value_max": self.value_max,
            "value_min": self.value_min,
            "value_test": self.value_test,
            "nb_steps": self.nb_steps,
            "inner_policy": {"class_name": type(self.inner_policy).__name__, "config": self.inner_policy.get_config()},
        }

    def get_state(self) -> dict[str, Any]:
        return {"inner_policy": self.inner_policy.get_state(), "value": float(getattr(self.inner_policy, self.attr))}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "inner_policy" not in state:
            raise ValueError(f"A LinearAnnealedPolicy state needs 'inner_policy'. Received: state={state!r:.200}")
        self.inner_policy.set_state(state["inner_policy"])
        if isinstance(state.get("value"), (int, float)):
            setattr(self.inner_policy, self.attr, float(state["value"]))


class SoftmaxPolicy(Policy):
    """Draws an action from the probabilities it is given.

    Args:
        seed: seed of the policy's generator. Defaults to `None`.
    """

    def select_action(self, nb_actions: int, probs: Any) -> int:
        """Returns an action in `[0, nb_actions)` drawn with probabilities `probs`.

        Raises:
            ValueError: if `probs` is not `nb_actions` non-negative values summing to 1.
        """
        nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.shape != (nb_actions,) or not np.all(p >= 0) or not math.isclose(p.sum(), 1.0, abs_tol=1e-4):
            raise ValueError(
                f"`probs` must be {nb_actions} non-negative probabilities summing to 1. Received: probs={probs!r:.200}"
            )
        return _draw(self.rng, np.cumsum(p))


class GreedyQPolicy(Policy):
    """Always the action of the largest Q-value (the first one on ties)."""

    def select_action(self, q_values: Any) -> int:
        """Returns `argmax(q_values)`.

        Raises:
            ValueError: if `q_values` is not a non-empty 1-D array.
        """
        return int(np.argmax(_q_vector(q_values)))


class EpsGreedyQPolicy(Policy):
    """A uniformly random action with probability `eps`, else the greedy one.

    Args:
        eps: exploration probability in `[0, 1]`. Defaults to `0.1`.
        seed: seed of the policy's generator. Defaults to `None`.
    """

    def __init__(self, eps: float = 0.1, seed: int | None = None):
        super().__init__(seed)
        self.eps = check_number("eps", eps, low=0.0, high=1.0)

    def select_action(self, q_values: Any) -> int:
        """Returns a random action with probability `eps`, else `argmax(q_values)`.

        Raises:
            ValueError: if `q_values` is not a non-empty 1-D array.
        """
        q = _q_vector(q_values)
        if self.rng.random() < self.eps:
            return int(self.rng.integers(q.shape[0]))
        return int(np.argmax(q))

    def get_config(self) -> dict[str, Any]:
        return {"eps": self.eps}


class BoltzmannQPolicy(Policy):
    """Draws action `a` with probability proportional to `exp(clip(Q(a) / tau, *clip))`.

    Args:
        tau: temperature, > 0: large values explore more. Defaults to `1.0`.
        clip: bounds of `Q / tau` before the exponential. Defaults to `(-500.0, 500.0)`.
        seed: seed of the policy's generator. Defaults to `None`.
    """

    def __init__(self, tau: float = 1.0, clip: tuple[float, float] = (-500.0, 500.0), seed: int | None = None):
        super().__init__(seed)
        self.tau = check_number("tau", tau, low=0.0, low_inclusive=False)
        self.clip = _check_clip(clip)

    def select_action(self, q_values: Any) -> int:
        """Returns an action drawn from the Boltzmann distribution of `q_values`.

        Raises:
            ValueError: if `q_values` is not a non-empty 1-D array.
        """
        return _boltzmann(self.rng, _q_vector(q_values), self.tau, self.clip)

    def get_config(self) -> dict[str, Any]:
        return {"tau": self.tau, "clip": list(self.clip)}


class MaxBoltzmannQPolicy(Policy):
    """Boltzmann exploration with probability `eps`, else the greedy action (Wiering, 1999).

    Args:
        eps: probability of a Boltzmann draw, in `[0, 1]`. Defaults to `0.1`.
        tau: temperature, > 0. Defaults to `1.0`.
        clip: bounds of `Q / tau` before the exponential. Defaults to `(-500.0, 500.0)`.
        seed: seed of the policy's generator. Defaults to `None`.
    """

    def __init__(
        self, eps: float = 0.1, tau: float = 1.0, clip: tuple[float, float] = (-500.0, 500.0), seed: int | None = None
    ):
        super().__init__(seed)
        self.eps = check_number("eps", eps, low=0.0, high=1.0)
        self.tau = check_number("tau", tau, low=0.0, low_inclusive=False)
        self.clip = _check_clip(clip)

    def select_action(self, q_values: Any) -> int:
        """Returns a Boltzmann draw with probability `eps`, else `argmax(q_values)`.

        Raises:
            ValueError: if `q_values` is not a non-empty 1-D array.
        """
        q = _q_vector(q_values)
        if self.rng.random() < self.eps:
            return _boltzmann(self.rng, q, self.tau, self.clip)
        return int(np.argmax(q))

    def get_config(self) -> dict[str, Any]:
        return {"eps": self.eps, "tau": self.tau, "clip": list(self.clip)}


class BoltzmannGumbelQPolicy(Policy):
    """Boltzmann-Gumbel exploration (Cesa-Bianchi et al., 2017): `argmax_a Q(a) + C / sqrt(N(a)) * G(a)`.

    `G(a)` is standard Gumbel noise and `N(a)` counts how often action `a` was chosen (starting at
    1 when the agent's step is 0), so rarely tried actions get more noise. For training only: use
    another policy (e.g. `GreedyQPolicy`, the default) as the agent's `test_policy`.

    Args:
        C: exploration scale, > 0. Defaults to `1.0`.
        seed: seed of the policy's generator. Defaults to `None`.

    Raises:
        ValueError: from `select_action`, if the policy has no agent or the agent is not training.
    """

    def __init__(self, C: float = 1.0, seed: int | None = None):  # noqa: N803 - keras-rl's name
        super().__init__(seed)
        self.C = check_number("C", C, low=0.0, low_inclusive=False)
        self.action_counts: np.ndarray | None = None

    def select_action(self, q_values: Any) -> int:
        """Returns the action of the largest Gumbel-perturbed Q-value and counts it.

        Raises:
            ValueError: if `q_values` is not a non-empty 1-D array, or outside training.
        """
        if self.agent is None or not self.agent.training:
            raise ValueError(
                "BoltzmannGumbelQPolicy is for training only; use e.g. GreedyQPolicy as the test policy. "
                f"Received: agent.training={getattr(self.agent, 'training', None)}"
            )
        q = _q_vector(q_values)
        if self.agent.step == 0 or self.action_counts is None or self.action_counts.shape != q.shape:
            self.action_counts = np.ones(q.shape, dtype=np.float64)
        beta = self.C / np.sqrt(self.action_counts)
        action = int(np.argmax(q + beta * self.rng.gumbel(size=q.shape)))
        self.action_counts[action] += 1
        return action

    def get_config(self) -> dict[str, Any]:
        return {"C": self.C}

    def get_state(self) -> dict[str, Any]:
        counts = None if self.action_counts is None else [float(c) for c in self.action_counts]
        return {**super().get_state(), "action_counts": counts}

    def set_state(self, state: dict[str, Any]) -> None:
        counts = state.get("action_counts") if isinstance(state, dict) else None
        if counts is not None and not (isinstance(counts, list) and all(isinstance(c, (int, float)) for c in counts)):
            raise ValueError(f"The policy's action_counts are invalid. Received: action_counts={counts!r:.200}")
        super().set_state(state)
        self.action_counts = None if counts is None else np.asarray(counts, dtype=np.float64)


def _draw(rng: np.random.Generator, cumulative: np.ndarray) -> int:
    """An index drawn with probabilities proportional to the increments of `cumulative`."""
    i = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(i, cumulative.shape[0] - 1)


def _boltzmann(rng: np.random.Generator, q: np.ndarray, tau: float, clip: tuple[float, float]) -> int:
    """A draw with probabilities proportional to `exp(clip(q / tau))`, shifted by the max (same probabilities)."""
    low, high = clip
    if q.shape[0] <= 32:  # a few actions: plain Python floats are several times faster than numpy calls
        z = [min(max(v / tau, low), high) for v in q.tolist()]
        top = max(z)
        cumulative, total = [], 0.0
        for v in z:
            total += math.exp(v - top)
            cumulative.append(total)
        u = rng.random() * total
        return next((i for i, c in enumerate(cumulative) if u < c), len(cumulative) - 1)
    z = np.minimum(np.maximum(q.astype(np.float64) / tau, low), high)
    return _draw(rng, np.cumsum(np.exp(z - z.max())))
