"""`ActorCriticAgent`: an actor and critics `Q(s, a)` that take the action through an input of their own."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rl.agents.off_policy import OffPolicyAgent
from rl.engine import Nets
from rl.util import check_int

__all__ = ["ActorCriticAgent"]


class ActorCriticAgent(OffPolicyAgent):
    """An off-policy agent with an actor and critics `Q(s, a)` that take the action through an input.

    Registers the networks `"actor"`, `"critic"` (and `"critic2"`, ... with `n_critics > 1`) and
    their targets `"target_actor"`, `"target_critic"`, ...; optimizer groups `"actor"` and
    `"critic"` (all critics together). `q(nets, role, states, action)` calls a critic. A subclass
    without target networks (CrossQ) sets the class attribute `uses_target_networks = False`:
    then no target is registered, whatever `target_actor` says.

    Args:
        actor: Keras model from observation(s) to `actor_units` outputs.
        critic: a Keras model from `[action, observation(s)]` (any input order) to one Q-value,
            or a list of `n_critics` such models.
        critic_action_input: the `keras.Input` of `critic` that receives the action (a list with
            one per critic when `critic` is a list).
        n_critics: number of critics; extra ones are clones of `critic` with fresh weights.
        actor_units: the actor's output width. Defaults to `nb_actions`.
        target_actor: whether the actor gets a target network. Defaults to `True`.
        **kwargs: `OffPolicyAgent`'s arguments.
    """

    optimizer_groups = {"actor": ["actor"], "critic": ["critic"]}
    uses_target_networks = True  # False: no target actor or critics are registered

    def __init__(
        self,
        actor: keras.Model,
        critic: keras.Model | list[keras.Model],
        critic_action_input: Any,
        n_critics: int = 1,
        actor_units: int | None = None,
        target_actor: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        n_critics = check_int("n_critics", n_critics, minimum=1)
        critics, action_inputs = self._critic_list(critic, critic_action_input, n_critics)
        units = self.nb_actions if actor_units is None else actor_units
        self.add_network("actor", actor)
        if len(actor.outputs) != 1 or tuple(actor.outputs[0].shape[1:]) != (units,):
            raise ValueError(
                f"The actor must have a single output of shape (None, {units}) (nb_actions={self.nb_actions}). "
                f"Received: actor.outputs={[tuple(o.shape) for o in actor.outputs]}"
            )
        self.critic_roles = ["critic"] + [f"critic{i + 1}" for i in range(1, n_critics)]
        self._action_index: dict[str, int] = {}
        for role, model, action_input in zip(self.critic_roles, critics, action_inputs):
            self.add_network(role, model)
            self._action_index[role] = self._check_critic(role, model, action_input, len(actor.inputs))
        if self.uses_target_networks:
            if target_actor:
                self.add_target("target_actor", "actor")
            for role in self.critic_roles:
                self.add_target(f"target_{role}", role)
        self.optimizer_groups = {"actor": ["actor"], "critic": list(self.critic_roles)}
        self.weights_roles = ("actor", *self.critic_roles)
        self.actor = actor
        self.critic = critics[0]
        self.critic_action_input = action_inputs[0]

    def _critic_list(self, critic: Any, action_input: Any, n: int) -> tuple[list, list]:
        if isinstance(critic, (list, tuple)):
            if not isinstance(action_input, (list, tuple)) or len(action_input) != len(critic):
                raise ValueError(
                    "With a list of critics, `critic_action_input` must list each critic's action input. "
                    f"Received: {len(critic)} critics, critic_action_input={action_input!r}"
                )
            if n not in (1, len(critic)):
                raise ValueError(f"`n_critics` must match the list of critics ({len(critic)}). Received: n_critics={n}")
            return list(critic), list(action_input)
        if isinstance(action_input, (list, tuple)):
            raise ValueError(
                "`critic_action_input` is a list but `critic` is one model. "
                f"Received: critic_action_input={action_input!r}"
            )
        if not isinstance(critic, keras.Model):
            raise TypeError(f"`critic` must be a Keras model. Received: critic={critic!r}")
        index = [i for i, t in enumerate(critic.inputs) if t is action_input]
        critics, inputs = [critic], [action_input]
        for _ in range(1, n):
            with keras.saving.custom_object_scope(self.custom_model_objects):
                clone = keras.models.clone_model(critic)  # the same architecture, fresh weights
            critics.append(clone)
            inputs.append(clone.inputs[index[0]] if index else action_input)
        return critics, inputs

    def _check_critic(self, role: str, critic: keras.Model, action_input: Any, nb_obs_inputs: int) -> int:
        index = [i for i, t in enumerate(critic.inputs) if t is action_input]
        if not index:
            raise ValueError(
                f"`critic_action_input` must be one of the {role}'s inputs (the very `keras.Input` passed to it). "
                f"Received: critic_action_input={action_input!r}, {role}.inputs={critic.inputs}"
            )
        if len(critic.outputs) != 1 or tuple(critic.outputs[0].shape[1:]) != (1,):
            raise ValueError(
                f"The {role} must have a single output of shape (None, 1). "
                f"Received: {role}.outputs={[tuple(o.shape) for o in critic.outputs]}"
            )
        if tuple(action_input.shape[1:]) != (self.nb_actions,):
            raise ValueError(
                f"`critic_action_input` must have shape (None, {self.nb_actions}). "
                f"Received: critic_action_input.shape={tuple(action_input.shape)}"
            )
        if len(critic.inputs) - 1 != nb_obs_inputs:
            raise ValueError(
                f"The {role} must take the same observation inputs as the actor plus the action: the actor has "
                f"{nb_obs_inputs} input(s), the {role} {len(critic.inputs)}. Received: {role}.inputs={critic.inputs}"
            )
        return index[0]

    def policy_models(self) -> list[keras.Model]:
        return [self.models["actor"]] + [self.models[r] for r in self.critic_roles]

    def _observation_inputs_of_others(self, k: int) -> list:
        out = []
        for role in self.critic_roles:
            obs_inputs = [t for i, t in enumerate(self.models[role].inputs) if i != self._action_index[role]]
            out.append(obs_inputs[k])
        return out

    def q(self, nets: Nets, role: str, states: Any, action: tf.Tensor, training: bool = False) -> tf.Tensor:
        """In the graph: critic `role` (or its target, `"target_" + role`) at `(states, action)`, `[B]`."""
        inputs = list(states) if isinstance(states, (list, tuple)) else [states]
        inputs.insert(self._action_index[role.removeprefix("target_")], action)
        return nets[role](inputs, training=training)[:, 0]

    @property
    def actor_optimizer(self) -> keras.optimizers.Optimizer:
        """The actor's optimizer (set by `compile`)."""
        return self.optimizers["actor"]

    @property
    def critic_optimizer(self) -> keras.optimizers.Optimizer:
        """The critics' optimizer (set by `compile`)."""
        return self.optimizers["critic"]

    @property
    def target_actor(self) -> keras.Model:
        """The actor's target network."""
        return self.models["target_actor"]

    @property
    def target_critic(self) -> keras.Model:
        """The (first) critic's target network."""
        return self.models["target_critic"]
