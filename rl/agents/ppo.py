"""Proximal Policy Optimization (Schulman et al., 2017): the clipped surrogate objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.on_policy import OnPolicyAgent, Rollout, resolve_schedule
from rl.core import Processor
from rl.engine import Nets
from rl.util import check_int, check_number

__all__ = ["PPOAgent"]


class PPOAgent(OnPolicyAgent):
    """PPO: several epochs of minibatch updates on each rollout, kept close to the policy that gathered it.

    Each rollout of `n_steps` steps in each of `n_envs` environments (`M = n_steps * n_envs`
    steps) gives advantages `A` by GAE(lambda) and value targets `R = A + V_old`; then, for
    `n_epochs` epochs over a fresh shuffle of the rollout, each minibatch of `batch_size` steps
    does one gradient step on

    ```
    ratio = exp(log pi(a|s) - log pi_old(a|s))
    A     = (A - mean(A)) / (std(A) + 1e-8)                       # normalize_advantage
    L_pi  = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A))
    L_V   = mean((V(s) - R)^2)                                    # or the clipped form, clip_range_vf
    loss  = L_pi + vf_coef * L_V - ent_coef * mean(entropy)
    ```

    with the gradient's global norm clipped to `max_grad_norm`. All epochs and minibatches of a
    rollout run in one compiled call. With `clip_range_vf`, the value loss is
    `mean(max((V - R)^2, (V_old + clip(V - V_old, -eps_vf, eps_vf) - R)^2))`.

    Args:
        actor: Keras model from observation(s) to the policy's parameters: `n` logits for a
            `Discrete(n)` action space; `nb_actions` means (with a learned state-independent
            log standard deviation, starting at `log_std_init`) or `2 * nb_actions` units
            (means, then log standard deviations) for a `Box`.
        critic: Keras model from the same observation(s) to one value `V(s)`.
        action_space: the environment's action space, e.g. `env.action_space`.
        n_steps: steps per environment in each rollout. Defaults to `2048`.
        batch_size: steps per minibatch; `n_steps * n_envs` must be a multiple of it.
            Defaults to `64`.
        n_epochs: passes over each rollout, >= 1. Defaults to `10`.
        gamma: discount factor. Defaults to `0.99`.
        gae_lambda: GAE's lambda. Defaults to `0.95`.
        clip_range: the ratio's clip range `eps` > 0, or a schedule of the progress remaining
            (see `rl.agents.on_policy.linear_schedule`). Defaults to `0.2`.
        clip_range_vf: clip range of the value function around its old values, or `None` (no
            clipping). Defaults to `None`.
        normalize_advantage: normalize the advantages within each minibatch. Defaults to `True`.
        ent_coef: entropy bonus coefficient, >= 0. Defaults to `0.0`.
        vf_coef: value loss coefficient, >= 0. Defaults to `0.5`.
        max_grad_norm: clip the gradients' global norm to this (> 0), or `None`. Defaults to
            `0.5`.
        lr_schedule: `None` (the optimizer's own learning rate) or a schedule of the progress
            remaining, applied to the optimizer before each rollout's updates. Defaults to `None`.
        log_std_init: initial log standard deviation of a state-independent Gaussian policy.
            Defaults to `0.0`.
        processor, jit_compile, custom_model_objects: see `rl.engine.DeepAgent`.

    Raises:
        TypeError, ValueError: naming the argument and the value, for models that do not fit the
            action space or settings out of range; a rollout size that is not a multiple of
            `batch_size` is refused when `fit` meets its environments.
    """

    base_metrics = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance")

    def __init__(
        self,
        actor: keras.Model,
        critic: keras.Model,
        action_space: Any,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Callable[[float], float] = 0.2,
        clip_range_vf: float | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        lr_schedule: Callable[[float], float] | None = None,
        log_std_init: float = 0.0,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
    ):
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.n_epochs = check_int("n_epochs", n_epochs, minimum=1)
        self.clip_range = resolve_schedule("clip_range", clip_range)
        if not callable(clip_range):
            check_number("clip_range", clip_range, low=0.0, low_inclusive=False)
        self._clip_range_setting = getattr(clip_range, "__name__", "schedule") if callable(clip_range) else clip_range
        self.clip_range_vf = (
            None
            if clip_range_vf is None
            else check_number("clip_range_vf", clip_range_vf, low=0.0, low_inclusive=False)
        )
        if not isinstance(normalize_advantage, (bool, np.bool_)):
            raise TypeError(
                f"`normalize_advantage` must be True or False. Received: normalize_advantage={normalize_advantage!r}"
            )
        self.normalize_advantage = bool(normalize_advantage)
        self.ent_coef = check_number("ent_coef", ent_coef, low=0.0)
        self.vf_coef = check_number("vf_coef", vf_coef, low=0.0)
        self.max_grad_norm = (
            None
            if max_grad_norm is None
            else check_number("max_grad_norm", max_grad_norm, low=0.0, low_inclusive=False)
        )
        super().__init__(
            actor,
            critic,
            action_space,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            lr_schedule=lr_schedule,
            log_std_init=log_std_init,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects=custom_model_objects,
        )

    def check_rollout(self, n_envs: int) -> None:
        size = self.n_steps * n_envs
        if self.batch_size > size:
            raise ValueError(
                f"`batch_size` cannot exceed the rollout's n_steps * n_envs = {self.n_steps} * {n_envs} = {size} "
                f"steps. Received: batch_size={self.batch_size}"
            )
        if size % self.batch_size:
            raise ValueError(
                f"The rollout's n_steps * n_envs = {self.n_steps} * {n_envs} = {size} steps must be a multiple of "
                f"`batch_size`, so that every minibatch is full. Received: batch_size={self.batch_size}"
            )

    def schedule_values(self, progress: float) -> np.ndarray:
        eps = check_number("clip_range(progress_remaining)", self.clip_range(progress), low=0.0, low_inclusive=False)
        return np.array([eps], np.float32)

    def update_graph(self, nets: Nets, rollout: Rollout, schedule: tf.Tensor) -> dict[str, tf.Tensor]:
        m = int(rollout.advantages.shape[0])
        b = self.batch_size
        per_epoch = m // b
        total = self.n_epochs * per_epoch
        eps = schedule[0]
        # Every epoch's shuffle at once: one stateless draw, sorted row by row.
        order = tf.argsort(tf.random.stateless_uniform([self.n_epochs, m], self.seed_stream.next()), axis=-1)
        order = tf.reshape(order, [-1])
        states = rollout.states
        multi = isinstance(states, (list, tuple))

        def update(u: tf.Tensor, sums: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            idx = order[u * b : (u + 1) * b]
            s = [tf.gather(x, idx) for x in states] if multi else tf.gather(states, idx)
            actions = tf.gather(rollout.actions, idx)
            old_logp, old_v = tf.gather(rollout.log_probs, idx), tf.gather(rollout.values, idx)
            adv, ret, valid = (tf.gather(x, idx) for x in (rollout.advantages, rollout.returns, rollout.valid))
            count = tf.maximum(tf.reduce_sum(valid), 1.0)

            def mean(x: tf.Tensor) -> tf.Tensor:
                return tf.reduce_sum(x * valid) / count

            if self.normalize_advantage:
                mu = mean(adv)
                adv = (adv - mu) / (tf.sqrt(mean(tf.square(adv - mu))) + 1e-8)

            def loss_fn() -> tuple[tf.Tensor, tuple]:
                params = self.distribution(nets, s, True)
                log_ratio = self.log_prob(params, actions) - old_logp
                ratio = tf.exp(log_ratio)
                policy_loss = -mean(tf.minimum(ratio * adv, tf.clip_by_value(ratio, 1.0 - eps, 1.0 + eps) * adv))
                v = self.value(nets, s, True)
                value_loss = tf.square(v - ret)
                if self.clip_range_vf is not None:
                    clipped = old_v + tf.clip_by_value(v - old_v, -self.clip_range_vf, self.clip_range_vf)
                    value_loss = tf.maximum(value_loss, tf.square(clipped - ret))
                value_loss = mean(value_loss)
                entropy = mean(self.entropy(params))
                loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
                approx_kl = mean(ratio - 1.0 - log_ratio)
                clip_fraction = mean(tf.cast(tf.abs(ratio - 1.0) > eps, tf.float32))
                return loss, (policy_loss, value_loss, entropy, approx_kl, clip_fraction)

            loss, aux = self.minimize("policy", loss_fn, self.max_grad_norm)
            return u + 1, sums + tf.stack([loss, *aux])

        _, sums = tf.while_loop(
            lambda u, sums: u < total, update, (tf.constant(0), tf.zeros([6], tf.float32)), parallel_iterations=1
        )
        means = sums / float(total)
        valid = rollout.valid
        count = tf.maximum(tf.reduce_sum(valid), 1.0)
        ret_mean = tf.reduce_sum(rollout.returns * valid) / count
        var_ret = tf.reduce_sum(tf.square(rollout.returns - ret_mean) * valid) / count
        err = rollout.returns - rollout.values
        err_mean = tf.reduce_sum(err * valid) / count
        var_err = tf.reduce_sum(tf.square(err - err_mean) * valid) / count
        explained = tf.where(var_ret > 0, 1.0 - var_err / tf.maximum(var_ret, 1e-12), np.float32(np.nan))
        names = self.base_metrics[:6]
        return {**{name: means[i] for i, name in enumerate(names)}, "explained_variance": explained}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            clip_range=self._clip_range_setting,
            clip_range_vf=self.clip_range_vf,
            normalize_advantage=self.normalize_advantage,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
        )
        return config
