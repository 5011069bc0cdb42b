"""On-policy agents on the engine: rollouts, the policy's distribution, advantages, schedules.

`OnPolicyAgent` owns everything between the run loop and an on-policy algorithm's maths. It acts
with a stochastic policy for `n_steps` steps in each environment (one, or every sub-environment
of a gymnasium vector environment: the run loops of `rl.loops` drive it through `forward` /
`backward` or `forward_batch` / `backward_batch`, as they drive the off-policy agents), keeps
those steps in a `rl.memory.RolloutBuffer`, and then learns from them in **one compiled call**:
values, log-probabilities of the actions taken, advantages (GAE(lambda)), and every update the
subclass makes from them. A subclass writes one graph function:

- `update_graph(nets, rollout, schedule) -> {metric: scalar}`: all its updates on a `Rollout`.

The policy is the user's actor network: logits for a `Discrete` action space; for a `Box`, the
means of a Gaussian, with a learned state-independent log standard deviation (an actor of
`nb_actions` outputs) or a state-dependent one (`2 * nb_actions` outputs: means, then log
standard deviations). Actions are sampled inside the compiled call from the agent's seed stream,
so runs are reproducible and checkpoints resume exactly; `test` acts with the mode (the most
likely action, or the mean). Continuous actions are stored as sampled and clipped to the action
space only on their way to the environment.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rl.core import Processor
from rl.engine import DeepAgent, Fields, Nets, ParameterWeights, VariableWeights
from rl.engine.inputs import acting_fields, fit_state_shapes, model_input, pack_states, process_states
from rl.memory.rollout import RolloutBuffer
from rl.util import check_int, check_number

__all__ = ["OnPolicyAgent", "Rollout", "constant_schedule", "linear_schedule"]

_LOG_2PI = math.log(2.0 * math.pi)
LOG_STD_BOUNDS = (-20.0, 2.0)  # a state-dependent log standard deviation is clipped to these


def linear_schedule(start: float, end: float = 0.0) -> Callable[[float], float]:
    """A schedule falling linearly from `start` (when a `fit` begins) to `end` (when it ends).

    A schedule is a function of `progress_remaining`, `1.0` at the start of `fit` and `0.0` at
    its end (as in Stable-Baselines3 and the RL Zoo's `lin_0.001`). Pass one as
    `lr_schedule` or `clip_range`.

    Raises:
        TypeError: if `start` or `end` is not a number.
    """
    start = check_number("start", start)
    end = check_number("end", end)

    def schedule(progress_remaining: float) -> float:
        return end + (start - end) * progress_remaining

    schedule.__name__ = f"linear_schedule({start}, {end})"
    return schedule


def constant_schedule(value: float) -> Callable[[float], float]:
    """The schedule that is always `value`."""
    value = check_number("value", value)
    return lambda progress_remaining: value


def resolve_schedule(name: str, value: Any, low: float = 0.0) -> Callable[[float], float]:
    """`value` (a number >= `low`, or a function of the progress remaining) as a schedule."""
    if callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a number or a schedule (a function). Received: {name}={value!r}")
    return constant_schedule(check_number(name, value, low=low))


class Rollout(NamedTuple):
    """One rollout, flattened to `M = n_steps * n_envs` rows, as `update_graph` receives it.

    Attributes:
        states: the observations acted on, as the networks take them (one tensor, or a list).
        actions: the actions taken, `[M]` (int32) or `[M, nb_actions]`.
        log_probs: their log-probabilities under the policy that gathered them, `[M]`.
        values: the value network's estimates of the states, `[M]`.
        advantages: GAE(lambda) advantages, `[M]`.
        returns: `advantages + values`, the value network's targets, `[M]`.
        valid: `1.0` for steps that count, `0.0` for a vector environment's reset steps, `[M]`.
    """

    states: Any
    actions: tf.Tensor
    log_probs: tf.Tensor
    values: tf.Tensor
    advantages: tf.Tensor
    returns: tf.Tensor
    valid: tf.Tensor


class OnPolicyAgent(DeepAgent):
    """Base class of agents that learn from the rollout they have just gathered, then discard it.

    Args:
        actor: a Keras model from observation(s) to the policy's parameters: `n` logits for a
            `Discrete(n)` action space; for a `Box` of shape `(nb_actions,)`, `nb_actions` means
            (with a learned state-independent log standard deviation) or `2 * nb_actions` units
            (means, then log standard deviations, clipped to `[-20, 2]`).
        critic: a Keras model from the same observation(s) to one value `V(s)`.
        action_space: the environment's action space (`gymnasium.spaces.Discrete` or a `Box`).
        n_steps: steps gathered in each environment before each update. Defaults to `2048`.
        gamma: discount factor in `[0, 1]`. Defaults to `0.99`.
        gae_lambda: GAE's lambda in `[0, 1]` (`1`: Monte-Carlo returns, `0`: one-step TD).
            Defaults to `0.95`.
        lr_schedule: `None` (the optimizer's own learning rate), or a function of the progress
            remaining (`1` to `0` over a `fit`; see `linear_schedule`) that sets every
            optimizer's learning rate before each update. Defaults to `None`.
        log_std_init: initial log standard deviation of a state-independent Gaussian policy.
            Defaults to `0.0`.
        processor, jit_compile, custom_model_objects: see `rl.engine.DeepAgent`.

    Raises:
        TypeError, ValueError: naming the argument, when the models, the action space or a
            setting do not fit.
    """

    weights_roles = ("actor", "critic")

    def __init__(
        self,
        actor: keras.Model,
        critic: keras.Model,
        action_space: Any,
        n_steps: int = 2048,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        lr_schedule: Callable[[float], float] | None = None,
        log_std_init: float = 0.0,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
    ):
        super().__init__(processor=processor, jit_compile=jit_compile, custom_model_objects=custom_model_objects)
        self.discrete, self.nb_actions = _read_action_space(action_space)
        self.action_space = action_space
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0)
        self.gae_lambda = check_number("gae_lambda", gae_lambda, low=0.0, high=1.0)
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(
                f"`lr_schedule` must be a function of the progress remaining, or None. Received: "
                f"lr_schedule={lr_schedule!r}"
            )
        self.lr_schedule = lr_schedule
        self.log_std_init = check_number("log_std_init", log_std_init)
        self.add_network("actor", actor)
        self.add_network("critic", critic)
        self.state_dependent_std = self._check_models(actor, critic)
        roles = ["actor", "critic"]
        if not self.discrete and not self.state_dependent_std:
            self.add_parameter("log_std", np.full(self.nb_actions, self.log_std_init, np.float32))
            roles.append("log_std")
        self.optimizer_groups = {"policy": roles}
        self.action_shape = () if self.discrete else (self.nb_actions,)
        self.buffer: RolloutBuffer | None = None
        self._obs_shape: tuple | None = None
        self._input_shapes: list[tuple] | None = None
        self._last_metrics = np.full(len(self.base_metrics), np.nan, np.float32)
        self._progress = (0, 1)  # (step at which the current fit started, its length), for schedules
        self._pending_actions: np.ndarray | None = None

    # ------------------------------------------------------------------ checks
    def _check_models(self, actor: keras.Model, critic: keras.Model) -> bool:
        """Checks the output widths; returns whether the standard deviation is state-dependent."""
        width = _output_width(actor, "actor")
        if self.discrete:
            if width != self.nb_actions:
                raise ValueError(
                    f"For a Discrete({self.nb_actions}) action space the actor must output {self.nb_actions} logits. "
                    f"Received: actor output width {width}"
                )
            state_dependent = False
        elif width == self.nb_actions:
            state_dependent = False
        elif width == 2 * self.nb_actions:
            state_dependent = True
        else:
            raise ValueError(
                f"For a Box action space of {self.nb_actions} dimension(s) the actor must output {self.nb_actions} "
                f"means or {2 * self.nb_actions} units (means, then log standard deviations). Received: actor "
                f"output width {width}"
            )
        critic_width = _output_width(critic, "critic")
        if critic_width != 1:
            raise ValueError(f"The critic must output one value V(s). Received: critic output width {critic_width}")
        if len(critic.inputs) != len(actor.inputs):
            raise ValueError(
                f"The critic must take the same observation input(s) as the actor ({len(actor.inputs)}). Received: "
                f"critic with {len(critic.inputs)} input(s)"
            )
        return state_dependent

    def check_env(self, env: Any) -> None:
        space = getattr(env, "action_space", None)
        discrete, n = _read_action_space(space, "env.action_space")
        if discrete != self.discrete or n != self.nb_actions:
            raise ValueError(
                f"{type(self).__name__} was built for the action space {self.action_space!r}. Received: "
                f"env.action_space={space!r}"
            )
        obs_space = getattr(env, "observation_space", None)
        if getattr(obs_space, "shape", None) and self.processor is None:
            self.prepare_inputs(np.zeros(obs_space.shape, np.float32), source="env.observation_space.shape")

    def check_rollout(self, n_envs: int) -> None:
        """Subclass hook: raise a `ValueError` if a rollout of `n_steps * n_envs` steps does not fit
        the updates' settings (called when a training run meets its environment(s))."""

    # ------------------------------------------------------------- the graph
    def update_graph(self, nets: Nets, rollout: Rollout, schedule: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: every update made from one rollout; returns the metrics (by name).

        Args:
            nets: the networks by role (`nets.actor`, `nets.critic`).
            rollout: the rollout, see `Rollout`.
            schedule: `[clip_range]`, this update's value of the clip-range schedule.
        """
        raise NotImplementedError

    def distribution(self, nets: Nets, states: Any, training: bool) -> tuple[tf.Tensor, tf.Tensor | None]:
        """In the graph: the policy's parameters for `states`: `(logits, None)` for discrete
        actions, `(means, log_stds)` for continuous ones."""
        out = tf.cast(nets.actor(states, training), tf.float32)
        if self.discrete:
            return out, None
        if self.state_dependent_std:
            mean, log_std = out[:, : self.nb_actions], out[:, self.nb_actions :]
            return mean, tf.clip_by_value(log_std, *LOG_STD_BOUNDS)
        return out, tf.broadcast_to(nets.log_std(None, training), tf.shape(out))

    def log_prob(self, params: tuple, actions: tf.Tensor) -> tf.Tensor:
        """In the graph: the log-probability of `actions` under the distribution `params`, `[B]`."""
        loc, log_std = params
        if self.discrete:
            logp = tf.nn.log_softmax(loc)
            return tf.gather(logp, tf.cast(actions, tf.int32), batch_dims=1)
        z = (actions - loc) * tf.exp(-log_std)
        return -0.5 * tf.reduce_sum(tf.square(z) + 2.0 * log_std + _LOG_2PI, axis=-1)

    def entropy(self, params: tuple) -> tf.Tensor:
        """In the graph: the entropy of the distribution `params`, `[B]`."""
        loc, log_std = params
        if self.discrete:
            logp = tf.nn.log_softmax(loc)
            return -tf.reduce_sum(tf.exp(logp) * logp, axis=-1)
        return tf.reduce_sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def sample(self, params: tuple, seed: tf.Tensor) -> tf.Tensor:
        """In the graph: one action per row drawn from `params` with the stateless `seed`."""
        loc, log_std = params
        if self.discrete:
            return tf.cast(tf.random.stateless_categorical(loc, 1, seed)[:, 0], tf.float32)
        return loc + tf.exp(log_std) * tf.random.stateless_normal(tf.shape(loc), seed)

    def mode(self, params: tuple) -> tf.Tensor:
        """In the graph: the most likely action per row (test-time actions)."""
        loc, _ = params
        if self.discrete:
            return tf.cast(tf.argmax(loc, axis=-1), tf.float32)
        return loc

    def value(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        """In the graph: `V(states)`, `[B]`."""
        return tf.reshape(tf.cast(nets.critic(states, training), tf.float32), [-1])

    def advantages(
        self, rewards: tf.Tensor, values: tf.Tensor, next_values: tf.Tensor, terminated: tf.Tensor, ended: tf.Tensor
    ) -> tf.Tensor:
        """In the graph: GAE(lambda) advantages of a rollout, all `[n_steps, n_envs]`.

        `delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)` and
        `A_t = delta_t + gamma * lambda * (1 - ended_t) * A_{t+1}`: a truncated episode bootstraps
        from its real final observation `s'_t`, and no advantage flows across an episode's end.
        """
        deltas = rewards + self.gamma * (1.0 - terminated) * next_values - values
        decay = self.gamma * self.gae_lambda * (1.0 - ended)

        def step(following: tf.Tensor, x: tuple) -> tf.Tensor:
            delta, d = x
            return delta + d * following

        return tf.scan(step, (deltas, decay), initializer=tf.zeros_like(deltas[0]), reverse=True)

    # --------------------------------------------------------------- compile
    def compile(self, optimizer: Any = "adam", metrics: list | None = None) -> None:
        """Sets the optimizer of the actor, the critic (and a state-independent log std) together.

        Args:
            optimizer: a Keras optimizer or its name; PPO's usual choice is `Adam(3e-4)`
                (`lr_schedule` may change its learning rate during `fit`). Defaults to `"adam"`.
            metrics: not used by on-policy agents (they report their own); must be `None`.
        """
        if metrics:
            raise ValueError(
                f"{type(self).__name__} reports its own metrics ({', '.join(self.base_metrics)}); `metrics` must be "
                f"None. Received: metrics={metrics!r}"
            )
        super().compile(optimizer, None)

    # ---------------------------------------------------------------- inputs
    @property
    def input_shapes(self) -> list[tuple] | None:
        """The networks' input shapes (without the batch axis), known once an observation was seen."""
        return self._input_shapes

    def prepare_inputs(self, observation: Any, source: str = "observation") -> None:
        """Checks an observation against the networks' inputs and records the input shapes."""
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biuf":
            raise TypeError(f"Observations must be numeric arrays. Received: {source} of dtype {obs.dtype}")
        if self._obs_shape == obs.shape and self._input_shapes is not None:
            return
        parts = process_states(self.processor, obs[None, None].astype(np.float32))
        shapes = fit_state_shapes(
            parts,
            self.models["actor"].inputs,
            obs_shape=obs.shape,
            window_length=1,
            drop_window=self.processor is None,
            network="actor",
            received=source,
        )
        fit_state_shapes(
            parts,
            self.models["critic"].inputs,
            obs_shape=obs.shape,
            window_length=1,
            drop_window=self.processor is None,
            network="critic",
            received=source,
        )
        if self._input_shapes is not None and shapes != self._input_shapes:
            self.retrace()
        self._obs_shape, self._input_shapes = obs.shape, shapes

    def _states(self, observations: np.ndarray) -> list[np.ndarray]:
        """Observations `[B, *obs]` as the networks' input parts (through the processor's batching)."""
        parts = process_states(self.processor, observations[:, None])
        return [p.reshape((p.shape[0],) + s) for p, s in zip(parts, self._input_shapes)]

    # ------------------------------------------------------------- acting
    def _act_function(self, training: bool, n: int):
        fields = acting_fields(self._input_shapes, n)
        if training:
            nets = self.nets
        else:  # outside training the networks' own variables hold the weights (pushed when fit ends)
            nets = Nets({r: VariableWeights(m) for r, m in self.models.items()})
            for role, variable in self.parameters.items():
                nets[role] = ParameterWeights(variable)

        def act(flat: tf.Tensor) -> tf.Tensor:
            states = model_input(fields.unpack(flat)["state"])
            params = self.distribution(nets, states, False)
            action = self.sample(params, self.seed_stream.next()) if training else self.mode(params)
            return tf.reshape(tf.cast(action, tf.float32), [-1])

        return act

    def forward(self, observation: Any) -> Any:
        """Returns the action for one observation: sampled while training, the mode in `test`."""
        actions = self.forward_batch(np.asarray(observation)[None])
        return actions[0]

    def forward_batch(self, observations: np.ndarray, noise: Any = None) -> np.ndarray:
        """Returns one action per observation `[N, *obs]` (one per sub-environment), in one compiled call.

        While training, the observations and the sampled actions go into the rollout.

        Args:
            observations: the (processed) observations, `[N, *obs_shape]`.
            noise: not used (the policy samples its own actions); must be `None`.

        Returns:
            `[N]` integer actions for a discrete action space, `[N, nb_actions]` otherwise.
        """
        if noise is not None:
            raise ValueError(
                f"{type(self).__name__} samples its own exploration; `noise` must be None. Received: noise={noise!r}"
            )
        observations = np.asarray(observations)
        n = observations.shape[0]
        if self._input_shapes is None or observations.shape[1:] != self._obs_shape:
            self.prepare_inputs(observations[0])
        if self.training != self._pulled and self.flat_weights:
            # Outside `fit` (a hand-written loop): move the weights where this call reads them.
            self._pull() if self.training else self._push()
        training = self.training
        flat = pack_states(self._states(observations))
        out = self.call_compiled("act", (training, n), lambda: self._act_function(training, n), flat, may_use_xla=False)
        actions = out.astype(np.int64) if self.discrete else out.reshape(n, self.nb_actions)
        if training:
            buffer = self._rollout_buffer(n)
            buffer.add_action(observations, actions)
            self._pending_actions = actions
        return actions

    def _rollout_buffer(self, n_envs: int) -> RolloutBuffer:
        buffer = self.buffer
        if buffer is None or not buffer.fits(n_envs, self._obs_shape, self.action_shape):
            if buffer is not None and buffer.pos > 0:
                warnings.warn(
                    f"{type(self).__name__} drops the {buffer.pos} step(s) of its unfinished rollout: they were "
                    f"gathered in {buffer.n_envs} environment(s) and this run has {n_envs}.",
                    stacklevel=4,
                )
            self.check_rollout(n_envs)
            buffer = self.buffer = RolloutBuffer(
                self.n_steps, n_envs, self._obs_shape, self.action_shape, np.int64 if self.discrete else np.float32
            )
        return buffer

    # ------------------------------------------------------------ learning
    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Stores the outcome of the last step; after `n_steps` steps, learns from the rollout.

        Returns:
            The metrics of the last update (NaN before the first), then the processor's.
        """
        if not self.training:
            return self._metrics_list()
        if next_observation is None:
            raise ValueError(
                f"{type(self).__name__} needs the observation after each step to bootstrap truncated episodes. "
                "Received: next_observation=None"
            )
        return self.backward_batch(
            np.array([reward], np.float64),
            np.array([terminal]),
            np.array([truncated]),
            np.asarray(next_observation)[None],
            np.array([True]),
        )

    def backward_batch(
        self,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_observations: np.ndarray,
        stored: np.ndarray,
        updates: int | None = None,
    ) -> list[float]:
        """Stores the outcome of the last `forward_batch`'s steps; learns when the rollout is full.

        Args:
            rewards, terminated, truncated: the step's outcome per sub-environment, `[N]`.
            next_observations: the observation after each step (an episode's final one where it
                ended), `[N, *obs_shape]`.
            stored: which rows are real steps (`False` for a vector environment's reset steps).
            updates: `fit`'s `updates_per_vector_step`: on-policy agents update once per rollout,
                so it must be `None`.
        """
        if updates is not None:
            raise ValueError(
                f"{type(self).__name__} updates once per rollout of n_steps={self.n_steps} steps per environment; "
                f"`updates_per_vector_step` must be None. Received: updates_per_vector_step={updates!r}"
            )
        if not self.training:
            return self._metrics_list()
        if self._pending_actions is None:
            raise ValueError(f"{type(self).__name__}.backward_batch was called without a forward_batch before it.")
        self._pending_actions = None
        terminated = np.asarray(terminated, bool)
        ended = terminated | np.asarray(truncated, bool)
        buffer = self.buffer
        buffer.add_outcome(rewards, terminated, ended, next_observations, np.asarray(stored, bool))
        if buffer.full:
            self._update()
        return self._metrics_list()

    def _metrics_list(self) -> list[float]:
        extra = list(self.processor.metrics) if self.processor is not None else []
        return [float(x) for x in self._last_metrics] + extra

    @property
    def last_metrics(self) -> np.ndarray:
        """The metrics of the last update, in `base_metrics` order (NaN before the first)."""
        return self._last_metrics.copy()

    def progress_remaining(self, steps_done: int = 0) -> float:
        """`1.0` at the start of the current `fit`, `0.0` at its end (what schedules receive)."""
        start, length = self._progress
        return float(min(1.0, max(0.0, 1.0 - (self.step + steps_done - start) / length)))

    def plan_run(self, end_step: int) -> None:
        super().plan_run(end_step)
        self._progress = (self.step, max(1, end_step - self.step))

    def schedule_values(self, progress: float) -> np.ndarray:
        """Subclass hook: the values of its schedules at `progress` (the graph's `schedule` input)."""
        return np.zeros(1, np.float32)

    def _update(self) -> None:
        buffer = self.buffer
        progress = self.progress_remaining(int(buffer.valid[-1].sum()))
        if self.lr_schedule is not None:
            lr = check_number("lr_schedule(progress_remaining)", self.lr_schedule(progress), low=0.0)
            for opt in self.optimizers.values():
                opt.learning_rate.assign(lr)
        t, n = buffer.n_steps, buffer.n_envs
        m = t * n
        fields = self._train_fields(t, n)
        flat = np.empty(fields.size, np.float32)
        obs = buffer.observations.reshape((m,) + buffer.obs_shape)
        next_obs = buffer.next_observations.reshape((m,) + buffer.obs_shape)
        for name, source in (("state", obs), ("next_state", next_obs)):
            for view, part in zip(fields.view(flat, name), self._states(source)):
                view[:] = part
        fields.view(flat, "actions")[:] = buffer.actions.reshape(fields.shape("actions"))
        for name in ("rewards", "terminated", "ended", "valid"):
            fields.view(flat, name)[:] = getattr(buffer, name)
        fields.view(flat, "schedule")[:] = self.schedule_values(progress)
        out = self.call_compiled("train", (t, n), lambda: self._train_function(t, n), flat)
        self._last_metrics = out
        buffer.clear()

    def _train_fields(self, t: int, n: int) -> Fields:
        m = t * n
        states = [(m,) + s for s in self._input_shapes]
        return Fields(
            [
                ("state", states),
                ("next_state", states),
                ("actions", (m,) + self.action_shape),
                ("rewards", (t, n)),
                ("terminated", (t, n)),
                ("ended", (t, n)),
                ("valid", (t, n)),
                ("schedule", (len(self.schedule_values(1.0)),)),
            ]
        )

    def _train_function(self, t: int, n: int):
        fields = self._train_fields(t, n)
        nets = self.nets

        def train(flat: tf.Tensor) -> tf.Tensor:
            parts = fields.unpack(flat)
            states, next_states = model_input(parts["state"]), model_input(parts["next_state"])
            actions = parts["actions"]
            values = self.value(nets, states, False)
            next_values = self.value(nets, next_states, False)
            log_probs = self.log_prob(self.distribution(nets, states, False), actions)
            valid = parts["valid"]
            advantages = self.advantages(
                parts["rewards"] * valid,
                tf.reshape(values, [t, n]) * valid,
                tf.reshape(next_values, [t, n]) * valid,
                parts["terminated"],
                parts["ended"],
            )
            advantages = tf.reshape(advantages, [-1])
            rollout = Rollout(
                states=states,
                actions=tf.cast(actions, tf.int32) if self.discrete else actions,
                log_probs=tf.stop_gradient(log_probs),
                values=tf.stop_gradient(values),
                advantages=tf.stop_gradient(advantages),
                returns=tf.stop_gradient(advantages + values),
                valid=tf.reshape(valid, [-1]),
            )
            return self._metric_vector(self.update_graph(nets, rollout, parts["schedule"]))

        return train

    # --------------------------------------------------------------- the run
    def abandon_episode(self) -> None:
        """A training run stopped mid-episode: the rollout's last steps end there (they bootstrap
        from the value of the observation after them, as a time limit does), so that the next
        run's first episode does not flow into them."""
        buffer = self.buffer
        if self.training and buffer is not None and buffer.pos > 0:
            buffer.ended[buffer.pos - 1] |= buffer.valid[buffer.pos - 1]
        self._pending_actions = None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            action_space=repr(self.action_space),
            n_steps=self.n_steps,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            lr_schedule=None if self.lr_schedule is None else getattr(self.lr_schedule, "__name__", "schedule"),
            log_std_init=self.log_std_init,
            actor=self.models["actor"].get_config(),
            critic=self.models["critic"].get_config(),
        )
        return config

    # ----------------------------------------------------------------- export
    def serving_policy(self) -> Any:
        """The test-mode policy as one graph function, for `export` (see `rl.export`): the most likely
        action (`action`, int32) for a discrete space; the mean clipped to the `Box`'s bounds
        otherwise. Only the actor (and a state-independent log std, unused) goes into the artifact.

        Raises:
            ValueError: if the agent has not seen an observation yet, or its processor batches
                states in Python only.
        """
        from rl.engine.inputs import export_states
        from rl.export import ServingPolicy, processor_metadata  # imported here: loaded only when exporting

        if self._input_shapes is None:
            raise ValueError(
                f"{type(self).__name__} has not seen an observation yet, so its input shapes are unknown: call "
                f"fit or test first (or forward on an observation). Received: agent={self!r}"
            )
        shapes, processor, obs_shape = list(self._input_shapes), self.processor, tuple(self._obs_shape)
        export_states(processor, tf.zeros((1, 1) + obs_shape, tf.float32))  # refuses early
        nets = Nets({"actor": VariableWeights(self.models["actor"])})
        low = high = None
        if not self.discrete:
            low = np.asarray(self.action_space.low, np.float32)
            high = np.asarray(self.action_space.high, np.float32)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                low = high = None

        def function(observations: tf.Tensor) -> dict[str, tf.Tensor]:
            processed = export_states(processor, observations[:, None])
            parts = [tf.reshape(tf.cast(p, tf.float32), (-1,) + s) for p, s in zip(processed, shapes)]
            out = tf.cast(nets.actor(model_input(parts), False), tf.float32)
            if self.discrete:
                return {"action": tf.cast(tf.argmax(out, axis=-1), tf.int32)}
            mean = out[:, : self.nb_actions]
            if low is not None:
                mean = tf.minimum(tf.maximum(mean, low), high)
            return {"action": mean}

        metadata = {
            "agent": type(self).__name__,
            "observation_shape": list(obs_shape),
            "window_length": 1,
            "nb_actions": self.nb_actions,
            "action_low": None if low is None else low.tolist(),
            "action_high": None if high is None else high.tolist(),
            "discrete": self.discrete,
            "outputs": ["action"],
            "processor": processor_metadata(processor),
        }
        return ServingPolicy(function, obs_shape, [self.models["actor"]], metadata)

    # ----------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        buffer = self.buffer
        rollout = None
        if buffer is not None:
            rollout = {
                "n_envs": buffer.n_envs,
                "obs_shape": list(buffer.obs_shape),
                "pos": buffer.pos,
            }
        return {
            "rollout": rollout,
            "progress": list(self._progress),
            "last_metrics": [None if not np.isfinite(x) else float(x) for x in self._last_metrics],
        }

    def validate_checkpoint_state(self, state: dict) -> None:
        rollout = state.get("rollout")
        if rollout is not None and not (isinstance(rollout, dict) and {"n_envs", "obs_shape", "pos"} <= set(rollout)):
            raise ValueError(f"The checkpoint's rollout record is invalid. Received: rollout={rollout!r}")
        progress = state.get("progress")
        if not (isinstance(progress, list) and len(progress) == 2):
            raise ValueError(f"The checkpoint's progress record is invalid. Received: progress={progress!r}")
        metrics = state.get("last_metrics")
        if not (isinstance(metrics, list) and len(metrics) == len(self.base_metrics)):
            raise ValueError(f"The checkpoint's last_metrics record is invalid. Received: last_metrics={metrics!r}")

    def save_checkpoint_files(self, folder: str) -> dict:
        state = super().save_checkpoint_files(folder)
        if self.buffer is not None:
            self.buffer.save(os.path.join(folder, "rollout.npz"))
        return state

    def read_checkpoint_files(self, folder: str, state: dict) -> dict:
        staged = super().read_checkpoint_files(folder, state)
        rollout = state["rollout"]
        staged["rollout"] = None
        if rollout is not None:
            path = os.path.join(folder, "rollout.npz")
            arrays = RolloutBuffer.read(path)
            buffer = RolloutBuffer(
                self.n_steps,
                int(rollout["n_envs"]),
                tuple(rollout["obs_shape"]),
                self.action_shape,
                np.int64 if self.discrete else np.float32,
            )
            buffer.check(arrays, path)
            staged["rollout"] = (buffer, arrays)
        return staged

    def apply_checkpoint_files(self, staged: dict) -> None:
        super().apply_checkpoint_files(staged)
        state = staged["state"]
        if staged["rollout"] is None:
            self.buffer = None
        else:
            buffer, arrays = staged["rollout"]
            buffer.restore(arrays)
            self.buffer = buffer
        self._progress = (int(state["progress"][0]), int(state["progress"][1]))
        self._last_metrics = np.array([np.nan if x is None else x for x in state["last_metrics"]], np.float32)
        self._pending_actions = None


def _output_width(model: Any, role: str) -> int:
    if not isinstance(model, keras.Model):
        raise TypeError(f"`{role}` must be a Keras model. Received: {role}={model!r}")
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        shapes = [tuple(o.shape) for o in model.outputs]
        raise ValueError(f"The {role} must have one output of shape (batch, units). Received: {role} outputs {shapes}")
    return int(model.outputs[0].shape[-1])


def _read_action_space(space: Any, name: str = "action_space") -> tuple[bool, int]:
    """`(discrete, nb_actions)` of a `Discrete` or 1-D `Box` space (read by duck typing)."""
    n = getattr(space, "n", None)
    shape = getattr(space, "shape", None)
    if n is not None and not shape:
        try:
            n = int(n)
        except (TypeError, ValueError):
            n = None
        if n is not None and n >= 1 and getattr(space, "start", 0) == 0:
            return True, n
    if n is None and shape is not None and len(shape) == 1 and hasattr(space, "low") and hasattr(space, "high"):
        if np.issubdtype(np.dtype(getattr(space, "dtype", np.float32)), np.floating):
            return False, int(shape[0])
    raise TypeError(
        f"`{name}` must be a gymnasium Discrete space (starting at 0) or a one-dimensional float Box. Received: "
        f"{name}={space!r} of type {type(space).__module__}.{type(space).__name__}"
    )
