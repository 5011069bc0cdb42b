"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016) on the user's own Keras actor and critic."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.actor_critic import ActorCriticAgent
from rl.agents.off_policy import huber, resolve_delta_clip
from rl.core import Processor
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.random import RandomProcess
from rl.util import check_int

__all__ = ["DDPGAgent"]


class DDPGAgent(ActorCriticAgent):
    """DDPG: an actor `mu(s)` trained to maximise a critic `Q(s, a)`, with target networks.

    Each gradient step, on a batch from `memory`:

    ```
    y      = r + gamma * (1 - terminal) * Q'(s1, mu'(s1))      # TD target from the target nets
    critic : minimise mean(huber(y - Q(s0, a), delta_clip))    # 0.5 * td^2 when delta_clip=inf
    actor  : minimise -mean(Q(s0, mu(s0)))                     # with the critic just updated
    targets: w' <- tau * w + (1 - tau) * w'                    # or a hard copy every N steps
    ```

    A time-limit truncation is not a termination: such a transition bootstraps from its real
    final observation. The training step that `backward` schedules runs fused with the next
    `forward` (one compiled call trains and returns the next action); `backward` therefore
    reports the metrics of the previous training call.

    Args:
        nb_actions: size of the action vector, >= 1. The action space must be a bounded
            `gymnasium.spaces.Box` of shape `(nb_actions,)`.
        actor: Keras model from observation(s) to actions, output shape `(None, nb_actions)`.
            Its observation input may be shaped `(window_length,) + obs_shape` (keras-rl style,
            e.g. `Flatten` first) or, when `window_length == 1`, `obs_shape`.
        critic: Keras model from `[action, observation(s)]` to one Q-value, output `(None, 1)`.
        critic_action_input: the Keras `Input` of `critic` that receives the action.
        memory: replay memory, typically `rl.memory.SequentialMemory`.
        gamma: discount factor in `[0, 1]`. Defaults to `0.99`.
        batch_size: transitions per gradient step, in `[1, memory.limit]`. Defaults to `32`.
        nb_steps_warmup_critic: steps before the critic trains. Defaults to `1000`.
        nb_steps_warmup_actor: steps before the actor trains. Defaults to `1000`.
        train_interval: train every this many steps. Defaults to `1`.
        memory_interval: store every this many steps. Defaults to `1`.
        delta_range: deprecated; use `delta_clip`. Defaults to `None`.
        delta_clip: Huber loss threshold on the TD error; `inf` gives `0.5 * td^2`. Defaults to
            `inf`.
        random_process: exploration noise added to actions while training (e.g.
            `OrnsteinUhlenbeckProcess(size=nb_actions, ...)`), or `None`. Defaults to `None`.
        custom_model_objects: custom layers/objects needed to clone the models into target
            networks. Defaults to `None`.
        target_model_update: `< 1`: soft update with this `tau` after each gradient step;
            `>= 1`: hard copy every `int(target_model_update)` steps. Defaults to `0.001`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step with XLA: `True`, `False` or `"auto"` (XLA on a
            GPU or TPU, and on CPUs for small networks in training runs that reach 10 000
            steps). Acting alone never uses XLA. Defaults to `"auto"`.
        gradient_steps: gradient steps per training call, each on its own batch (as
            Stable-Baselines3's `gradient_steps`); metrics are their mean. Defaults to `1`.
        nb_steps_random: the first this many training steps act uniformly at random within
            the action space's bounds instead of with the actor and `random_process` (as
            Stable-Baselines3 does during `learning_starts`); usually the warm-up length.
            Defaults to `0`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received,
            when the models, memory or hyper-parameters do not fit together.

    Example:

    ```python
    agent = DDPGAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_input,
                      memory=SequentialMemory(limit=100_000), random_process=noise)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    agent.fit(env, nb_steps=20_000)
    agent.test(env, nb_episodes=5, visualize=False)
    ```
    """

    base_metrics = ("critic_loss", "actor_loss", "mean_q")
    weights_roles = ("actor", "critic")

    def __init__(
        self,
        nb_actions: int,
        actor: keras.Model,
        critic: keras.Model | list[keras.Model],
        critic_action_input: Any,
        memory: Any,
        gamma: float = 0.99,
        batch_size: int = 32,
        nb_steps_warmup_critic: int = 1000,
        nb_steps_warmup_actor: int = 1000,
        train_interval: int = 1,
        memory_interval: int = 1,
        delta_range: tuple[float, float] | None = None,
        delta_clip: float = np.inf,
        random_process: RandomProcess | None = None,
        custom_model_objects: dict | None = None,
        target_model_update: float = 0.001,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        gradient_steps: int = 1,
        nb_steps_random: int = 0,
        **kwargs: Any,
    ):
        super().__init__(
            actor=actor,
            critic=critic,
            critic_action_input=critic_action_input,
            nb_actions=nb_actions,
            memory=memory,
            gamma=gamma,
            batch_size=batch_size,
            warmup={
                "critic": check_int("nb_steps_warmup_critic", nb_steps_warmup_critic, minimum=0),
                "actor": check_int("nb_steps_warmup_actor", nb_steps_warmup_actor, minimum=0),
            },
            train_interval=train_interval,
            memory_interval=memory_interval,
            target_model_update=target_model_update,
            gradient_steps=gradient_steps,
            random_process=random_process,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects=custom_model_objects,
            nb_steps_random=nb_steps_random,
            **kwargs,
        )
        self.delta_clip = resolve_delta_clip(delta_clip, delta_range)
        self.nb_steps_warmup_critic = self.warmup["critic"]
        self.nb_steps_warmup_actor = self.warmup["actor"]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "nb_steps_warmup_critic": self.nb_steps_warmup_critic,
            "nb_steps_warmup_actor": self.nb_steps_warmup_actor,
            "delta_clip": self.delta_clip,
        }

    # ------------------------------------------------------------- the maths
    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        return nets.actor(states, training=False)  # [B, A]

    def td_target(self, nets: Nets, batch: GraphBatch) -> tf.Tensor:
        """`y = r + gamma * (1 - terminal) * Q'(s1, mu'(s1))`, `[B]`."""
        a1 = nets.target_actor(batch.state1, training=False)  # [B, A]
        q1 = self.q(nets, "target_critic", batch.state1, a1)  # [B]
        return batch.reward + self.gamma * (1.0 - batch.terminal) * q1

    def critic_loss(self, nets: Nets, batch: GraphBatch, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The sum over critics of `mean(huber(y - Q_i(s0, a)))`, and the first critic's `Q(s0, a)` `[B]`."""
        qs = [self.q(nets, role, batch.state0, batch.action, training=True) for role in self.critic_roles]
        return tf.add_n([self.weighted_mean(huber(y - q, self.delta_clip), batch) for q in qs]), qs[0]

    def actor_loss(self, nets: Nets, states: Any) -> tf.Tensor:
        """`-mean(Q(s, mu(s)))` with the first critic."""
        mu = nets.actor(states, training=True)  # [B, A]
        return -tf.reduce_mean(self.q(nets, "critic", states, mu))

    def train_critic(self, nets: Nets, batch: GraphBatch) -> dict[str, tf.Tensor]:
        """One critic update toward `td_target`; returns `critic_loss`, `mean_q` and compile's metrics."""
        y = tf.stop_gradient(self.td_target(nets, batch))  # [B]
        loss, q0 = self.minimize("critic", lambda: self.critic_loss(nets, batch, y))
        return {
            "critic_loss": loss,
            "mean_q": tf.reduce_mean(q0),
            **self.compiled_metrics(y, q0),
            **self.td_errors(batch, y - q0),
        }

    def train_actor(self, nets: Nets, batch: GraphBatch) -> dict[str, tf.Tensor]:
        """In the graph: one gradient step of the actor on `actor_loss`; returns `{"actor_loss": loss}`."""
        loss, _ = self.minimize("actor", lambda: (self.actor_loss(nets, batch.state0), None))
        return {"actor_loss": loss}

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        metrics = {}
        if step.trains("critic"):
            metrics.update(self.train_critic(nets, batch))
            self.update_targets(*(f"target_{role}" for role in self.critic_roles))
        if step.trains("actor"):
            metrics.update(self.train_actor(nets, batch))
            self.update_targets("target_actor")
        return metrics
