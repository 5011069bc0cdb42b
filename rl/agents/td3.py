"""Twin Delayed DDPG (Fujimoto et al., 2018): DDPG with twin critics, delayed actor updates and target smoothing."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from rl.agents.ddpg import DDPGAgent
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.util import check_int, check_number

__all__ = ["TD3Agent"]


class TD3Agent(DDPGAgent):
    """TD3: DDPG with three changes that curb the critic's over-estimation.

    ```
    a1     = clip(mu'(s1) + clip(noise * h, -c * h, c * h), low, high)   # h: the action range's half-width
    y      = r + gamma * (1 - terminal) * min_i Q'_i(s1, a1)             # the smaller twin target
    critics: minimise sum_i mean(huber(y - Q_i(s0, a), delta_clip))
    every `policy_delay` updates: the actor on -mean(Q_1(s0, mu(s0))), then every target moves by tau
    ```

    Takes every argument of `DDPGAgent` (keras-rl's signature) plus the ones below. With
    `policy_delay=1`, `target_policy_noise=0` and `n_critics=1` it is DDPG.

    Args:
        critic: one Keras critic (cloned, with fresh weights, into `n_critics` critics), or a
            list of critics, each with its own action input listed in `critic_action_input`.
        policy_delay: critic updates per actor (and target) update, >= 1. Defaults to `2`.
        target_policy_noise: standard deviation of the Gaussian noise added to the target
            action, in units of the action range's half-width, >= 0. Defaults to `0.2`.
        target_noise_clip: bound of that noise, in the same units, >= 0. Defaults to `0.5`.
        n_critics: number of critics when `critic` is one model, >= 1. Defaults to `2`.
        **kwargs: `DDPGAgent`'s arguments (`nb_actions`, `actor`, `memory`, `gamma`, ...).

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    agent = TD3Agent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_input,
                     memory=SequentialMemory(limit=100_000),
                     random_process=GaussianWhiteNoiseProcess(sigma=0.1, size=1))
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    agent.fit(env, nb_steps=20_000)
    ```
    """

    def __init__(
        self,
        *args: Any,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        n_critics: int = 2,
        **kwargs: Any,
    ):
        self.policy_delay = check_int("policy_delay", policy_delay, minimum=1)
        self.target_policy_noise = check_number("target_policy_noise", target_policy_noise, low=0.0)
        self.target_noise_clip = check_number("target_noise_clip", target_noise_clip, low=0.0)
        self.update_cycle = self.policy_delay
        super().__init__(*args, n_critics=n_critics, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "policy_delay": self.policy_delay,
            "target_policy_noise": self.target_policy_noise,
            "target_noise_clip": self.target_noise_clip,
            "n_critics": len(self.critic_roles),
        }

    def td_target(self, nets: Nets, batch: GraphBatch) -> tf.Tensor:
        a1 = nets.target_actor(batch.state1, training=False)  # [B, A]
        if self.target_policy_noise > 0:
            low, high = self.action_bounds
            half = 1.0 if low is None else (high - low) / 2.0  # [A]
            noise = tf.random.stateless_normal(tf.shape(a1), self.seed_stream.next()) * self.target_policy_noise
            a1 = a1 + tf.clip_by_value(noise, -self.target_noise_clip, self.target_noise_clip) * half
            if low is not None:
                a1 = tf.clip_by_value(a1, low, high)
        q1 = tf.reduce_min(tf.stack([self.q(nets, f"target_{r}", batch.state1, a1) for r in self.critic_roles]), 0)
        return batch.reward + self.gamma * (1.0 - batch.terminal) * q1

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        metrics = {}
        if step.trains("critic"):
            metrics.update(self.train_critic(nets, batch))
        if step.index == self.policy_delay - 1:  # the delayed part
            self.update_targets(*(f"target_{role}" for role in self.critic_roles))
            if step.trains("actor"):
                metrics.update(self.train_actor(nets, batch))
                self.update_targets("target_actor")
        return metrics
