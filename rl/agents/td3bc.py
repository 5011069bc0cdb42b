"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term in the actor's loss, for offline training."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.td3 import TD3Agent
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.util import check_number

__all__ = ["TD3BCAgent"]


class TD3BCAgent(TD3Agent):
    """TD3+BC: TD3 whose actor also stays close to the dataset's actions.

    The critics learn as in TD3 (twin critics, target smoothing, delayed actor). The actor
    minimises, on a batch of dataset transitions `(s, a)`:

    ```
    pi     = mu(s)
    lambda = stop_gradient(alpha / mean(|Q_1(s, pi)|))      # scales the Q term to the data
    actor  : minimise -lambda * mean(Q_1(s, pi)) + bc_weight * mean((pi - a)^2)
    ```

    As in the authors' code, `lambda` normalises by `Q_1` at the policy's actions, and the
    squared error is averaged over the batch and the action's values. With
    `normalize_observations=True`, observations are standardised with the dataset's mean and
    standard deviation (plus `1e-3`), computed by the first `fit_offline` unless given: inside
    the training step and inside acting, so `test`, `fit` and evaluations see the same inputs
    the networks were trained on. The statistics are saved in checkpoints and in `get_config`;
    to rebuild the agent elsewhere from weights files, pass them back as `observation_mean` and
    `observation_std`.

    Fine-tuning online: `fit` after `fit_offline` goes on training the same networks, optimizers
    and memory (the step counters continue). Set `bc_weight = 0` first to drop the
    behaviour-cloning term: the actor then maximises `lambda * Q_1` alone, TD3's objective with
    the loss kept at the scale it had offline (Adam's step sizes do not jump when the term goes).

    Args:
        alpha: weight of the Q term against behaviour cloning, > 0. Defaults to `2.5`.
        bc_weight: weight of the behaviour-cloning term, >= 0: `1` is TD3+BC, `0` TD3's actor
            objective (for fine-tuning online). Settable between runs (`agent.bc_weight = 0.0`;
            the compiled functions are traced anew). Defaults to `1.0`.
        normalize_observations: standardise observations with the dataset's statistics.
            Defaults to `True`.
        observation_mean: the mean to subtract, shape `obs_shape`, or `None` (from the
            dataset). Defaults to `None`.
        observation_std: the scale to divide by, shape `obs_shape`, all > 0, or `None`.
            Defaults to `None`.
        **kwargs: `TD3Agent`'s arguments. Defaults differ from DDPG's where the paper says so:
            `batch_size=256`, `target_model_update=0.005`, and no warm-up
            (`nb_steps_warmup_critic=nb_steps_warmup_actor=0`).

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    memory = SequentialMemory.from_arrays(obs, actions, rewards, terminals, truncations)
    agent = TD3BCAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_input,
                       memory=memory)
    agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
    agent.fit_offline(10_000, eval_env=gym.make("Pendulum-v1"), eval_interval=5000)
    ```
    """

    base_metrics = ("critic_loss", "actor_loss", "mean_q", "bc_loss")

    def __init__(
        self,
        *args: Any,
        alpha: float = 2.5,
        bc_weight: float = 1.0,
        normalize_observations: bool = True,
        observation_mean: Any = None,
        observation_std: Any = None,
        **kwargs: Any,
    ):
        self.alpha = check_number("alpha", alpha, low=0.0, low_inclusive=False)
        self._bc_weight = check_number("bc_weight", bc_weight, low=0.0)
        if not isinstance(normalize_observations, bool):
            raise TypeError(
                f"`normalize_observations` must be a bool. Received: normalize_observations={normalize_observations!r}"
            )
        self.normalize_observations = normalize_observations
        for name, value in (("batch_size", 256), ("target_model_update", 0.005)):
            kwargs.setdefault(name, value)
        kwargs.setdefault("nb_steps_warmup_critic", 0)
        kwargs.setdefault("nb_steps_warmup_actor", 0)
        super().__init__(*args, **kwargs)
        self.observation_mean: np.ndarray | None = None
        self.observation_std: np.ndarray | None = None
        if (observation_mean is None) != (observation_std is None):
            raise ValueError(
                "Pass both `observation_mean` and `observation_std`, or neither. "
                f"Received: observation_mean={observation_mean!r:.100}, observation_std={observation_std!r:.100}"
            )
        if observation_mean is not None:
            self.set_observation_statistics(observation_mean, observation_std)

    @property
    def bc_weight(self) -> float:
        """The weight of the behaviour-cloning term in the actor's loss, >= 0 (`0`: TD3's objective).

        Setting it retraces the compiled functions (the graphs hold it as a constant): change it
        between runs, e.g. `agent.bc_weight = 0.0` between `fit_offline` and `fit`.

        Raises:
            TypeError, ValueError: if the value is not a number >= 0.
        """
        return self._bc_weight

    @bc_weight.setter
    def bc_weight(self, value: float) -> None:
        value = check_number("bc_weight", value, low=0.0)
        if value != self._bc_weight:
            self._bc_weight = value
            self.retrace()

    def set_observation_statistics(self, mean: Any, std: Any) -> None:
        """Sets the observation mean and scale used when `normalize_observations` is on.

        Args:
            mean: finite numbers, shape `obs_shape`.
            std: finite numbers > 0, the same shape.

        Raises:
            ValueError: if the arrays are not finite, differ in shape, or `std` has a value <= 0.
        """
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if mean.shape != std.shape or not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise ValueError(
                "`observation_mean` and `observation_std` must be finite arrays of one shape, std > 0. "
                f"Received: observation_mean={mean.tolist()!r:.200}, observation_std={std.tolist()!r:.200}"
            )
        changed = self.observation_mean is None or not (
            np.array_equal(mean, self.observation_mean) and np.array_equal(std, self.observation_std)
        )
        self.observation_mean, self.observation_std = mean, std
        if changed:
            self.retrace()  # the graphs hold the statistics as constants

    def fit_offline(self, nb_steps: int, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`OffPolicyAgent.fit_offline`, after computing the observation statistics from the
        memory's transitions when `normalize_observations` is on and none were set."""
        if self.normalize_observations and self.observation_mean is None:
            arrays = self.memory.sampling_arrays() if callable(getattr(self.memory, "sampling_arrays", None)) else {}
            if arrays.get("observations") is not None and len(arrays["indices"]):
                obs = arrays["observations"][arrays["indices"]].astype(np.float64)  # each transition's s_t
                if np.isfinite(obs).all():  # otherwise the checks of fit_offline name the problem
                    self.set_observation_statistics(obs.mean(axis=0), obs.std(axis=0) + 1e-3)
        return super().fit_offline(nb_steps, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "alpha": self.alpha,
            "bc_weight": self._bc_weight,
            "normalize_observations": self.normalize_observations,
        }
        if self.observation_mean is not None:
            config["observation_mean"] = self.observation_mean.tolist()
            config["observation_std"] = self.observation_std.tolist()
        return config

    # ------------------------------------------------------------- the maths
    def normalize(self, states: Any) -> Any:
        """In the graph: `(states - mean) / std` when normalising (and the statistics are known)."""
        if not self.normalize_observations or self.observation_mean is None:
            return states
        if isinstance(states, (list, tuple)):
            raise ValueError("normalize_observations supports networks with one observation input.")
        return (states - self.observation_mean) / self.observation_std

    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        return super().act_graph(nets, self.normalize(states), training)

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        batch = batch._replace(state0=self.normalize(batch.state0), state1=self.normalize(batch.state1))
        return super().train_step(nets, batch, step)

    def actor_loss_bc(self, nets: Nets, batch: GraphBatch) -> tuple[tf.Tensor, tf.Tensor]:
        """`-lambda * mean(Q_1(s, pi)) + bc_weight * mean((pi - a)^2)`, and the behaviour-cloning term alone."""
        pi = nets.actor(batch.state0, training=True)  # [B, A]
        q = self.q(nets, "critic", batch.state0, pi)  # [B]
        lmbda = tf.stop_gradient(self.alpha / (tf.reduce_mean(tf.abs(q)) + 1e-8))
        bc = tf.reduce_mean(tf.square(pi - batch.action))
        w = self._bc_weight
        if w == 0:
            return -lmbda * tf.reduce_mean(q), bc
        return -lmbda * tf.reduce_mean(q) + (bc if w == 1 else w * bc), bc

    def train_actor(self, nets: Nets, batch: GraphBatch) -> dict[str, tf.Tensor]:
        """In the graph: one actor step on the TD3+BC loss; returns the loss and its behaviour-cloning part."""
        loss, bc = self.minimize("actor", lambda: self.actor_loss_bc(nets, batch))
        return {"actor_loss": loss, "bc_loss": bc}

    # -------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        state = super().checkpoint_state()
        state["bc_weight"] = self._bc_weight
        if self.observation_mean is not None:
            state["observation_statistics"] = [self.observation_mean.tolist(), self.observation_std.tolist()]
        return state

    def validate_checkpoint_state(self, state: dict) -> None:
        super().validate_checkpoint_state(state)
        if "bc_weight" in state:  # checkpoints of earlier versions have none (the weight was 1)
            w = state["bc_weight"]
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
                raise ValueError(f"The checkpoint's agent_state.bc_weight is invalid. Received: bc_weight={w!r}")
        stats = state.get("observation_statistics")
        if stats is not None:
            try:
                mean, std = (np.asarray(s, np.float32) for s in stats)
                ok = mean.shape == std.shape and np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"The checkpoint's agent_state.observation_statistics is invalid. Received: {stats!r:.200}"
                )

    def restore_checkpoint_state(self, state: dict) -> None:
        super().restore_checkpoint_state(state)
        self.bc_weight = float(state.get("bc_weight", 1.0))
        stats = state.get("observation_statistics")
        if stats is not None:
            self.set_observation_statistics(*stats)
