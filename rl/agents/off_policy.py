"""Off-policy agents on the engine: replay, warm-up, intervals, target updates, noise, action bounds,
and the fused act-and-train call.

`OffPolicyAgent` owns everything between the episode loop and an algorithm's maths. A subclass
registers its networks (see `rl.engine.DeepAgent`), and writes two graph functions:

- `act_graph(nets, states, training) -> actions [B, A]`: the action (before the exploration noise
  of `random_process` and the clipping to the action space, which this class adds);
- `train_step(nets, batch, step) -> {metric: scalar}`: one gradient update on a `GraphBatch`.
  Its TD losses average over the batch with `weighted_mean(x, batch)`, and it adds
  `td_errors(batch, y - q)` to its metrics, so that a prioritized memory
  (`rl.memory.PrioritizedMemory`) weights the loss and gets each transition's TD error back.

`rl.agents.actor_critic.ActorCriticAgent` adds what DDPG, TD3 and SAC share: an actor and one
or more critics taking the action through an input of their own.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.agents.offline import OfflineTraining
from rl.core import Processor
from rl.engine import DeepAgent, Fields, Nets
from rl.engine.batch import GraphBatch, TrainOptions, UpdateStep
from rl.engine.dataset import GraphDataset
from rl.engine.inputs import (
    acting_fields,
    export_states,
    fit_state_shapes,
    fits,
    model_input,
    pack_states,
    process_states,
    state_fields,
)
from rl.memory import ObservationWindow, TransitionRows
from rl.random import RandomProcess
from rl.util import check_int, check_number

__all__ = ["GraphBatch", "OffPolicyAgent", "UpdateStep", "huber", "resolve_delta_clip"]


class OffPolicyAgent(OfflineTraining, DeepAgent):
    """Base class of agents that learn from a replay memory while they act.

    Each environment step is one compiled call: the training that `backward` scheduled (its
    `gradient_steps` updates, then a hard target copy if one is due) runs fused with the next
    `forward`, which then picks the action with the networks just updated. `backward` therefore
    reports the metrics of the previous training call.

    Args:
        nb_actions: size of the action vector, >= 1.
        memory: replay memory, typically `rl.memory.SequentialMemory` (`rl.memory.MixedMemory`
            to fine-tune online beside a dataset).
        gamma: discount factor in `[0, 1]`.
        batch_size: transitions per gradient step, in `[1, memory.limit]`.
        warmup: `{optimizer group: steps}`: a group trains from the step after its warm-up.
        train_interval: train every this many steps.
        memory_interval: store every this many steps.
        target_model_update: `< 1`: soft update with this `tau` after each update; `>= 1`: hard
            copy every `int(target_model_update)` steps.
        gradient_steps: gradient steps per training call, each on its own batch.
        random_process: exploration noise added to actions while training, or `None`.
        nb_steps_random: the first this many training steps act uniformly at random (see
            `random_actions`) instead of with the policy, to fill the memory with varied
            experience before training starts.
        processor, jit_compile, custom_model_objects: see `rl.engine.DeepAgent`.
    """

    update_cycle = 1  # updates repeat their pattern with this period (TD3: the policy delay)

    @property
    def stored_action_size(self) -> int:
        """Subclass hook: the width of an action as the memory stores it and `GraphBatch.action` holds it.

        `nb_actions` for continuous actions; value-based agents store one integer action (1).
        """
        return self.nb_actions

    def __init__(
        self,
        nb_actions: int,
        memory: Any,
        gamma: float,
        batch_size: int,
        warmup: dict[str, int],
        train_interval: int = 1,
        memory_interval: int = 1,
        target_model_update: float = 0.001,
        gradient_steps: int = 1,
        random_process: RandomProcess | None = None,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
        nb_steps_random: int = 0,
    ):
        super().__init__(processor=processor, jit_compile=jit_compile, custom_model_objects=custom_model_objects)
        self.nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        if not (hasattr(memory, "append") and hasattr(memory, "sample")):
            raise TypeError(f"`memory` must be a replay memory such as SequentialMemory. Received: memory={memory!r}")
        self.memory = memory
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        limit = getattr(memory, "limit", None)
        if limit is not None and self.batch_size > limit:
            raise ValueError(
                f"`batch_size` cannot exceed the memory's limit ({limit}). Received: batch_size={batch_size}"
            )
        self.warmup = {group: check_int(f"warmup[{group!r}]", n, minimum=0) for group, n in warmup.items()}
        self.train_interval = check_int("train_interval", train_interval, minimum=1)
        self.gradient_steps = check_int("gradient_steps", gradient_steps, minimum=1)
        self.memory_interval = check_int("memory_interval", memory_interval, minimum=1)
        self.target_model_update = check_number(
            "target_model_update", target_model_update, low=0.0, low_inclusive=False
        )
        if self.target_model_update >= 1:
            self.target_model_update = float(int(self.target_model_update))
        self._tau = self.target_model_update if self.target_model_update < 1 else None
        if random_process is not None:
            if not hasattr(random_process, "sample"):
                raise TypeError(
                    f"`random_process` must have a `sample()` method. Received: random_process={random_process!r}"
                )
            size = getattr(random_process, "size", self.nb_actions)
            if size != self.nb_actions:
                raise ValueError(
                    f"The random process's `size` must equal `nb_actions` ({self.nb_actions}). "
                    f"Received: random_process.size={size}"
                )
        self.random_process = random_process
        self.nb_steps_random = check_int("nb_steps_random", nb_steps_random, minimum=0)
        if getattr(memory, "n_step", 1) > 1:
            if getattr(memory, "gamma", None) is None:
                memory.gamma = self.gamma  # the n-step sums discount as the agent does
            elif memory.gamma != self.gamma:
                raise ValueError(
                    f"An n-step memory's `gamma` must equal the agent's ({self.gamma}). "
                    f"Received: memory.gamma={memory.gamma}"
                )
        self._dataset: GraphDataset | None = None  # fit_offline's data in the graph
        self._priority_indices: list[np.ndarray] = []  # the slots of the batches packed for the next call
        self.window_length = int(getattr(memory, "window_length", 1))
        if self.window_length > 1 and self.memory_interval > 1:
            raise ValueError(
                "`memory_interval` > 1 stores steps that are not consecutive, so observation windows "
                f"(window_length={self.window_length}) cannot be rebuilt from memory. "
                f"Received: memory_interval={memory_interval}"
            )
        self._window = ObservationWindow(self.window_length)
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None
        self._obs_shape: tuple | None = None
        self._input_shapes: list[tuple] | None = None  # model-side shape of each observation input
        self._sample_into = False  # whether the memory writes training batches straight into the packed input
        self._act_fields: Fields | None = None
        self._train_fields: Fields | None = None
        self._batch_fields: dict[tuple, tuple[Fields, Fields]] = {}  # forward_batch's layouts, by size
        # Crosses calls: the training call `backward` scheduled, run fused with the next
        # `forward` (None when nothing is due), and the number of updates scheduled so far.
        self._scheduled: TrainOptions | None = None
        self._updates = 0
        self._last_metrics = np.full(len(self.base_metrics), np.nan, dtype=np.float32)
        self.recent_observation: Any = None
        self.recent_action: np.ndarray | None = None
        # forward_batch's observations and actions, one row per sub-environment, for backward_batch.
        self.recent_observations: np.ndarray | None = None
        self.recent_actions: np.ndarray | None = None

    # --------------------------------------------------- the algorithm's part
    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        """In the graph: the actions `[B, A]` for `states` (before noise and clipping)."""
        raise NotImplementedError

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        """In the graph: one gradient update on `batch`; returns its metrics by name."""
        raise NotImplementedError

    def policy_models(self) -> list[keras.Model]:
        """The networks that take observations, first the one that acts (for input-shape checks)."""
        raise NotImplementedError

    @staticmethod
    def weighted_mean(x: tf.Tensor, batch: GraphBatch) -> tf.Tensor:
        """In the graph: the mean of the per-transition losses `x` `[B]`, weighted by `batch.weight`.

        Args:
            x: per-transition values, `[B]`.
            batch: the batch they come from.

        Returns:
            `mean(x)` when `batch.weight` is `None`, else `mean(batch.weight * x)`.
        """
        if batch.weight is None:
            return tf.reduce_mean(x)
        return tf.reduce_mean(tf.cast(batch.weight, x.dtype) * x)

    @staticmethod
    def td_errors(batch: GraphBatch, td: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: `{"td_error": |td|}` for a prioritized memory's batch, else `{}`.

        Merge it into `train_step`'s metrics; the agent hands the values to
        `memory.update_priorities` after the training call.

        Args:
            batch: the batch trained on.
            td: its TD errors `y - Q(s, a)`, `[B]`.

        Returns:
            A dict to merge into the step's metrics.
        """
        return {} if batch.weight is None else {"td_error": tf.abs(td)}

    @property
    def prioritized(self) -> bool:
        """Whether the memory takes priorities (has `update_priorities`, as `PrioritizedMemory`)."""
        return callable(getattr(self.memory, "update_priorities", None))

    # ----------------------------------------------------------------- setup
    def compile(self, optimizer: Any, metrics: list | None = None) -> None:
        super().compile(optimizer, metrics)
        self._last_metrics = np.full(len(self.base_metrics) + len(self._metric_fns), np.nan, dtype=np.float32)
        self._act_fields = self._train_fields = None

    def get_config(self) -> dict[str, Any]:
        config = {
            "nb_actions": self.nb_actions,
            "gamma": self.gamma,
            "batch_size": self.batch_size,
            "train_interval": self.train_interval,
            "gradient_steps": self.gradient_steps,
            "memory_interval": self.memory_interval,
            "target_model_update": self.target_model_update,
            "nb_steps_random": self.nb_steps_random,
            "jit_compile": self._jit_setting,
            **{role: self.models[role].name for role in self.weights_roles},
        }
        if hasattr(self.memory, "get_config"):
            config["memory"] = self.memory.get_config()
        if self.random_process is not None and hasattr(self.random_process, "get_config"):
            config["random_process"] = {
                "class_name": type(self.random_process).__name__,
                "config": self.random_process.get_config(),
            }
        return config

    def reset_states(self) -> None:
        """Resets the noise process, the observation window and stateful layers (each episode)."""
        super().reset_states()
        if self.random_process is not None and hasattr(self.random_process, "reset_states"):
            self.random_process.reset_states()
        self._window.reset()
        self.recent_observation = None
        self.recent_action = None

    def check_env(self, env: Any) -> None:
        space = getattr(env, "action_space", None)
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(
                f"{type(self).__name__} needs a continuous action space (gymnasium.spaces.Box). "
                f"Received: env.action_space={space!r}"
            )
        if space.shape != (self.nb_actions,):
            raise ValueError(
                f"The action space's shape must be (nb_actions,) = ({self.nb_actions},). "
                f"Received: env.action_space.shape={space.shape}"
            )
        maps_actions = (
            self.processor is not None and type(self.processor).process_action is not Processor.process_action
        )
        finite = bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)))
        if not finite and not maps_actions:
            raise ValueError(
                f"{type(self).__name__} needs a bounded action space to clip its actions to (or a Processor whose "
                f"process_action maps actions). Received: env.action_space={space!r}"
            )
        if finite and not maps_actions:
            self.set_action_bounds(space.low.astype(np.float32), space.high.astype(np.float32))
        else:
            self.set_action_bounds(None, None)
        obs_space = getattr(env, "observation_space", None)
        if self.processor is None and isinstance(obs_space, gym.spaces.Box):
            self.prepare_inputs(np.zeros(obs_space.shape, dtype=obs_space.dtype), source="env.observation_space.shape")

    @property
    def transition_rows(self) -> TransitionRows:
        """The layout of the transition rows the memory stores and training batches carry:
        `[action..., reward, terminal]`, `stored_action_size + 2` wide."""
        return TransitionRows(self.stored_action_size)

    @property
    def last_metrics(self) -> np.ndarray:
        """The metrics of the most recent training call, in `train_metrics_names` order (NaN before
        the first, and where the call computed none)."""
        return self._last_metrics

    @property
    def action_bounds(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """`(low, high)`: the float32 bounds actions are clipped to, `(None, None)` when unknown or
        unbounded. Set by `check_env` from a bounded `Box` (unless a processor maps actions), by
        `fit_offline(action_space=...)`, or by `set_action_bounds`. Graphs may read them as
        constants (SAC scales its squashed actions to them, TD3 clips its target actions)."""
        return self._low, self._high

    def set_action_bounds(self, low: np.ndarray | None, high: np.ndarray | None) -> None:
        """Records the bounds actions are clipped to (`None`: not clipped); retraces the compiled
        functions if they changed."""
        changed = (low is None) != (self._low is None) or (
            low is not None and not (np.array_equal(low, self._low) and np.array_equal(high, self._high))
        )
        self._low, self._high = low, high
        if changed:
            self.retrace()  # the graphs may read the bounds (e.g. SAC's squashing)

    def _process_states(self, states: np.ndarray) -> list[np.ndarray]:
        return process_states(self.processor, states)

    @property
    def input_shapes(self) -> list[tuple] | None:
        """The model-side shape of each observation input (without the batch axis), or `None`
        before the agent has seen an observation (`check_env`, `prepare_inputs` or `forward`)."""
        return self._input_shapes

    def prepare_inputs(self, observation: Any, source: str = "observation") -> list[np.ndarray] | None:
        """Checks an observation against the networks' inputs and records the input shapes.

        The shapes are learned from the state the observation starts (the processor, if any, sees
        that real state, never made-up data). Returns that processed state, which `forward`
        reuses, or `None` when the shapes were known already.
        """
        if isinstance(observation, (dict, tuple, list)) and self.processor is None:
            raise TypeError(
                f"{type(self).__name__}'s networks take arrays: a {type(observation).__name__} observation needs a "
                "Processor whose process_observation returns one array, such as rl.processors.MultiInputProcessor for "
                "a network with one input per part (see rl.core.Processor). "
                f"Received: {source} of type {type(observation).__name__}"
            )
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biuf":
            raise TypeError(
                f"Observations must be numeric arrays. Received: {source} of dtype {obs.dtype} ({observation!r:.100})"
            )
        if self._obs_shape == obs.shape and self._input_shapes is not None:
            return None
        w = self.window_length
        first_state = np.zeros((1, w) + obs.shape, dtype=obs.dtype)  # an episode's first state: zero-padded
        first_state[0, -1] = obs
        inputs = self._process_states(first_state)
        shapes = fit_state_shapes(
            inputs,
            self.policy_models()[0].inputs,
            obs_shape=obs.shape,
            window_length=w,
            drop_window=w == 1 and self.processor is None,
            network=self.weights_roles[0],
            received=source,
        )
        for k, shape in enumerate(shapes):
            for other_in in self._observation_inputs_of_others(k):
                if not fits(shape, tuple(other_in.shape[1:])):
                    raise ValueError(
                        f"States of shape {shape} do not fit the critic's observation input shape "
                        f"{tuple(other_in.shape)}. Received: {source}={obs.shape}"
                    )
        if self._input_shapes is not None and shapes != self._input_shapes:
            self.retrace()
        self._obs_shape = obs.shape
        self._input_shapes = shapes
        self._act_fields = self._train_fields = None
        self._sample_into = (
            len(shapes) == 1
            and callable(getattr(self.memory, "sample_into", None))
            and (self.processor is None or type(self.processor).process_state_batch is Processor.process_state_batch)
        )
        return inputs

    def _observation_inputs_of_others(self, k: int) -> list:
        """The `k`-th observation input of every other network that takes observations."""
        return []

    # ------------------------------------------------------------ the graph
    _model_input = staticmethod(model_input)

    def _fields(self, n_states: int = 1, n_updates: int | None = None) -> tuple[Fields, Fields]:
        """The packed layouts of the acting call and of the training call (built once per input shape).

        `n_states` states are acted on per call (`forward_batch`: one per sub-environment) and
        `n_updates` gradient steps run per training call (`None`: `gradient_steps`).
        """
        if (n_states, n_updates) != (1, None):
            key = (n_states, n_updates, tuple(self._input_shapes))
            if key not in self._batch_fields:
                self._batch_fields[key] = self._make_fields(n_states, n_updates or self.gradient_steps)
            return self._batch_fields[key]
        if self._train_fields is None:
            self._act_fields, self._train_fields = self._make_fields(1, self.gradient_steps)
        return self._act_fields, self._train_fields

    def _make_fields(self, n_states: int, n_updates: int) -> tuple[Fields, Fields]:
        kb = self.batch_size * n_updates
        shapes = self._input_shapes
        return (
            acting_fields(shapes, n_states),
            Fields(
                [
                    state_fields(shapes, n_states),
                    state_fields(shapes, kb, "state0"),
                    state_fields(shapes, kb, "state1"),
                    ("rows", (kb, self.transition_rows.width)),
                ]
                + ([("weight", (kb,))] if self.prioritized else [])  # importance-sampling weights
            ),
        )

    def _act_function(self, training: bool, n_states: int = 1):
        fields, _ = self._fields(n_states)
        # Outside training the networks' own variables hold the weights (pushed when fit ends).
        nets = self.nets if training else Nets({r: _ModelView(m) for r, m in self.models.items()})

        def act(flat: tf.Tensor) -> tf.Tensor:
            states = self._model_input(fields.unpack(flat)["state"])
            out = self.act_graph(nets, states, training)  # [n_states, A]
            return tf.cast(out[0] if n_states == 1 else tf.reshape(out, [-1]), tf.float32)

        return act

    def _train_function(self, options: TrainOptions, n_states: int = 1):
        _, fields = self._fields(n_states, options.updates)
        b, layout = self.batch_size, self.transition_rows
        prioritized = self.prioritized

        def train(flat: tf.Tensor) -> tf.Tensor:
            parts = fields.unpack(flat)
            steps, tds = [], []
            if options.groups:
                for k in range(options.updates or self.gradient_steps):  # each on its own batch, in order
                    s0, s1 = ([x[k * b : (k + 1) * b] for x in parts[n]] for n in ("state0", "state1"))
                    rows = parts["rows"][k * b : (k + 1) * b]  # [B, A + 2]: [action..., reward, terminal]
                    weight = parts["weight"][k * b : (k + 1) * b] if prioritized else None
                    batch = GraphBatch(self._model_input(s0), *layout.split(rows), self._model_input(s1), weight)
                    step = UpdateStep(options.groups, (options.first_index + k) % self.update_cycle)
                    metrics = dict(self.train_step(self.nets, batch, step))
                    td = metrics.pop("td_error", None)
                    if prioritized:  # NaN where the step trained no critic: those priorities stay
                        tds.append(tf.fill([b], np.float32(np.nan)) if td is None else tf.cast(td, tf.float32))
                    steps.append(self._metric_vector(metrics))
            if options.hard_update:
                self.copy_targets()
            metrics = self.mean_metrics(steps, len(self.train_metrics_names))
            action = self.act_graph(self.nets, self._model_input(parts["state"]), True)  # [n_states, A]
            action = action[0] if n_states == 1 else tf.reshape(action, [-1])
            return tf.concat([tf.cast(action, tf.float32), metrics] + tds, 0)

        return train

    # ------------------------------------------------------------- the loop
    def forward(self, observation: Any) -> np.ndarray:
        """Returns the action for `observation`: the policy's, plus noise while training, clipped.

        While training, the updates scheduled by the last `backward` run in the same compiled
        call, before the policy picks this action.
        """
        first_parts = None  # the processed state of a first observation (the window's state at this call)
        if self._input_shapes is None or np.shape(observation) != self._obs_shape:
            first_parts = self.prepare_inputs(observation)
        if self.training != self._pulled and self.flat_weights:
            # Outside `fit` (a hand-written loop): move the weights where this call reads them.
            self._pull() if self.training else self._push()
        state = self._window.push(observation)  # [W, *obs]
        scheduled = self._scheduled if self.training else None
        at_random = self.training and self.step < self.nb_steps_random
        if scheduled is not None:
            self._scheduled = None  # cleared first: an interrupt can never run this call twice
            flat = self._pack_training_inputs(state, bool(scheduled.groups), first_parts, n_updates=scheduled.updates)
            out = self.call_compiled("train", scheduled, lambda: self._train_function(scheduled), flat)
            out = self._update_priorities(out, scheduled)
            action = out[: self.nb_actions]
            if scheduled.groups:
                self._last_metrics = out[self.nb_actions :]
        elif not at_random:
            parts = first_parts if first_parts is not None else self._process_states(state[None])
            flat = pack_states(parts)
            action = self.call_compiled(
                "act", self.training, lambda: self._act_function(self.training), flat, may_use_xla=False
            )
        action = self.random_actions(1)[0] if at_random else self.finish_action(action)
        self.recent_observation = observation
        self.recent_action = action
        return action

    def _update_priorities(self, out: np.ndarray, scheduled: TrainOptions) -> np.ndarray:
        """Hands a training call's TD errors (the tail of `out`) to a prioritized memory; returns the rest."""
        indices, self._priority_indices = self._priority_indices, []
        if not (self.prioritized and scheduled.groups):
            return out
        kb = self.batch_size * (scheduled.updates or self.gradient_steps)
        td, out = out[-kb:], out[:-kb]
        idx = np.concatenate(indices)
        known = np.isfinite(td)
        if known.any():
            self.memory.update_priorities(idx[known], td[known])
        return out

    def random_actions(self, n: int) -> np.ndarray:
        """`n` actions drawn uniformly at random, as the first `nb_steps_random` training steps take them.

        Continuous actions are uniform within the action space's bounds, `[n, nb_actions]`;
        value-based agents draw integer actions in `[0, nb_actions)`, `[n]`. The draws come
        from the agent's generator, which `fit(seed=...)` seeds and checkpoints save.

        Raises:
            ValueError: if the action space has no finite bounds on the agent's side (unbounded,
                or a `Processor` maps the agent's actions), so there is no range to draw from.
        """
        if self._low is None:
            raise ValueError(
                "`nb_steps_random` draws actions uniformly within the action space's bounds, so it needs a "
                "bounded gymnasium.spaces.Box that no Processor.process_action maps. "
                f"Received: nb_steps_random={self.nb_steps_random}"
            )
        return self._rng.uniform(self._low, self._high, size=(n, self.nb_actions)).astype(np.float32)

    def finish_action(self, output: np.ndarray) -> Any:
        """Subclass hook: the action taken, from the compiled call's output (`act_graph`'s first row).

        Adds the exploration noise while training and clips to the action space's bounds;
        value-based agents apply their policy to the Q-values instead.
        """
        action = output
        if self.training and self.random_process is not None:
            action = (action + self.random_process.sample()).astype(np.float32)
        if self._low is not None:
            action = np.minimum(np.maximum(action, self._low), self._high)
        return action

    def _pack_training_inputs(
        self,
        state: np.ndarray,
        with_batches: bool,
        act_parts: list[np.ndarray] | None = None,
        n_states: int = 1,
        n_updates: int | None = None,
    ) -> np.ndarray:
        """One float32 vector in the training fields' order: the acting state(s), then the batches.

        Each of the `gradient_steps` (or `n_updates`) batches is drawn by its own call to the
        memory, so the memory's sampling rules hold per batch. A call that only copies targets
        draws nothing. With `n_states > 1` (`forward_batch`), `act_parts` holds the processed
        states and `state` is one of them, `[W, *obs]`.
        """
        _, fields = self._fields(n_states, n_updates)
        b, k = self.batch_size, n_updates or self.gradient_steps
        flat = np.empty(fields.size, dtype=np.float32)  # every field is written below (batches when used)
        if act_parts is None:
            act_parts = self._process_states(state[None])
        for view, part in zip(fields.view(flat, "state"), act_parts):
            view[...] = part.reshape(view.shape)
        if not with_batches:
            return flat
        rows = fields.view(flat, "rows")
        s0_views, s1_views = fields.view(flat, "state0"), fields.view(flat, "state1")
        if self._sample_into:
            # One state input, states used as stored: the memory writes each batch in place.
            shape = (k * b,) + state.shape
            s0, s1 = s0_views[0].reshape(shape), s1_views[0].reshape(shape)
            for i in range(0, k * b, b):
                self.memory.sample_into(b, s0[i : i + b], s1[i : i + b], rows[i : i + b])
                self._take_weights(fields, flat, i)
            return flat
        for i in range(0, k * b, b):
            batch = self.memory.sample(b)
            self._take_weights(fields, flat, i)
            for views, states in ((s0_views, batch.state0), (s1_views, batch.state1)):
                for view, part in zip(views, self._process_states(states)):
                    view[i : i + b] = np.asarray(part).reshape((b,) + view.shape[1:])
            self.transition_rows.write(rows[i : i + b], batch.action.reshape(b, -1), batch.reward, batch.terminal)
        return flat

    def _take_weights(self, fields: Fields, flat: np.ndarray, i: int) -> None:
        """Packs the importance weights of the batch just drawn at row `i`, and keeps its slots."""
        if self.prioritized:
            fields.view(flat, "weight")[i : i + self.batch_size] = self.memory.last_weights
            self._priority_indices.append(self.memory.last_indices)

    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Stores the transition and schedules a training call (run fused with the next `forward`).

        Returns:
            The metrics of the most recent training call, ordered as `metrics_names` (NaN before
            the first one).
        """
        metrics = self._last_metrics
        if self.processor is not None and self.processor.metrics_names:
            metrics = np.concatenate([metrics, np.asarray(self.processor.metrics, dtype=np.float32)])
        if not self.training:
            return metrics
        if self.step % self.memory_interval == 0:
            if next_observation is None:
                raise ValueError(
                    "`next_observation` is required to store a transition. Received: next_observation=None"
                )
            self.memory.append(
                self.recent_observation,
                self.recent_action,
                reward,
                terminal,
                next_observation,
                truncated=truncated or self.memory_interval > 1,
            )
        step = self.step
        groups = frozenset(g for g, n in self.warmup.items() if step > n) if step % self.train_interval == 0 else None
        hard = self.target_model_update >= 1 and step % int(self.target_model_update) == 0
        if groups or hard:
            first = self._updates % self.update_cycle
            if groups:
                self._updates += self.gradient_steps
            self._scheduled = TrainOptions(groups or frozenset(), first, hard)
        return metrics

    # ------------------------------------------------------------------ export
    def serving_policy(self) -> Any:
        """The test-mode policy as one graph function, for `export` (see `rl.export`).

        The function takes a float32 batch `[B, *obs_shape]` (`[B, window_length, *obs_shape]`
        with windows), runs the processor's `export_state_batch` and `act_graph` on the networks'
        own variables (test mode: no noise), and returns `serving_outputs` of the result.

        Raises:
            ValueError: if the agent has not seen an observation yet, or its processor or test
                policy cannot be expressed in the graph.
        """
        from rl.export import ServingPolicy, processor_metadata  # imported here: loaded only when exporting

        if self._input_shapes is None:
            raise ValueError(
                f"{type(self).__name__} has not seen an observation yet, so its input shapes are unknown: call "
                f"fit or test first (or forward on an observation). Received: agent={self!r}"
            )
        w, shapes, processor = self.window_length, list(self._input_shapes), self.processor
        export_states(processor, tf.zeros((1, w) + tuple(self._obs_shape), tf.float32))  # refuses early
        self.serving_check()
        nets = Nets({r: _ModelView(m) for r, m in self.models.items()})
        acting = self.policy_models()[:1]  # the network act_graph reads: only its weights go into the artifact

        def function(observations: tf.Tensor) -> dict[str, tf.Tensor]:
            states = observations if w > 1 else observations[:, None]  # [B, W, *obs]
            processed = export_states(processor, states)
            parts = [tf.reshape(tf.cast(p, tf.float32), (-1,) + s) for p, s in zip(processed, shapes)]
            out = tf.cast(self.act_graph(nets, model_input(parts), False), tf.float32)  # [B, A]
            return self.serving_outputs(out)

        low, high = self.action_bounds
        metadata = {
            "agent": type(self).__name__,
            "observation_shape": list(self._obs_shape),
            "window_length": w,
            "nb_actions": self.nb_actions,
            "action_low": None if low is None else np.asarray(low).tolist(),
            "action_high": None if high is None else np.asarray(high).tolist(),
            "discrete": self.stored_action_size != self.nb_actions,
            "outputs": self.serving_output_names,
            "processor": processor_metadata(processor),
        }
        shape = tuple(self._obs_shape) if w == 1 else (w,) + tuple(self._obs_shape)
        return ServingPolicy(function, shape, acting, metadata)

    serving_output_names = ["action"]

    def serving_check(self) -> None:
        """Raises a `ValueError` if the test-mode action cannot be expressed in the graph (subclass hook)."""

    def serving_outputs(self, output: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: the exported outputs from `act_graph`'s test-mode output `[B, A]`: the
        action clipped to the action bounds, as `finish_action` does outside training."""
        low, high = self.action_bounds
        if low is not None:
            output = tf.minimum(tf.maximum(output, low), high)
        return {"action": output}

    def acting_settings(self) -> dict[str, Any]:
        """The agent's plain settings (numbers, strings, small arrays and containers of them), which
        `act_graph` may read: what a copy of the acting half needs in another process
        (`rl.distributed.ActingPolicy` gives them to an agent shell without networks or memory)."""
        return {k: v for k, v in vars(self).items() if _plain(v)}

    def observe(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        truncated: bool = False,
        next_observation: Any = None,
    ) -> np.ndarray:
        """Learns from a transition acted elsewhere (a rollout worker): as `backward` after a `forward`
        that returned `action` for `observation`, it stores the transition and schedules training.

        Run the training it scheduled with `train_scheduled()` (or the next `forward`).

        Returns:
            The metrics of the most recent training call, as `backward` returns them.
        """
        if self._input_shapes is None or np.shape(observation) != self._obs_shape:
            self.prepare_inputs(observation)  # a learner that never acted learns the shapes here
        self.recent_observation, self.recent_action = observation, action
        return self.backward(reward, terminal, truncated=truncated, next_observation=next_observation)

    def train_scheduled(self) -> None:
        """Runs the training `backward` (or `observe`) scheduled, without acting; nothing if none is due.

        The same compiled call as `forward`'s (the updates, then the action, which is dropped),
        for learners that do not act themselves (`rl.distributed`).
        """
        scheduled = self._scheduled if self.training else None
        if scheduled is None:
            return
        if self.training != self._pulled and self.flat_weights:
            self._pull()
        self._scheduled = None  # cleared first: an interrupt can never run this call twice
        state = np.zeros((self.window_length,) + tuple(self._obs_shape), np.float32)  # [W, *obs]: acts on nothing
        flat = self._pack_training_inputs(state, bool(scheduled.groups), n_updates=scheduled.updates)
        out = self.call_compiled("train", scheduled, lambda: self._train_function(scheduled), flat)
        out = self._update_priorities(out, scheduled)
        if scheduled.groups:
            self._last_metrics = out[self.nb_actions :]

    # ----------------------------------------------- vectorized environments
    def forward_batch(self, observations: np.ndarray, noise: list[RandomProcess] | None = None) -> np.ndarray:
        """Returns the actions for `N` observations at once, one per sub-environment of a vector env.

        The batched `forward` that `rl.vector` calls: one compiled call acts for all `N` states
        (and, while training, first runs the updates `backward_batch` scheduled). Each row then
        gets the agent's own action rule (`finish_action`: noise and clipping, or a Q-policy).

        Args:
            observations: the (processed) observations, `[N, *obs_shape]`.
            noise: while training, one noise process per row, so that each sub-environment
                explores with its own process; `None` draws every row from `random_process`.
                Defaults to `None`.

        Returns:
            The actions, `[N, nb_actions]` for continuous actions or `[N]` integer actions for
            value-based agents.

        Raises:
            ValueError: if the agent's memory has `window_length > 1`, or `noise` does not hold
                one process per observation.
        """
        if self.window_length != 1:
            raise ValueError(
                "Vectorized environments need window_length == 1 (the sub-environments' steps interleave in the "
                f"memory, so windows of consecutive observations cannot be rebuilt). Received: "
                f"window_length={self.window_length}"
            )
        observations = np.asarray(observations)
        n = observations.shape[0]
        if noise is not None and len(noise) != n:
            raise ValueError(f"`noise` must hold one process per observation ({n}). Received: len(noise)={len(noise)}")
        if self._input_shapes is None or observations.shape[1:] != self._obs_shape:
            self.prepare_inputs(observations[0])
        if self.training != self._pulled and self.flat_weights:
            self._pull() if self.training else self._push()
        states = observations[:, None]  # [N, 1, *obs]
        parts = self._process_states(states)
        width = self.nb_actions  # an action, or one Q-value per action
        scheduled = self._scheduled if self.training else None
        if scheduled is not None:
            self._scheduled = None  # cleared first: an interrupt can never run this call twice
            flat = self._pack_training_inputs(states[0], bool(scheduled.groups), parts, n, scheduled.updates)
            out = self.call_compiled("train", (scheduled, n), lambda: self._train_function(scheduled, n), flat)
            out = self._update_priorities(out, scheduled)
            if scheduled.groups:
                self._last_metrics = out[n * width :]
            out = out[: n * width]
        else:
            flat = pack_states(parts)
            out = self.call_compiled(
                "act", (self.training, n), lambda: self._act_function(self.training, n), flat, may_use_xla=False
            )
        actions = self._finish_actions(out.reshape(n, width), noise)
        k = min(n, self.nb_steps_random - self.step) if self.training else 0
        if k > 0:  # rows are the steps `step, ..., step + n - 1`: those before nb_steps_random act at random
            actions = np.array(actions)
            actions[:k] = self.random_actions(k)
        self.recent_observations, self.recent_actions = observations, actions
        return actions

    def _finish_actions(self, outputs: np.ndarray, noise: list[RandomProcess] | None) -> np.ndarray:
        """The actions for the compiled outputs `[N, width]` of `forward_batch`: `finish_action` per row.

        A subclass's own `finish_action` (a value-based agent's Q-policy) runs row by row; the
        default adds row `i` the noise of `noise[i]` while training, and clips all rows at once.
        """
        if type(self).finish_action is not OffPolicyAgent.finish_action:
            return np.asarray([self.finish_action(row) for row in outputs])
        actions = outputs
        if self.training and (noise is not None or self.random_process is not None):
            processes = noise if noise is not None else [self.random_process] * len(outputs)
            actions = (actions + np.stack([p.sample() for p in processes])).astype(np.float32)
        if self._low is not None:
            actions = np.minimum(np.maximum(actions, self._low), self._high)
        return actions

    def backward_batch(
        self,
        rewards: np.ndarray,
        terminals: np.ndarray,
        truncateds: np.ndarray,
        next_observations: np.ndarray,
        stored: np.ndarray | None = None,
        updates: int | None = None,
    ) -> np.ndarray:
        """Stores one transition per sub-environment and schedules their training: the batched `backward`.

        Row `i` is the step of sub-environment `i` from `forward_batch`'s `observations[i]` with
        `actions[i]`; it goes to the memory as a step of that sub-environment's episode. Training
        is scheduled as `backward` schedules it for each of the `m` stored rows, counted as the
        environment steps `step, ..., step + m - 1` (every `train_interval` steps, past the
        warm-up), all run in the one compiled call of the next `forward_batch`. `step` itself is
        left to the loop to advance.

        Args:
            rewards: `[N]` rewards.
            terminals: `[N]`, true where the episode terminated (no bootstrap).
            truncateds: `[N]`, true where the episode was cut by a time limit (still bootstraps).
            next_observations: `[N, *obs_shape]`, the real next observations (an episode's final
                one where it ended).
            stored: `[N]` booleans, false for rows that are no environment step (a sub-environment
                that only reset); `None` stores every row. Defaults to `None`.
            updates: gradient steps for this vector step when training is due, or `None` for
                `gradient_steps` per training step (one training step per environment step with
                `train_interval=1`). Defaults to `None`.

        Returns:
            The metrics of the most recent training call, ordered as `metrics_names`.
        """
        metrics = self._last_metrics
        if self.processor is not None and self.processor.metrics_names:
            metrics = np.concatenate([metrics, np.asarray(self.processor.metrics, dtype=np.float32)])
        with_policy = getattr(self, "_with_policy_metrics", None)  # a Q-policy's metrics (value-based agents)
        if with_policy is not None:
            metrics = with_policy(metrics)
        if not self.training:
            return metrics
        rows = np.flatnonzero(np.ones(len(rewards), dtype=bool) if stored is None else np.asarray(stored))
        for i in rows:
            self.memory.append(
                self.recent_observations[i],
                self.recent_actions[i],
                float(rewards[i]),
                bool(terminals[i]),
                next_observations[i],
                truncated=bool(truncateds[i]),
            )
        steps = range(self.step, self.step + len(rows))
        calls = [t for t in steps if t % self.train_interval == 0 and any(t > n for n in self.warmup.values())]
        groups = frozenset(g for g, n in self.warmup.items() if calls and calls[-1] > n)
        hard = self.target_model_update >= 1 and any(t % int(self.target_model_update) == 0 for t in steps)
        if groups or hard:
            n_updates = (updates if updates is not None else len(calls) * self.gradient_steps) if groups else None
            first = self._updates % self.update_cycle
            self._updates += n_updates or 0
            self._scheduled = TrainOptions(groups, first, hard, n_updates)
        return metrics

    def abandon_episode(self) -> None:
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()

    # -------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        s = self._scheduled
        state: dict[str, Any] = {
            "scheduled": None
            if s is None
            else {"groups": sorted(s.groups), "first": s.first_index, "hard": s.hard_update},
            "updates": self._updates,
            "last_metrics": [None if not np.isfinite(v) else float(v) for v in self._last_metrics],
        }
        if self.random_process is not None and hasattr(self.random_process, "get_state"):
            state["random_process"] = self.random_process.get_state()
        return state

    def save_checkpoint_files(self, folder: str) -> dict:
        state = super().save_checkpoint_files(folder)
        if hasattr(self.memory, "save"):
            self.memory.save(f"{folder}/memory.npz")
        return state

    def validate_checkpoint_state(self, state: dict) -> None:
        s = state.get("scheduled")
        if s is not None and not (
            isinstance(s, dict)
            and isinstance(s.get("groups"), list)
            and set(s["groups"]) <= set(self.warmup)
            and isinstance(s.get("first"), int)
            and isinstance(s.get("hard"), bool)
        ):
            raise ValueError(f"The checkpoint's agent_state.scheduled is invalid. Received: scheduled={s!r}")
        updates = state.get("updates")
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise ValueError(f"The checkpoint's agent_state.updates is invalid. Received: updates={updates!r}")
        metrics = state.get("last_metrics")
        if not isinstance(metrics, list) or len(metrics) != len(self._last_metrics):
            raise ValueError(
                f"The checkpoint's agent_state.last_metrics is invalid. Received: last_metrics={metrics!r}"
            )
        if "random_process" in state and self.random_process is not None:
            try:  # on a copy: the agent's own process changes only when the whole load succeeds
                copy.deepcopy(self.random_process).set_state(state["random_process"])
            except Exception as e:  # noqa: BLE001 - any failure means the state is unusable
                raise ValueError(
                    f"The checkpoint's agent_state.random_process is invalid ({e}). "
                    f"Received: random_process={state['random_process']!r:.200}"
                ) from e

    def read_checkpoint_files(self, folder: str, state: dict) -> dict:
        staged = super().read_checkpoint_files(folder, state)
        path = f"{folder}/memory.npz"
        if hasattr(self.memory, "read_state"):
            staged["memory"] = self.memory.read_state(path)
        elif hasattr(self.memory, "load"):
            staged["memory_path"] = path
        return staged

    def apply_checkpoint_files(self, staged: dict) -> None:
        super().apply_checkpoint_files(staged)
        if "memory" in staged:
            self.memory.set_state(staged["memory"])
        elif "memory_path" in staged:
            self.memory.load(staged["memory_path"])
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()  # a resumed run starts a new episode

    def restore_checkpoint_state(self, state: dict) -> None:
        s = state.get("scheduled")
        self._scheduled = None if s is None else TrainOptions(frozenset(s["groups"]), s["first"], s["hard"])
        self._updates = state["updates"]
        self._last_metrics = np.array([np.nan if v is None else v for v in state["last_metrics"]], dtype=np.float32)
        if "random_process" in state and self.random_process is not None:
            self.random_process.set_state(state["random_process"])


class _ModelView:
    """A network through its own Keras variables, for acting outside training."""

    def __init__(self, model: keras.Model):
        self.model = model

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        return self.model(inputs, training=training)


def huber(x: tf.Tensor, delta: float) -> tf.Tensor:
    """`0.5 * x^2` where `|x| <= delta`, `delta * (|x| - 0.5 * delta)` beyond (`0.5 * x^2` for `inf`)."""
    if math.isinf(delta):
        return 0.5 * tf.square(x)
    abs_x = tf.abs(x)
    return tf.where(abs_x <= delta, 0.5 * tf.square(x), delta * (abs_x - 0.5 * delta))


def resolve_delta_clip(delta_clip: float, delta_range: tuple[float, float] | None = None) -> float:
    """The Huber threshold: `delta_clip`, or keras-rl's deprecated `delta_range=(-d, d)` as `d` (with a warning).

    Raises:
        ValueError: if the threshold is not a positive number (`inf` allowed).
    """
    if delta_range is not None:
        warnings.warn(
            f"`delta_range` is deprecated; use `delta_clip` instead. Using delta_clip={delta_range[1]}.",
            DeprecationWarning,
            stacklevel=3,
        )
        delta_clip = delta_range[1]
    return check_number("delta_clip", delta_clip, low=0.0, low_inclusive=False, allow_inf=True)


def _plain(value: Any) -> bool:
    """Whether `value` is plain data (numbers, strings, small arrays and containers of them)."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if isinstance(value, np.ndarray):
        return value.size <= 4096
    if isinstance(value, (tuple, list, frozenset)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False
