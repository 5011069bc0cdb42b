"""What value-based agents share: one Q-value per discrete action, and a `Policy` that picks the action.

- `QPolicyMixin`: the training and test policies, the check of a discrete action space,
  the policy's metrics in `metrics_names`, and the policies' states in checkpoints. Used by
  `ValueBasedAgent` and `rl.agents.sarsa.SARSAAgent`.
- `ValueBasedAgent`: an `OffPolicyAgent` whose compiled call returns the Q-values of the state it
  acts in; the policy is applied to them in numpy (it is any Python object with `select_action`),
  and the memory stores the chosen integer action. `rl.agents.dqn.DQNAgent` is one.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.agents.off_policy import OffPolicyAgent
from rl.policy import EpsGreedyQPolicy, GreedyQPolicy

__all__ = ["QPolicyMixin", "ValueBasedAgent"]


def discrete_action_count(space: Any) -> int | None:
    """The number of actions of a discrete action space, or `None` when `space` is not one.

    A space is discrete when it is a `gymnasium.spaces.Discrete`, or, read by duck typing, when it
    has an integer `n >= 1` and no `shape` beyond `()`: the `Discrete` classes of gym, of
    keras-rl's tests and of other libraries. (`MultiBinary` and `MultiDiscrete` have a shape.)

    Args:
        space: an environment's action space, or anything else.

    Returns:
        `n` as a Python int, or `None`.
    """
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    n = getattr(space, "n", None)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        return None
    if getattr(space, "shape", None) not in (None, ()):
        return None
    return int(n)


def space_type(space: Any) -> str:
    """The full name of a space's class, for messages: `'gymnasium.spaces.discrete.Discrete'`."""
    cls = type(space)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_policy(name: str, policy: Any) -> Any:
    if not callable(getattr(policy, "select_action", None)):
        raise TypeError(f"`{name}` must be a policy with a `select_action` method. Received: {name}={policy!r}")
    return policy


def check_greedy_test_policy(agent: Any) -> None:
    """Raises a `ValueError` naming the test policy unless it is greedy (what an export computes)."""
    policy = agent.test_policy
    if type(policy) is not GreedyQPolicy:
        raise ValueError(
            f"An export takes the greedy action argmax(Q) (and returns the Q-values beside it), which "
            f"{type(policy).__name__} does not: set agent.test_policy = GreedyQPolicy() to export, or apply your "
            f"policy to the exported `q_values`. Received: test_policy={type(policy).__name__}"
        )


