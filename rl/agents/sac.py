"""Soft Actor-Critic (Haarnoja et al., 2018): a squashed Gaussian policy, twin critics, learned entropy coefficient."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.actor_critic import ActorCriticAgent
from rl.core import Processor
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.util import check_int, check_number

__all__ = ["SACAgent"]

_LOG_2 = math.log(2.0)


class SACAgent(ActorCriticAgent):
    """SAC: maximise return plus entropy with a stochastic actor and twin critics.

    The actor outputs `2 * nb_actions` units: the mean `m` and log standard deviation `log_s`
    (clipped to `log_std_bounds`) of a Gaussian over `u`; the action is `tanh(u)` scaled to the
    action space's bounds. With `alpha = exp(log_alpha)`, each gradient step does:

    ```
    a1, logp1 = sample(s1)
    y      = r + gamma * (1 - terminal) * (min_i Q'_i(s1, a1) - alpha * logp1)
    alpha  : minimise -mean(log_alpha * (logp(s0) + target_entropy))         # ent_coef="auto"
    critics: minimise sum_i 0.5 * mean((Q_i(s0, a) - y)^2)
    actor  : minimise mean(alpha * logp - min_i Q_i(s0, a_pi)),  a_pi, logp = sample(s0)
    targets: w' <- tau * w + (1 - tau) * w'
    ```

    `logp` is the log-density of the squashed action in `[-1, 1]` units (the scaling to the
    bounds adds a constant). `test` acts with `tanh(m)`; `fit` samples (no `random_process`
    needed). The samples are drawn inside the compiled step from the agent's seed stream, so
    runs are reproducible and checkpoints resume exactly.

    Args:
        nb_actions: size of the action vector; the action space must be a bounded `Box` of
            shape `(nb_actions,)`.
        actor: Keras model from observation(s) to `2 * nb_actions` units (means, then log stds).
        critic: a Keras critic `Q(s, a)` (cloned into `n_critics`), or a list of critics.
        critic_action_input: the critic's action `Input` (a list with a list of critics).
        memory: replay memory, e.g. `SequentialMemory(limit=100_000)`.
        gamma: discount factor. Defaults to `0.99`.
        batch_size: transitions per gradient step. Defaults to `256`.
        nb_steps_warmup: steps before training starts. Defaults to `1000`.
        train_interval: train every this many steps. Defaults to `1`.
        target_model_update: the critics' target rate `tau` (< 1), or a hard copy every this
            many steps (>= 1). Defaults to `0.005`.
        ent_coef: `"auto"` (learned, starting at 1), `"auto_X"` (learned, starting at `X`), or a
            fixed positive number. Defaults to `"auto"`.
        target_entropy: the entropy `"auto"` aims for: `"auto"` means `-nb_actions`, or a
            number. Defaults to `"auto"`.
        n_critics: number of critics when `critic` is one model. Defaults to `2`.
        log_std_bounds: `(low, high)` the actor's log standard deviations are clipped to.
            Defaults to `(-20.0, 2.0)`.
        memory_interval, gradient_steps, processor, jit_compile, custom_model_objects,
            random_process: as for `DDPGAgent` (`random_process` adds noise on top of the
            samples; usually `None`).
        nb_steps_random: the first this many training steps act uniformly at random within
            the action space's bounds instead of sampling the policy (as Stable-Baselines3 does
            during `learning_starts`); usually `nb_steps_warmup`. Defaults to `0`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    agent = SACAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_input,
                     memory=SequentialMemory(limit=100_000), batch_size=256)
    agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
    agent.fit(env, nb_steps=20_000)
    ```
    """

    base_metrics = ("critic_loss", "actor_loss", "mean_q", "ent_coef")
    weights_roles = ("actor", "critic")

    def __init__(
        self,
        nb_actions: int,
        actor: keras.Model,
        critic: keras.Model | list[keras.Model],
        critic_action_input: Any,
        memory: Any,
        gamma: float = 0.99,
        batch_size: int = 256,
        nb_steps_warmup: int = 1000,
        train_interval: int = 1,
        target_model_update: float = 0.005,
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        n_critics: int = 2,
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
        memory_interval: int = 1,
        gradient_steps: int = 1,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
        random_process: Any = None,
        nb_steps_random: int = 0,
    ):
        nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        self.learn_ent_coef, initial = _parse_ent_coef(ent_coef)
        if target_entropy == "auto":
            self.target_entropy = -float(nb_actions)
        elif isinstance(target_entropy, str):
            raise ValueError(
                f"`target_entropy` must be 'auto' or a number. Received: target_entropy={target_entropy!r}"
            )
        else:
            self.target_entropy = check_number("target_entropy", target_entropy)
        if not (isinstance(log_std_bounds, (tuple, list)) and len(log_std_bounds) == 2):
            raise ValueError(
                f"`log_std_bounds` must be a pair (low, high). Received: log_std_bounds={log_std_bounds!r}"
            )
        low = check_number("log_std_bounds[0]", log_std_bounds[0])
        self.log_std_bounds = (low, check_number("log_std_bounds[1]", log_std_bounds[1], low=low, low_inclusive=False))
        nb_steps_warmup = check_int("nb_steps_warmup", nb_steps_warmup, minimum=0)
        groups = ["critic", "actor"] + (["entropy"] if self.learn_ent_coef else [])
        super().__init__(
            actor=actor,
            critic=critic,
            critic_action_input=critic_action_input,
            n_critics=n_critics,
            actor_units=2 * nb_actions,
            target_actor=False,
            nb_actions=nb_actions,
            memory=memory,
            gamma=gamma,
            batch_size=batch_size,
            warmup={g: nb_steps_warmup for g in groups},
            train_interval=train_interval,
            memory_interval=memory_interval,
            target_model_update=target_model_update,
            gradient_steps=gradient_steps,
            random_process=random_process,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects=custom_model_objects,
            nb_steps_random=nb_steps_random,
        )
        self.nb_steps_warmup = nb_steps_warmup
        self.log_ent_coef = self.add_parameter("log_ent_coef", math.log(initial))
        if self.learn_ent_coef:
            self.optimizer_groups = {**self.optimizer_groups, "entropy": ["log_ent_coef"]}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "nb_steps_warmup": self.nb_steps_warmup,
            "ent_coef": "auto" if self.learn_ent_coef else float(np.exp(self.log_ent_coef.numpy())),
            "target_entropy": self.target_entropy,
            "n_critics": len(self.critic_roles),
            "log_std_bounds": list(self.log_std_bounds),
        }

    # ------------------------------------------------------------- the maths
    def _squash(self, u: tf.Tensor) -> tf.Tensor:
        """`tanh(u)` scaled to the action bounds, `[B, A]`."""
        low, high = self.action_bounds
        if low is None:
            return tf.tanh(u)
        scale, center = (high - low) / 2.0, (high + low) / 2.0
        return tf.tanh(u) * scale + center

    def sample(self, nets: Nets, states: Any, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """A squashed Gaussian sample `[B, A]` (in the action space's units) and its log-density `[B]`."""
        out = nets.actor(states, training=training)  # [B, 2A]
        mean, log_std = out[:, : self.nb_actions], out[:, self.nb_actions :]
        log_std = tf.clip_by_value(log_std, *self.log_std_bounds)
        eps = tf.random.stateless_normal(tf.shape(mean), self.seed_stream.next())
        u = mean + tf.exp(log_std) * eps
        gauss = -0.5 * tf.square(eps) - log_std - 0.5 * math.log(2.0 * math.pi)
        # log(1 - tanh(u)^2), written to stay finite for large |u|
        jacobian = 2.0 * (_LOG_2 - u - tf.nn.softplus(-2.0 * u))
        return self._squash(u), tf.reduce_sum(gauss - jacobian, axis=1)

    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        if training:
            return self.sample(nets, states, training=False)[0]
        return self._squash(nets.actor(states, training=False)[:, : self.nb_actions])  # the mean action

    def _min_q(self, nets: Nets, prefix: str, states: Any, action: tf.Tensor) -> tf.Tensor:
        return tf.reduce_min(tf.stack([self.q(nets, prefix + r, states, action) for r in self.critic_roles]), 0)

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        alpha = tf.stop_gradient(tf.exp(nets.log_ent_coef(None, False)))
        metrics = {"ent_coef": alpha}
        if step.trains("entropy"):
            _, logp = self.sample(nets, batch.state0)
            target = tf.stop_gradient(logp + self.target_entropy)
            self.minimize("entropy", lambda: (-tf.reduce_mean(nets.log_ent_coef(None, True) * target), None))
        if step.trains("critic"):
            a1, logp1 = self.sample(nets, batch.state1)
            soft_q1 = self._min_q(nets, "target_", batch.state1, a1) - alpha * logp1
            y = tf.stop_gradient(batch.reward + self.gamma * (1.0 - batch.terminal) * soft_q1)  # [B]

            def critic_loss():
                qs = [self.q(nets, r, batch.state0, batch.action, training=True) for r in self.critic_roles]
                return tf.add_n([0.5 * self.weighted_mean(tf.square(q - y), batch) for q in qs]), qs[0]

            loss, q0 = self.minimize("critic", critic_loss)
            metrics.update(critic_loss=loss, mean_q=tf.reduce_mean(q0), **self.compiled_metrics(y, q0))
            metrics.update(self.td_errors(batch, y - q0))
            self.update_targets(*(f"target_{r}" for r in self.critic_roles))
        if step.trains("actor"):

            def actor_loss():
                a, logp = self.sample(nets, batch.state0)
                return tf.reduce_mean(alpha * logp - self._min_q(nets, "", batch.state0, a)), None

            metrics["actor_loss"] = self.minimize("actor", actor_loss)[0]
        return metrics


def _parse_ent_coef(ent_coef: Any) -> tuple[bool, float]:
    """`(learned, initial value)` from `"auto"`, `"auto_X"` or a positive number."""
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return True, 1.0
        if ent_coef.startswith("auto_"):
            try:
                value = float(ent_coef[5:])
            except ValueError:
                value = -1.0
            if value > 0 and math.isfinite(value):
                return True, value
        raise ValueError(
            f"`ent_coef` must be 'auto', 'auto_X' with X > 0, or a number > 0. Received: ent_coef={ent_coef!r}"
        )
    return False, check_number("ent_coef", ent_coef, low=0.0, low_inclusive=False)
