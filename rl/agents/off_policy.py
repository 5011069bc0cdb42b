"""Off-policy agents on the engine: replay, warm-up, intervals, target updates, noise, action bounds,
and the fused act-and-train call.

`OffPolicyAgent` owns everything between the episode loop and an algorithm's maths. A subclass
registers its networks (see `rl.engine.DeepAgent`), and writes two graph functions:

- `act_graph(nets, states, training) -> actions [B, A]`: the action (before the exploration noise
  of `random_process` and the clipping to the action space, which this class adds);
- `train_step(nets, batch, step) -> {metric: scalar}`: one gradient update on a `GraphBatch`.

`rl.agents.actor_critic.ActorCriticAgent` adds what DDPG, TD3 and SAC share: an actor and one
or more critics taking the action through an input of their own.
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.core import Processor
from rl.engine import DeepAgent, Fields, Nets
from rl.memory import ObservationWindow
from rl.random import RandomProcess
from rl.util import check_int, check_number

__all__ = ["GraphBatch", "OffPolicyAgent", "UpdateStep", "huber"]


class GraphBatch(NamedTuple):
    """One gradient step's batch inside the graph.

    Attributes:
        state0: `s_t` as the networks take it (a tensor, or a list for multi-input models), `[B, ...]`.
        action: `a_t`, `[B, A]`.
        reward: `r_t`, `[B]`.
        terminal: `1.0` where `s_{t+1}` is terminal (no bootstrap), `[B]`.
        state1: `s_{t+1}`, as `state0`.
    """

    state0: Any
    action: tf.Tensor
    reward: tf.Tensor
    terminal: tf.Tensor
    state1: Any


class UpdateStep(NamedTuple):
    """Trace-time facts about one gradient step.

    Attributes:
        groups: the optimizer groups past their warm-up (those the step may train).
        index: the update's number modulo the agent's `update_cycle` (e.g. TD3's policy delay).
    """

    groups: frozenset
    index: int

    def trains(self, group: str) -> bool:
        return group in self.groups


class _TrainOptions(NamedTuple):
    groups: frozenset  # optimizer groups trained by this call (empty: only a hard target copy)
    first_index: int  # the first update's number modulo `update_cycle`
    hard_update: bool  # copy the target networks after the updates


class OffPolicyAgent(DeepAgent):
    """Base class of agents that learn from a replay memory while they act.

    Each environment step is one compiled call: the training that `backward` scheduled (its
    `gradient_steps` updates, then a hard target copy if one is due) runs fused with the next
    `forward`, which then picks the action with the networks just updated. `backward` therefore
    reports the metrics of the previous training call.

    Args:
        nb_actions: size of the action vector, >= 1.
        memory: replay memory, typically `rl.memory.SequentialMemory`.
        gamma: discount factor in `[0, 1]`.
        batch_size: transitions per gradient step, in `[1, memory.limit]`.
        warmup: `{optimizer group: steps}`: a group trains from the step after its warm-up.
        train_interval: train every this many steps.
        memory_interval: store every this many steps.
        target_model_update: `< 1`: soft update with this `tau` after each update; `>= 1`: hard
            copy every `int(target_model_update)` steps.
        gradient_steps: gradient steps per training call, each on its own batch.
        random_process: exploration noise added to actions while training, or `None`.
        processor, jit_compile, custom_model_objects: see `rl.engine.DeepAgent`.
    """

    update_cycle = 1  # updates repeat their pattern with this period (TD3: the policy delay)

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
        # Crosses calls: the training call `backward` scheduled, run fused with the next
        # `forward` (None when nothing is due), and the number of updates scheduled so far.
        self._scheduled: _TrainOptions | None = None
        self._updates = 0
        self._last_metrics = np.full(len(self.base_metrics), np.nan, dtype=np.float32)
        self.recent_observation: Any = None
        self.recent_action: np.ndarray | None = None

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

    def _check_env(self, env: Any) -> None:
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
            self._set_action_bounds(space.low.astype(np.float32), space.high.astype(np.float32))
        else:
            self._set_action_bounds(None, None)
        obs_space = getattr(env, "observation_space", None)
        if self.processor is None and isinstance(obs_space, gym.spaces.Box):
            self._setup_inputs(np.zeros(obs_space.shape, dtype=obs_space.dtype), source="env.observation_space.shape")

    def _set_action_bounds(self, low: np.ndarray | None, high: np.ndarray | None) -> None:
        """Records the bounds actions are clipped to (None: not clipped)."""
        changed = (low is None) != (self._low is None) or (
            low is not None and not (np.array_equal(low, self._low) and np.array_equal(high, self._high))
        )
        self._low, self._high = low, high
        if changed and self._functions is not None:
            self._functions.clear()  # the graphs may read the bounds (e.g. SAC's squashing)

    def _process_states(self, states: np.ndarray) -> list[np.ndarray]:
        if self.processor is not None:
            states = self.processor.process_state_batch(states)
        if isinstance(states, (list, tuple)):
            return [np.asarray(s) for s in states]
        return [np.asarray(states)]

    def _setup_inputs(self, observation: Any, source: str = "observation") -> None:
        """Checks an observation against the networks' inputs and records the input shapes."""
        if isinstance(observation, (dict, tuple, list)) and self.processor is None:
            raise TypeError(
                f"{type(self).__name__}'s networks take arrays: a {type(observation).__name__} observation needs a "
                "Processor whose process_observation returns one array (see rl.core.Processor). "
                f"Received: {source} of type {type(observation).__name__}"
            )
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biuf":
            raise TypeError(
                f"Observations must be numeric arrays. Received: {source} of dtype {obs.dtype} ({observation!r:.100})"
            )
        if self._obs_shape == obs.shape and self._input_shapes is not None:
            return
        w = self.window_length
        inputs = self._process_states(np.zeros((1, w) + obs.shape, dtype=obs.dtype))
        acting, *others = self.policy_models()
        if len(inputs) != len(acting.inputs):
            raise ValueError(
                f"The {self.weights_roles[0]} has {len(acting.inputs)} observation input(s) but the (processed) state "
                f"gives {len(inputs)}. Use a Processor whose process_state_batch returns one array per input. "
                f"Received: {source}={obs.shape}"
            )
        shapes = []
        for k, (x, model_in) in enumerate(zip(inputs, acting.inputs)):
            want, got = tuple(model_in.shape[1:]), tuple(x.shape[1:])
            if _fits(got, want):
                shape = got
            elif w == 1 and self.processor is None and _fits(got[1:], want):
                shape = got[1:]  # plain obs_shape inputs when window_length == 1
            else:
                raise ValueError(
                    f"Observations of shape {obs.shape} with window_length={w} give states of shape {got}, which "
                    f"does not fit the {self.weights_roles[0]}'s input shape {tuple(model_in.shape)}. "
                    f"Received: {source}={obs.shape}"
                )
            for other_in in self._observation_inputs_of_others(k):
                if not _fits(shape, tuple(other_in.shape[1:])):
                    raise ValueError(
                        f"States of shape {shape} do not fit the critic's observation input shape "
                        f"{tuple(other_in.shape)}. Received: {source}={obs.shape}"
                    )
            shapes.append(shape)
        if self._input_shapes is not None and shapes != self._input_shapes and self._functions is not None:
            self._functions.clear()
        self._obs_shape = obs.shape
        self._input_shapes = shapes
        self._act_fields = self._train_fields = None
        self._sample_into = (
            len(shapes) == 1
            and callable(getattr(self.memory, "sample_into", None))
            and (self.processor is None or type(self.processor).process_state_batch is Processor.process_state_batch)
        )

    def _observation_inputs_of_others(self, k: int) -> list:
        """The `k`-th observation input of every other network that takes observations."""
        return []

    # ------------------------------------------------------------ the graph
    @staticmethod
    def _model_input(states: list[tf.Tensor]) -> Any:
        return states[0] if len(states) == 1 else states

    def _fields(self) -> tuple[Fields, Fields]:
        """The packed layouts of the acting call and of the training call (built once per input shape)."""
        if self._train_fields is None:
            kb = self.batch_size * self.gradient_steps
            self._act_fields = Fields([("state", [(1,) + s for s in self._input_shapes])])
            self._train_fields = Fields(
                [
                    ("state", [(1,) + s for s in self._input_shapes]),
                    ("state0", [(kb,) + s for s in self._input_shapes]),
                    ("state1", [(kb,) + s for s in self._input_shapes]),
                    ("rows", (kb, self.nb_actions + 2)),  # [action..., reward, terminal]
                ]
            )
        return self._act_fields, self._train_fields

    def _act_function(self, training: bool):
        fields, _ = self._fields()
        # Outside training the networks' own variables hold the weights (pushed when fit ends).
        nets = self.nets if training else Nets({r: _ModelView(m) for r, m in self.models.items()})

        def act(flat: tf.Tensor) -> tf.Tensor:
            states = self._model_input(fields.unpack(flat)["state"])
            return tf.cast(self.act_graph(nets, states, training)[0], tf.float32)

        return act

    def _train_function(self, options: _TrainOptions):
        _, fields = self._fields()
        b, a = self.batch_size, self.nb_actions

        def train(flat: tf.Tensor) -> tf.Tensor:
            parts = fields.unpack(flat)
            steps = []
            if options.groups:
                for k in range(self.gradient_steps):  # each on its own batch, in order
                    s0, s1 = ([x[k * b : (k + 1) * b] for x in parts[n]] for n in ("state0", "state1"))
                    rows = parts["rows"][k * b : (k + 1) * b]  # [B, A + 2]
                    batch = GraphBatch(
                        self._model_input(s0), rows[:, :a], rows[:, a], rows[:, a + 1], self._model_input(s1)
                    )
                    step = UpdateStep(options.groups, (options.first_index + k) % self.update_cycle)
                    steps.append(self._metric_vector(self.train_step(self.nets, batch, step)))
            if options.hard_update:
                self.copy_targets()
            nan = tf.fill([len(self.base_metrics) + len(self._metric_fns)], np.float32(np.nan))
            metrics = tf.reduce_mean(tf.stack(steps), axis=0) if steps else nan
            action = self.act_graph(self.nets, self._model_input(parts["state"]), True)[0]  # [A]
            return tf.concat([tf.cast(action, tf.float32), metrics], 0)

        return train

    # ------------------------------------------------------------- the loop
    def forward(self, observation: Any) -> np.ndarray:
        """Returns the action for `observation`: the policy's, plus noise while training, clipped.

        While training, the updates scheduled by the last `backward` run in the same compiled
        call, before the policy picks this action.
        """
        if self._input_shapes is None or np.shape(observation) != self._obs_shape:
            self._setup_inputs(observation)
        if self.training != self._pulled and self.flat_weights:
            # Outside `fit` (a hand-written loop): move the weights where this call reads them.
            self._pull() if self.training else self._push()
        state = self._window.push(observation)  # [W, *obs]
        scheduled = self._scheduled if self.training else None
        if scheduled is not None:
            self._scheduled = None  # cleared first: an interrupt can never run this call twice
            flat = self._pack_training_inputs(state, bool(scheduled.groups))
            out = self.call_compiled("train", scheduled, lambda: self._train_function(scheduled), flat)
            action = out[: self.nb_actions]
            if scheduled.groups:
                self._last_metrics = out[self.nb_actions :]
        else:
            flat = np.concatenate([p.reshape(-1) for p in self._process_states(state[None])], dtype=np.float32)
            action = self.call_compiled(
                "act", self.training, lambda: self._act_function(self.training), flat, may_use_xla=False
            )
        if self.training and self.random_process is not None:
            action = (action + self.random_process.sample()).astype(np.float32)
        if self._low is not None:
            action = np.minimum(np.maximum(action, self._low), self._high)
        self.recent_observation = observation
        self.recent_action = action
        return action

    def _pack_training_inputs(self, state: np.ndarray, with_batches: bool) -> np.ndarray:
        """One float32 vector in the training fields' order: the acting state, then the batches.

        Each of the `gradient_steps` batches is drawn by its own call to the memory, so the
        memory's sampling rules hold per batch. A call that only copies targets draws nothing.
        """
        _, fields = self._fields()
        b, k = self.batch_size, self.gradient_steps
        flat = np.empty(fields.size, dtype=np.float32)  # every field is written below (batches when used)
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
            return flat
        for i in range(0, k * b, b):
            batch = self.memory.sample(b)
            for views, states in ((s0_views, batch.state0), (s1_views, batch.state1)):
                for view, part in zip(views, self._process_states(states)):
                    view[i : i + b] = np.asarray(part).reshape((b,) + view.shape[1:])
            rows[i : i + b, : self.nb_actions] = batch.action.reshape(b, -1)
            rows[i : i + b, self.nb_actions] = batch.reward
            rows[i : i + b, self.nb_actions + 1] = batch.terminal
        return flat

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
            self._scheduled = _TrainOptions(groups or frozenset(), first, hard)
        return metrics

    def _end_episode(self) -> None:
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()

    # -------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> dict:
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

    def _save_checkpoint_files(self, folder: str) -> dict:
        state = super()._save_checkpoint_files(folder)
        if hasattr(self.memory, "save"):
            self.memory.save(f"{folder}/memory.npz")
        return state

    def _validate_checkpoint_state(self, state: dict) -> None:
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

    def _read_checkpoint_files(self, folder: str, state: dict) -> dict:
        staged = super()._read_checkpoint_files(folder, state)
        path = f"{folder}/memory.npz"
        if hasattr(self.memory, "read_state"):
            staged["memory"] = self.memory.read_state(path)
        elif hasattr(self.memory, "load"):
            staged["memory_path"] = path
        return staged

    def _apply_checkpoint_files(self, staged: dict) -> None:
        super()._apply_checkpoint_files(staged)
        if "memory" in staged:
            self.memory.set_state(staged["memory"])
        elif "memory_path" in staged:
            self.memory.load(staged["memory_path"])
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()  # a resumed run starts a new episode

    def _restore_checkpoint_state(self, state: dict) -> None:
        s = state.get("scheduled")
        self._scheduled = None if s is None else _TrainOptions(frozenset(s["groups"]), s["first"], s["hard"])
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


def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got, want))


def huber(x: tf.Tensor, delta: float) -> tf.Tensor:
    """`0.5 * x^2` where `|x| <= delta`, `delta * (|x| - 0.5 * delta)` beyond (`0.5 * x^2` for `inf`)."""
    if math.isinf(delta):
        return 0.5 * tf.square(x)
    abs_x = tf.abs(x)
    return tf.where(abs_x <= delta, 0.5 * tf.square(x), delta * (abs_x - 0.5 * delta))
