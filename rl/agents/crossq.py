"""CrossQ (Bhatt et al., ICLR 2024): SAC without target networks, critics batch-renormalised over (s, a), (s', a')."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rl.agents.sac import SACAgent
from rl.core import Processor
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.util import check_int

__all__ = ["CrossQAgent"]

# Settings of target networks, which CrossQ does not have: refused by name rather than ignored.
_TARGET_SETTINGS = ("target_model_update", "tau", "target_actor", "target_policy_noise", "target_noise_clip")


class CrossQAgent(SACAgent):
    """CrossQ: SAC's actor and entropy tuning, critics with batch renormalisation and no target networks.

    The critics bootstrap from themselves. What keeps that stable is batch (re)normalisation in
    the critics (`rl.layers.BatchRenormalization`) and one joint forward pass over the current
    and the next state-action pairs, so that the normalisation statistics cover both halves
    and `Q(s, a)` and `Q(s', a')` are normalised alike. With `alpha = exp(log_alpha)`, each
    gradient step does:

    ```
    a1, logp1 = sample(s1)                                     # the actor in inference mode
    [q0_i; q1_i] = Q_i([s0; s1], [a; a1])                      # one pass over 2B rows, training mode
    y      = r + gamma * (1 - terminal) * (min_i q1_i - alpha * logp1)   # no gradient through y
    critics: minimise sum_i 0.5 * mean((q0_i - y)^2)
    every `policy_delay` updates, with a_pi, logp = sample(s0) (the actor in training mode):
    actor  : minimise mean(alpha * logp - min_i Q_i(s0, a_pi))  # the critics in inference mode
    alpha  : minimise -mean(log_alpha * (logp + target_entropy))   # ent_coef="auto"
    ```

    Bring the networks: the critic is a Keras model from `[action, observation(s)]` to one
    Q-value, like SAC's, with `rl.layers.BatchRenormalization` (or `keras.layers.
    BatchNormalization`) layers; the paper normalises the critic's input and each hidden
    layer's output, with two hidden layers of 2048 units, and also batch-renormalises the
    actor (256 units). Acting calls the actor alone, in inference mode: `fit` samples, `test`
    takes `tanh` of the mean. Layers with statistics update them in the compiled training step,
    and the statistics are saved with the weights, so checkpoints resume exactly.

    The networks hold non-trainable weights (the normalisation statistics). They train in the
    engine's flat weight layout like the other agents' networks: the trainable weights packed,
    the statistics kept in the layers' own variables and updated by each training-mode call.

    Args:
        nb_actions: size of the action vector; the action space must be a bounded `Box` of
            shape `(nb_actions,)`.
        actor: Keras model from observation(s) to `2 * nb_actions` units (means, then log stds).
        critic: a Keras critic `Q(s, a)` (cloned, with fresh weights, into `n_critics`), or a list
            of critics.
        critic_action_input: the critic's action `Input` (a list with a list of critics).
        memory: replay memory, e.g. `SequentialMemory(limit=100_000)`.
        gamma: discount factor. Defaults to `0.99`.
        batch_size: transitions per gradient step (the joint pass runs on twice as many rows).
            Defaults to `256`.
        nb_steps_warmup: steps before training starts. Defaults to `1000`.
        train_interval: train every this many steps. Defaults to `1`.
        policy_delay: critic updates per actor (and temperature) update, >= 1. Defaults to `3`.
        ent_coef: `"auto"` (learned, starting at 1), `"auto_X"` (learned, starting at `X`), or a
            fixed positive number. Defaults to `"auto"`.
        target_entropy: the entropy `"auto"` aims for: `"auto"` means `-nb_actions`, or a
            number. Defaults to `"auto"`.
        n_critics: number of critics when `critic` is one model. Defaults to `2`.
        log_std_bounds: `(low, high)` the actor's log standard deviations are clipped to.
            Defaults to `(-20.0, 2.0)`.
        memory_interval, gradient_steps, processor, jit_compile, custom_model_objects,
            random_process, nb_steps_random: as for `SACAgent`.

    Raises:
        TypeError: for a setting of target networks (`target_model_update`, `tau`, ...) or any
            other unknown argument, naming it and the value received.
        TypeError, ValueError: for bad values, at construction, naming the argument and the value.

    Example:

    ```python
    agent = CrossQAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_input,
                        memory=SequentialMemory(limit=100_000))
    agent.compile()  # Adam(1e-3, beta_1=0.5) for the actor and the critics, as in the paper
    agent.fit(env, nb_steps=10_000)
    ```
    """

    uses_target_networks = False

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
        policy_delay: int = 3,
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
        **unknown: Any,
    ):
        for name in _TARGET_SETTINGS:
            if name in unknown:
                raise TypeError(
                    f"CrossQAgent has no target networks, so it takes no `{name}`. Received: {name}={unknown[name]!r}"
                )
        if unknown:
            name = next(iter(unknown))
            raise TypeError(f"CrossQAgent got an unexpected argument `{name}`. Received: {name}={unknown[name]!r}")
        self.policy_delay = check_int("policy_delay", policy_delay, minimum=1)
        self.update_cycle = self.policy_delay  # step.index: 0, ..., policy_delay - 1
        super().__init__(
            nb_actions=nb_actions,
            actor=actor,
            critic=critic,
            critic_action_input=critic_action_input,
            memory=memory,
            gamma=gamma,
            batch_size=batch_size,
            nb_steps_warmup=nb_steps_warmup,
            train_interval=train_interval,
            ent_coef=ent_coef,
            target_entropy=target_entropy,
            n_critics=n_critics,
            log_std_bounds=log_std_bounds,
            memory_interval=memory_interval,
            gradient_steps=gradient_steps,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects=custom_model_objects,
            random_process=random_process,
            nb_steps_random=nb_steps_random,
        )

    def compile(self, optimizer: Any = None, metrics: list | None = None) -> None:
        """Sets the optimizers (see `rl.engine.DeepAgent.compile`) and the extra metrics.

        Args:
            optimizer: as for the other agents; `None` takes the paper's: `Adam(1e-3,
                beta_1=0.5)` for the critics and for the actor, and `Adam(1e-3)` for the
                entropy coefficient. Defaults to `None`.
            metrics: functions or names of `metric(y_true, y_pred)` on the TD targets and the
                first critic's Q-values. Defaults to `None`.
        """
        if optimizer is None:
            optimizer = {
                "critic": keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.5),
                "actor": keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.5),
            }
            if self.learn_ent_coef:
                optimizer["entropy"] = keras.optimizers.Adam(learning_rate=1e-3)
        super().compile(optimizer, metrics)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "policy_delay": self.policy_delay}
        config.pop("target_model_update")  # no target networks
        return config

    # ------------------------------------------------------------- the maths
    def joint_q(self, nets: Nets, batch: GraphBatch, a1: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Every critic on `(s0, a)` and `(s1, a1)` in one training-mode pass, `([N, B], [N, B])`."""
        b = tf.shape(batch.action)[0]
        if isinstance(batch.state0, (list, tuple)):
            states = [tf.concat([x0, x1], 0) for x0, x1 in zip(batch.state0, batch.state1)]
        else:
            states = tf.concat([batch.state0, batch.state1], 0)
        actions = tf.concat([batch.action, tf.cast(a1, batch.action.dtype)], 0)  # [2B, A]
        qs = tf.stack([self.q(nets, role, states, actions, training=True) for role in self.critic_roles])  # [N, 2B]
        return qs[:, :b], qs[:, b:]

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        alpha = tf.stop_gradient(tf.exp(nets.log_ent_coef(None, False)))  # []
        metrics = {"ent_coef": alpha}
        if step.trains("critic"):
            a1, logp1 = self.sample(nets, batch.state1, training=False)  # [B, A], [B]

            def critic_loss():
                q0, q1 = self.joint_q(nets, batch, a1)  # [N, B] each
                soft_q1 = tf.reduce_min(q1, axis=0) - alpha * logp1
                y = tf.stop_gradient(batch.reward + self.gamma * (1.0 - batch.terminal) * soft_q1)  # [B]
                loss = tf.add_n([0.5 * self.weighted_mean(tf.square(q - y), batch) for q in tf.unstack(q0)])
                return loss, (q0[0], y)

            loss, (q0, y) = self.minimize("critic", critic_loss)
            metrics.update(critic_loss=loss, mean_q=tf.reduce_mean(q0), **self.compiled_metrics(y, q0))
            metrics.update(self.td_errors(batch, y - q0))
        if step.trains("actor") and step.index == self.policy_delay - 1:  # the delayed part

            def actor_loss():
                a, logp = self.sample(nets, batch.state0, training=True)  # [B, A], [B]
                q = tf.reduce_min(tf.stack([self.q(nets, r, batch.state0, a) for r in self.critic_roles]), 0)
                return tf.reduce_mean(alpha * logp - q), logp

            metrics["actor_loss"], logp = self.minimize("actor", actor_loss)
            if step.trains("entropy"):  # ent_coef="auto"
                target = tf.stop_gradient(logp + self.target_entropy)  # [B]
                self.minimize("entropy", lambda: (-tf.reduce_mean(nets.log_ent_coef(None, True) * target), None))
        return metrics