def check_q_model(model: Any, nb_actions: int | None) -> int:
    """Checks that `model` is a Keras model with one output `(None, nb_actions)`; returns `nb_actions`.

    `nb_actions=None` takes the width of the model's output.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    shapes = [tuple(o.shape) for o in model.outputs]
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][1] is None:
        raise ValueError(
            f"The model must have one output of shape (None, nb_actions): one Q-value per action. Received: "
            f"model.outputs={shapes}"
        )
    if nb_actions is None:
        return int(shapes[0][1])
    if shapes[0][1] != nb_actions:
        raise ValueError(
            f"The model's output must have shape (None, {nb_actions}) (one Q-value per action). Received: "
            f"model output shape {shapes[0]} with nb_actions={nb_actions}"
        )
    return nb_actions


class QPolicyMixin:
    """Policies for agents that compute one Q-value per discrete action.

    Sets `policy` (used in `fit`) and `test_policy` (used in `test`), attaches both to the agent,
    adds the training policy's `metrics_names` after the training step's metrics (NaN outside
    training), checks that the environment has a discrete action space of `nb_actions` actions
    starting at 0 (`gymnasium.spaces.Discrete(nb_actions)`, or a space with an integer `n`, see
    `discrete_action_count`), and saves the policies' states in checkpoints.
    """

    def _init_policies(self, policy: Any, test_policy: Any) -> None:
        self.policy = _check_policy("policy", EpsGreedyQPolicy() if policy is None else policy)
        self.test_policy = _check_policy("test_policy", GreedyQPolicy() if test_policy is None else test_policy)
        for p in (self.policy, self.test_policy):
            if hasattr(p, "_set_agent"):
                p._set_agent(self)

    def select_action(self, q_values: np.ndarray) -> int:
        """Applies `policy` (while training) or `test_policy` to the Q-values; returns the action.

        Raises:
            ValueError: if the policy returns something that is not an action in `[0, nb_actions)`.
        """
        policy = self.policy if self.training else self.test_policy
        action = policy.select_action(q_values=q_values)
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ValueError(
                f"{type(policy).__name__}.select_action must return an integer action. Received: {action!r}"
            )
        if not 0 <= action < self.nb_actions:
            raise ValueError(
                f"{type(policy).__name__}.select_action returned an action outside [0, {self.nb_actions}). "
                f"Received: {action!r}"
            )
        return int(action)

    def _check_discrete_space(self, env: Any) -> None:
        space = getattr(env, "action_space", None)
        n = discrete_action_count(space)
        if n is None:
            raise TypeError(
                f"{type(self).__name__} needs a discrete action space: a gymnasium.spaces.Discrete, or a space with "
                "an integer `n` (the number of actions) and no shape. "
                f"Received: env.action_space={space!r} of type {space_type(space)}"
            )
        start = getattr(space, "start", 0)
        if n != self.nb_actions or isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start != 0:
            raise ValueError(
                f"The action space must be Discrete({self.nb_actions}) (nb_actions={self.nb_actions}, starting at 0). "
                f"Received: env.action_space={space!r} of type {space_type(space)}"
            )

    @property
    def metrics_names(self) -> list[str]:
        """`[*base_metrics, *compile's metrics, *policy.metrics_names, *processor.metrics_names]`."""
        names = list(self.base_metrics) + self._metric_names + list(getattr(self.policy, "metrics_names", []))
        if self.processor is not None:
            names += list(self.processor.metrics_names)
        return names

    def _with_policy_metrics(self, metrics: np.ndarray) -> np.ndarray:
        """Inserts the policy's metrics (NaN outside training) after the training step's."""
        names = getattr(self.policy, "metrics_names", [])
        if not names:
            return metrics
        values = self.policy.metrics if self.training else [np.nan] * len(names)
        n = len(self.base_metrics) + len(self._metric_fns)
        return np.concatenate([metrics[:n], np.asarray(values, dtype=np.float32), metrics[n:]])

    def _policy_configs(self) -> dict[str, Any]:
        return {
            name: {"class_name": type(p).__name__, "config": p.get_config() if hasattr(p, "get_config") else {}}
            for name, p in (("policy", self.policy), ("test_policy", self.test_policy))
        }

    # -------------------------------------------------------- checkpoints
    def _policy_states(self) -> dict[str, Any]:
        return {
            name: p.get_state()
            for name, p in (("policy", self.policy), ("test_policy", self.test_policy))
            if hasattr(p, "get_state")
        }

    def _validate_policy_states(self, states: Any) -> None:
        if not isinstance(states, dict):
            raise ValueError(f"The checkpoint's agent_state.policies is invalid. Received: policies={states!r:.200}")
        for name, p in (("policy", self.policy), ("test_policy", self.test_policy)):
            if hasattr(p, "set_state"):
                if name not in states:
                    raise ValueError(f"The checkpoint lacks the state of the {name}. Received: keys {sorted(states)}")
                try:  # on a copy without the agent: the policy changes only when the whole load succeeds
                    copy.deepcopy(p, {id(self): None}).set_state(states[name])
                except (TypeError, ValueError, KeyError) as e:
                    raise ValueError(
                        f"The checkpoint's state of the {name} is invalid ({e}). Received: {states[name]!r:.200}"
                    ) from e

    def _restore_policy_states(self, states: dict[str, Any]) -> None:
        for name, p in (("policy", self.policy), ("test_policy", self.test_policy)):
            if hasattr(p, "set_state") and name in states:
                p.set_state(states[name])


class ValueBasedAgent(QPolicyMixin, OffPolicyAgent):
    """An off-policy agent with a Q-network over discrete actions and a policy that picks the action.

    A subclass registers its networks, writes `act_graph(nets, states, training)` returning the
    Q-values `[B, nb_actions]`, and `train_step(nets, batch, step)`, where `batch.action` holds
    the integer actions as floats, `[B, 1]`. Each environment step is one compiled call (the
    scheduled training, then the Q-values of the new state); the policy is applied to the Q-values
    it returns.

    Args:
        policy: the policy used in `fit` (any object with `select_action(q_values=...)`). Defaults
            to `EpsGreedyQPolicy()` (`eps=0.1`).
        test_policy: the policy used in `test`. Defaults to `GreedyQPolicy()`.
        **kwargs: `OffPolicyAgent`'s arguments (`nb_actions`, `memory`, `gamma`, ...).
    """

    stored_action_size = 1  # one integer action per transition

    def __init__(self, policy: Any = None, test_policy: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._init_policies(policy, test_policy)

    def check_env(self, env: Any) -> None:
        self._check_discrete_space(env)
        self.set_action_bounds(None, None)
        obs_space = getattr(env, "observation_space", None)
        if self.processor is None and isinstance(obs_space, gym.spaces.Box):
            self.prepare_inputs(np.zeros(obs_space.shape, dtype=obs_space.dtype), source="env.observation_space.shape")

    def finish_action(self, output: np.ndarray) -> int:
        return self.select_action(output)

    def random_actions(self, n: int) -> np.ndarray:
        """`n` integer actions drawn uniformly from `[0, nb_actions)`, `[n]` (see `OffPolicyAgent`)."""
        return self._rng.integers(0, self.nb_actions, size=n)

    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Stores the transition and schedules training (see `OffPolicyAgent.backward`).

        Returns:
            The metrics of the most recent training call, then the policy's, ordered as
            `metrics_names`.
        """
        metrics = super().backward(reward, terminal, truncated=truncated, next_observation=next_observation)
        return self._with_policy_metrics(metrics)

    serving_output_names = ["action", "q_values"]

    def serving_check(self) -> None:
        check_greedy_test_policy(self)

    def serving_outputs(self, output: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: the greedy action `argmax(q)` (int64 `[B]`) and the Q-values `[B, A]`."""
        return {"action": tf.argmax(output, axis=1), "q_values": output}

    def compute_batch_q_values(self, state_batch: Any) -> np.ndarray:
        """The Q-values of a batch of states `(B, window_length) + obs_shape`, as numpy `[B, nb_actions]`."""
        self.sync_models()
        inputs = self._process_states(np.asarray(state_batch))
        model = self.models[self.weights_roles[0]]
        want = [tuple(t.shape[1:]) for t in model.inputs]
        inputs = [x if x.shape[1:] == w else x.reshape((x.shape[0],) + w) for x, w in zip(inputs, want)]
        out = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
        return np.asarray(out)

    def compute_q_values(self, state: Any) -> np.ndarray:
        """The Q-values of one state `(window_length,) + obs_shape`, as numpy `[nb_actions]`."""
        return self.compute_batch_q_values(np.asarray(state)[None])[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._policy_configs()}

    def checkpoint_state(self) -> dict:
        return {**super().checkpoint_state(), "policies": self._policy_states()}

    def validate_checkpoint_state(self, state: dict) -> None:
        super().validate_checkpoint_state(state)
        self._validate_policy_states(state.get("policies"))

    def restore_checkpoint_state(self, state: dict) -> None:
        super().restore_checkpoint_state(state)
        self._restore_policy_states(state["policies"])
