"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016) on the user's own Keras actor and critic."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import warnings
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.core import Agent, Processor
from rl.memory import ObservationWindow
from rl.random import RandomProcess
from rl.util import atomic_path, check_int, check_number, clone_optimizer, get_optimizer

__all__ = ["DDPGAgent"]

_BASE_METRICS = ["critic_loss", "actor_loss", "mean_q"]


class DDPGAgent(Agent):
    """DDPG: an actor `mu(s)` trained to maximise a critic `Q(s, a)`, with target networks.

    Each training step (one compiled TensorFlow function) does, on a batch from `memory`:

    ```
    y      = r + gamma * (1 - terminal) * Q'(s1, mu'(s1))      # TD target from the target nets
    critic : minimise mean(huber(y - Q(s0, a), delta_clip))    # 0.5 * td^2 when delta_clip=inf
    actor  : minimise -mean(Q(s0, mu(s0)))                     # with the critic just updated
    targets: w' <- tau * w + (1 - tau) * w'                    # or a hard copy every N steps
    ```

    A time-limit truncation is not a termination: such a transition bootstraps from its real
    final observation. For speed, the training step that `backward` schedules runs fused with the
    next `forward` (one compiled call trains and returns the next action, as the order of
    operations requires anyway); `backward` therefore reports the metrics of the previous step.

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
        batch_size: transitions per training step, in `[1, memory.limit]`. Defaults to `32`.
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
        target_model_update: `< 1`: soft update with this `tau` after each training step;
            `>= 1`: hard copy every `int(target_model_update)` steps. Defaults to `0.001`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step (fused with acting) with XLA: `True` (an error if
            XLA cannot compile the models), `False`, or `"auto"`: XLA where TensorFlow sees a GPU
            or TPU. On CPUs, what was faster over 20 000-step runs (see the benchmarks page): for
            small networks (every trainable weight array under 4 096 values) XLA when TensorFlow
            runs each op on one thread (`TF_NUM_INTRAOP_THREADS=1`), plain TensorFlow otherwise;
            for larger ones XLA when TensorFlow may split an op over several threads, plain
            TensorFlow on one thread. XLA's first call compiles for a few seconds. With one
            intra-op thread the library asks XLA to order each compiled step to keep the fewest
            buffers alive (`--xla_cpu_enable_concurrency_optimized_scheduler=false`, added to
            `XLA_FLAGS` for the process's first XLA compilation unless `XLA_FLAGS` names that
            flag already; it then holds for every later XLA compilation in the process, the
            user's own models included. Naming it `=true` opts out, and "auto" then picks plain
            TensorFlow for small networks. If XLA compiled something before the first agent was
            built, the flag cannot take effect and "auto" cannot tell: pass `False` there).
            Where "auto" picks XLA and XLA cannot compile the models, it warns and carries on
            without it. Acting alone (warm-up, `test`) always runs as a plain traced TensorFlow
            function. `agent.jit_compile` says whether XLA is in use. Defaults to `"auto"`.
        gradient_steps: gradient steps per training, each on its own batch of `batch_size`
            transitions, run one after another in the same compiled call (Stable-Baselines3's
            `gradient_steps`): with `train_interval=1, gradient_steps=2` the networks get two
            updates per environment step. Metrics are the mean over these steps. The steps are
            unrolled in the compiled function, so tracing and compiling it take longer as this
            grows. Defaults to `1` (keras-rl's behaviour).

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

    def __init__(
        self,
        nb_actions: int,
        actor: keras.Model,
        critic: keras.Model,
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
    ):
        super().__init__(processor=processor)
        self.nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        for name, model in (("actor", actor), ("critic", critic)):
            if not isinstance(model, keras.Model):
                raise TypeError(f"`{name}` must be a Keras model. Received: {name}={model!r}")
        if not (hasattr(memory, "append") and hasattr(memory, "sample")):
            raise TypeError(f"`memory` must be a replay memory such as SequentialMemory. Received: memory={memory!r}")
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        limit = getattr(memory, "limit", None)
        if limit is not None and self.batch_size > limit:
            raise ValueError(
                f"`batch_size` cannot exceed the memory's limit ({limit}). Received: batch_size={batch_size}"
            )
        self.nb_steps_warmup_critic = check_int("nb_steps_warmup_critic", nb_steps_warmup_critic, minimum=0)
        self.nb_steps_warmup_actor = check_int("nb_steps_warmup_actor", nb_steps_warmup_actor, minimum=0)
        self.train_interval = check_int("train_interval", train_interval, minimum=1)
        self.gradient_steps = check_int("gradient_steps", gradient_steps, minimum=1)
        self.memory_interval = check_int("memory_interval", memory_interval, minimum=1)
        if delta_range is not None:
            warnings.warn(
                "`delta_range` is deprecated and will be removed; use `delta_clip` instead. Using "
                f"delta_clip={delta_range[1]}.",
                DeprecationWarning,
                stacklevel=2,
            )
            delta_clip = delta_range[1]
        self.delta_clip = check_number("delta_clip", delta_clip, low=0.0, low_inclusive=False, allow_inf=True)
        self.target_model_update = check_number(
            "target_model_update", target_model_update, low=0.0, low_inclusive=False
        )
        if self.target_model_update >= 1:
            self.target_model_update = float(int(self.target_model_update))
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
        self.window_length = int(getattr(memory, "window_length", 1))
        if self.window_length > 1 and self.memory_interval > 1:
            raise ValueError(
                "`memory_interval` > 1 stores steps that are not consecutive, so observation windows "
                f"(window_length={self.window_length}) cannot be rebuilt from memory. "
                f"Received: memory_interval={memory_interval}"
            )

        # -- the models
        action_index = [i for i, t in enumerate(critic.inputs) if t is critic_action_input]
        if not action_index:
            raise ValueError(
                "`critic_action_input` must be one of the critic's inputs (the very `keras.Input` passed to the "
                f"critic). Received: critic_action_input={critic_action_input!r}, critic.inputs={critic.inputs}"
            )
        if len(critic.outputs) != 1 or tuple(critic.outputs[0].shape[1:]) != (1,):
            raise ValueError(
                "The critic must have a single output of shape (None, 1). "
                f"Received: critic.outputs={[tuple(o.shape) for o in critic.outputs]}"
            )
        if len(actor.outputs) != 1 or tuple(actor.outputs[0].shape[1:]) != (self.nb_actions,):
            raise ValueError(
                f"The actor must have a single output of shape (None, {self.nb_actions}) "
                f"(nb_actions={self.nb_actions}). "
                f"Received: actor.outputs={[tuple(o.shape) for o in actor.outputs]}"
            )
        action_shape = tuple(critic_action_input.shape[1:])
        if action_shape != (self.nb_actions,):
            raise ValueError(
                f"`critic_action_input` must have shape (None, {self.nb_actions}). "
                f"Received: critic_action_input.shape={tuple(critic_action_input.shape)}"
            )
        self._action_index = action_index[0]
        self._critic_obs_inputs = [t for i, t in enumerate(critic.inputs) if i != self._action_index]
        if len(self._critic_obs_inputs) != len(actor.inputs):
            raise ValueError(
                f"The critic must take the same observation inputs as the actor plus the action: the actor has "
                f"{len(actor.inputs)} input(s), the critic {len(critic.inputs)}. "
                f"Received: critic.inputs={critic.inputs}"
            )
        self.actor = actor
        self.critic = critic
        self.critic_action_input = critic_action_input
        self.memory = memory
        self.random_process = random_process
        self.custom_model_objects = dict(custom_model_objects or {})
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
        self._jit_auto = jit_compile == "auto"
        _direct_mode()  # once per process, before anything compiles: applies `_xla_cpu_flags`
        # Whether XLA is in use (an "auto" fallback turns it off).
        self.jit_compile = _xla_pays((actor, critic)) if self._jit_auto else jit_compile
        self.target_actor = self._clone(actor, "actor")
        self.target_critic = self._clone(critic, "critic")
        self._stateful_layers = [
            layer
            for model in (actor, critic)
            for layer in model.layers
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_state")
        ]

        self._window = ObservationWindow(self.window_length)
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None
        self._obs_shape: tuple | None = None
        self._input_shapes: list[tuple] | None = None  # model-side shapes of each observation input
        self._sample_into = False  # whether the memory writes training batches straight into the packed input
        self._fns: dict = {}
        self._nets: tuple[_ModelWeights, ...] = ()
        self._flat_allowed = True
        self._pulled = False  # whether a flat training state holds the current weights
        self._pending: tuple[bool, bool] | None = None
        self._pending_hard_update = False
        self._last_metrics = np.full(len(_BASE_METRICS), np.nan, dtype=np.float32)
        self._metric_fns: list = []
        self._metric_names: list[str] = []
        self.recent_observation: Any = None
        self.recent_action: np.ndarray | None = None

    # ------------------------------------------------------------------ setup
    def _clone(self, model: keras.Model, name: str) -> keras.Model:
        try:
            with keras.saving.custom_object_scope(self.custom_model_objects):
                clone = keras.models.clone_model(model)
        except Exception as e:  # noqa: BLE001 - any failure means the model cannot be cloned
            raise ValueError(
                f"The {name} could not be cloned into a target network ({e}). Pass its custom layers in "
                f"`custom_model_objects`. Received: custom_model_objects={self.custom_model_objects!r}"
            ) from e
        clone.set_weights(model.get_weights())
        return clone

    def get_config(self) -> dict[str, Any]:
        config = {
            "nb_actions": self.nb_actions,
            "gamma": self.gamma,
            "batch_size": self.batch_size,
            "nb_steps_warmup_critic": self.nb_steps_warmup_critic,
            "nb_steps_warmup_actor": self.nb_steps_warmup_actor,
            "train_interval": self.train_interval,
            "gradient_steps": self.gradient_steps,
            "memory_interval": self.memory_interval,
            "delta_clip": self.delta_clip,
            "target_model_update": self.target_model_update,
            "jit_compile": "auto" if self._jit_auto else self.jit_compile,
            "actor": self.actor.name,
            "critic": self.critic.name,
        }
        if hasattr(self.memory, "get_config"):
            config["memory"] = self.memory.get_config()
        if self.random_process is not None and hasattr(self.random_process, "get_config"):
            config["random_process"] = {
                "class_name": type(self.random_process).__name__,
                "config": self.random_process.get_config(),
            }
        return config

    def compile(self, optimizer: Any, metrics: list | None = None) -> None:
        """Sets the optimizers and the extra metrics.

        Args:
            optimizer: one Keras optimizer (or its name, e.g. `'adam'`), cloned so the actor and
                the critic each get their own; or a pair `[actor_optimizer, critic_optimizer]`.
            metrics: functions or names (e.g. `['mae']`) of `metric(y_true, y_pred)` evaluated on
                the critic's TD targets and predictions, reported after `critic_loss`,
                `actor_loss` and `mean_q`. Defaults to `None`.

        Raises:
            TypeError, ValueError: for an unknown optimizer or metric, or a pair of the wrong size.
        """
        if isinstance(optimizer, (list, tuple)):
            if len(optimizer) != 2:
                raise ValueError(
                    "`optimizer` must be one optimizer or a pair [actor_optimizer, critic_optimizer]. "
                    f"Received: {len(optimizer)} optimizers"
                )
            actor_opt = get_optimizer(optimizer[0], "optimizer[0]")
            critic_opt = get_optimizer(optimizer[1], "optimizer[1]")
            if critic_opt is actor_opt:
                critic_opt = clone_optimizer(actor_opt)
        else:
            actor_opt = get_optimizer(optimizer, "optimizer")
            critic_opt = clone_optimizer(actor_opt)
        if actor_opt.built:
            actor_opt = clone_optimizer(actor_opt)
        if critic_opt.built:
            critic_opt = clone_optimizer(critic_opt)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"`metrics` must be a list. Received: metrics={metrics!r}")
        metric_fns, metric_names = [], []
        for m in metrics or []:
            fn = m
            if isinstance(m, str):
                try:
                    fn = keras.metrics.get(m)
                except ValueError as e:
                    raise ValueError(f"Unknown metric. Received: metrics={metrics!r}") from e
            if isinstance(fn, keras.metrics.Metric):
                fn = getattr(fn, "_fn", None)
            if not callable(fn):
                raise TypeError(f"Each metric must be a function or a name. Received: metric={m!r}")
            metric_fns.append(fn)
            metric_names.append(m if isinstance(m, str) else getattr(fn, "__name__", type(fn).__name__))
        self._push()  # a re-compile keeps the weights trained so far
        flat = (
            self._flat_allowed
            and _elementwise(actor_opt)
            and _elementwise(critic_opt)
            and _flattenable(self.actor)
            and _flattenable(self.critic)
        )
        if flat:
            self._nets = (
                _FlatWeights(self.actor, "actor_weights"),
                _FlatWeights(self.critic, "critic_weights"),
                _FlatWeights(self.target_actor, "target_actor_weights"),
                _FlatWeights(self.target_critic, "target_critic_weights"),
            )
        else:
            self._nets = tuple(
                _ModelWeights(m) for m in (self.actor, self.critic, self.target_actor, self.target_critic)
            )
        actor_opt.build(self._nets[0].variables)
        critic_opt.build(self._nets[1].variables)
        self._pulled = False
        self.actor_optimizer = actor_opt
        self.critic_optimizer = critic_opt
        self._metric_fns = metric_fns
        self._metric_names = metric_names
        self._last_metrics = np.full(len(_BASE_METRICS) + len(metric_fns), np.nan, dtype=np.float32)
        self._fns = {}
        self.compiled = True

    @property
    def layers(self) -> list[keras.Model]:
        """`[actor, critic]`."""
        return [self.actor, self.critic]

    @property
    def metrics_names(self) -> list[str]:
        """`['critic_loss', 'actor_loss', 'mean_q', *metrics, *processor.metrics_names]`."""
        names = _BASE_METRICS + self._metric_names
        if self.processor is not None:
            names = names + list(self.processor.metrics_names)
        return names

    @property
    def trace_count(self) -> int:
        """How many times the agent's compiled functions have been traced (for retrace checks)."""
        return sum(entry[0].experimental_get_tracing_count() for entry in self._fns.values())

    def reset_states(self) -> None:
        """Resets the noise process, the observation window and stateful layers (each episode)."""
        if self.random_process is not None and hasattr(self.random_process, "reset_states"):
            self.random_process.reset_states()
        self._window.reset()
        for layer in self._stateful_layers:
            layer.reset_state()
        self.recent_observation = None
        self.recent_action = None

    def _check_env(self, env: Any) -> None:
        space = getattr(env, "action_space", None)
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(
                f"DDPG needs a continuous action space (gymnasium.spaces.Box). Received: env.action_space={space!r}"
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
                "DDPG needs a bounded action space to clip its noisy actions to (or a Processor whose "
                f"process_action maps actions). Received: env.action_space={space!r}"
            )
        if finite and not maps_actions:
            self._low = space.low.astype(np.float32)
            self._high = space.high.astype(np.float32)
        else:
            self._low = self._high = None
        obs_space = getattr(env, "observation_space", None)
        if self.processor is None and isinstance(obs_space, gym.spaces.Box):
            self._setup_inputs(np.zeros(obs_space.shape, dtype=obs_space.dtype), source="env.observation_space.shape")

    def _process_states(self, states: np.ndarray) -> list[np.ndarray]:
        if self.processor is not None:
            states = self.processor.process_state_batch(states)
        if isinstance(states, (list, tuple)):
            return [np.asarray(s) for s in states]
        return [np.asarray(states)]

    def _setup_inputs(self, observation: Any, source: str = "observation") -> None:
        """Checks an observation against the models' inputs and records the input shapes."""
        obs = np.asarray(observation)
        if self._obs_shape == obs.shape and self._input_shapes is not None:
            return
        w = self.window_length
        inputs = self._process_states(np.zeros((1, w) + obs.shape, dtype=obs.dtype))
        if len(inputs) != len(self.actor.inputs):
            raise ValueError(
                f"The actor has {len(self.actor.inputs)} observation input(s) but the (processed) state gives "
                f"{len(inputs)}. Use a Processor whose process_state_batch returns one array per input. "
                f"Received: {source}={obs.shape}"
            )
        shapes = []
        for k, (x, model_in) in enumerate(zip(inputs, self.actor.inputs)):
            want = tuple(model_in.shape[1:])
            got = tuple(x.shape[1:])
            critic_want = tuple(self._critic_obs_inputs[k].shape[1:])
            if _fits(got, want):
                shape = got
            elif w == 1 and self.processor is None and _fits(got[1:], want):
                shape = got[1:]  # plain obs_shape inputs when window_length == 1
            else:
                raise ValueError(
                    f"Observations of shape {obs.shape} with window_length={w} give states of shape {got}, which "
                    f"does not fit the actor's input shape {tuple(model_in.shape)}. Received: {source}={obs.shape}"
                )
            if not _fits(shape, critic_want):
                raise ValueError(
                    f"States of shape {shape} do not fit the critic's observation input shape "
                    f"{tuple(self._critic_obs_inputs[k].shape)}. Received: {source}={obs.shape}"
                )
            shapes.append(shape)
        if self._input_shapes is not None and shapes != self._input_shapes:
            self._fns = {}
        self._obs_shape = obs.shape
        self._input_shapes = shapes
        self._sample_into = (
            len(shapes) == 1
            and callable(getattr(self.memory, "sample_into", None))
            and (self.processor is None or type(self.processor).process_state_batch is Processor.process_state_batch)
        )

    @property
    def flat_weights(self) -> bool:
        """Whether training packs each network's small weight arrays into one flat variable (see the DDPG guide).

        Chosen by `compile`: on when both optimizers are element-wise Keras optimizers (SGD, Adam,
        AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl; no `clipnorm`, no
        weight-decay exclusions) and both models hold only float32 trainable weights. Arrays of 4 096
        elements or more get a variable each. The maths is the same either way; the flat layout
        makes each training step much cheaper.
        """
        return bool(self._nets) and isinstance(self._nets[0], _FlatWeights)

    def _pull(self) -> None:
        """Copies the models' weights into the flat training state."""
        if self.flat_weights and not self._pulled:
            for net in self._nets:
                net.pull()
            self._pulled = True

    def _push(self) -> None:
        """Copies the flat training state back into the models' own variables, for good."""
        self._sync_for_save()
        self._pulled = False

    def _on_run_begin(self, training: bool) -> None:
        if training:
            self._pull()

    def _on_run_end(self, training: bool) -> None:
        self._push()

    # ----------------------------------------------------------- the graph
    def _split(self, flat: tf.Tensor, shapes: list[tuple]) -> list[tf.Tensor]:
        sizes = [math.prod(s) for s in shapes]
        parts = tf.split(flat, sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, shapes)]

    def _critic_inputs(self, states: list[tf.Tensor], action: tf.Tensor) -> list[tf.Tensor]:
        inputs = list(states)
        inputs.insert(self._action_index, action)
        return inputs

    @staticmethod
    def _model_input(states: list[tf.Tensor]) -> Any:
        return states[0] if len(states) == 1 else states

    def _batch_shapes(self, n: int) -> list[tuple]:
        return [(n,) + s for s in self._input_shapes]

    def _layout(self) -> tuple[list[tuple], int]:
        """Shapes packed into one training call: act states, s0, s1, then [action, reward, terminal] rows.

        The batch parts hold `gradient_steps` batches of `batch_size` one after another.
        """
        b, a = self.batch_size * self.gradient_steps, self.nb_actions
        shapes = self._batch_shapes(1) + self._batch_shapes(b) + self._batch_shapes(b) + [(b, a + 2)]
        return shapes, len(self._input_shapes)

    def _train_graph(self, flat: tf.Tensor, train_critic: bool, train_actor: bool) -> tf.Tensor:
        shapes, n = self._layout()
        parts = self._split(flat, shapes)
        b = self.batch_size
        steps = []
        for k in range(self.gradient_steps):  # each on its own batch, in order
            batch = parts[n:] if self.gradient_steps == 1 else [p[k * b : (k + 1) * b] for p in parts[n:]]
            steps.append(self._gradient_step(batch[:n], batch[n : 2 * n], batch[2 * n], train_critic, train_actor))
        metrics = tf.reduce_mean(tf.stack(steps), axis=0) if len(steps) > 1 else steps[0]
        next_action = self._nets[0](self._model_input(parts[:n]), training=False)[0]  # [A]
        return tf.concat([tf.cast(next_action, tf.float32), metrics], 0)

    def _gradient_step(
        self, s0: list[tf.Tensor], s1: list[tf.Tensor], rows: tf.Tensor, train_critic: bool, train_actor: bool
    ) -> tf.Tensor:
        """One DDPG update on a batch (states `[B, ...]` per input, `rows` `[B, A + 2]`); returns its metrics."""
        actor, critic, target_actor, target_critic = self._nets
        a = self.nb_actions
        action, reward, terminal = rows[:, :a], rows[:, a], rows[:, a + 1]  # [B, A], [B], [B]
        nan = tf.constant(np.nan, tf.float32)
        critic_loss = actor_loss = mean_q = nan
        extra = [nan] * len(self._metric_fns)
        if train_critic:
            a1 = target_actor(self._model_input(s1), training=False)  # [B, A]
            q1 = target_critic(self._critic_inputs(s1, a1), training=False)[:, 0]  # [B]
            y = tf.stop_gradient(reward + self.gamma * (1.0 - terminal) * q1)  # [B]
            with tf.GradientTape() as tape:
                q0 = critic(self._critic_inputs(s0, action), training=True)[:, 0]  # [B]
                critic_loss = tf.reduce_mean(_huber(y - q0, self.delta_clip))
            variables = critic.variables
            self.critic_optimizer.apply(tape.gradient(critic_loss, variables), variables)
            mean_q = tf.reduce_mean(q0)
            extra = [tf.reduce_mean(fn(y[:, None], q0[:, None])) for fn in self._metric_fns]
            if self.target_model_update < 1:
                target_critic.soft_update(critic, self.target_model_update)
        if train_actor:
            with tf.GradientTape() as tape:
                mu = actor(self._model_input(s0), training=True)  # [B, A]
                q = critic(self._critic_inputs(s0, mu), training=False)  # [B, 1], the critic just updated
                actor_loss = -tf.reduce_mean(q)
            variables = actor.variables
            self.actor_optimizer.apply(tape.gradient(actor_loss, variables), variables)
            if self.target_model_update < 1:
                target_actor.soft_update(actor, self.target_model_update)
        return tf.cast(tf.stack([critic_loss, actor_loss, mean_q] + extra), tf.float32)

    def _act_graph(self, flat: tf.Tensor, net: _ModelWeights) -> tf.Tensor:
        states = self._model_input(self._split(flat, self._batch_shapes(1)))
        return tf.cast(net(states, training=False)[0], tf.float32)

    def _hard_update_graph(self) -> tf.Tensor:
        actor, critic, target_actor, target_critic = self._nets
        target_actor.copy_from(actor)
        target_critic.copy_from(critic)
        return tf.constant(0)

    def _fn(self, key: Any, size: int | None) -> Any:
        """Returns a callable running the compiled function for `key` on a flat input of `size` floats.

        The function is traced once for that fixed input signature (without AutoGraph unless the
        models need it), then called through its traced graph directly (see `_direct_caller`).
        """
        entry = self._fns.get(key)
        if entry is not None and entry[1] == size:
            return entry[2]
        if key == "act":

            def python_fn(flat):
                return self._act_graph(flat, _ModelWeights(self.actor))

        elif key == "act_train":

            def python_fn(flat):
                return self._act_graph(flat, self._nets[0])

        elif key == "hard_update":
            python_fn = self._hard_update_graph
        else:
            _, train_critic, train_actor = key

            def python_fn(flat, _c=train_critic, _a=train_actor):
                return self._train_graph(flat, _c, _a)

        # Acting alone (and a hard target copy) runs a few ops: XLA would not repay compiling it.
        jit = bool(self.jit_compile) and key not in ("act", "act_train", "hard_update")
        # Traced without AutoGraph, which took ~0.6 of the ~0.9 s a training step took to trace here.
        # A metric function with Python control flow on tensors needs it: then the trace fails and is redone.
        fn = tf.function(python_fn, jit_compile=jit, autograph=False)
        if size is None:
            caller = fn
        else:
            spec = tf.TensorSpec([size], tf.float32)
            try:
                caller = _direct_caller(fn, spec)
            except TypeError:  # e.g. OperatorNotAllowedInGraphError: `if tensor:` in a metric function
                fn = tf.function(python_fn, jit_compile=jit, autograph=True)
                caller = _direct_caller(fn, spec)
        self._fns[key] = (fn, size, caller)
        return caller

    def _call(self, key: Any, flat: np.ndarray | None = None) -> np.ndarray:
        size = None if flat is None else flat.shape[0]
        try:
            fn = self._fn(key, size)
            out = fn() if flat is None else fn(flat)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, NotImplementedError) as e:
            if not (self.jit_compile and self._jit_auto):
                raise
            warnings.warn(f"XLA could not compile the training step ({e}); running it without XLA.", stacklevel=3)
            self.jit_compile = False
            self._fns = {}
            fn = self._fn(key, size)
            out = fn() if flat is None else fn(flat)
        return out.numpy()

    # ----------------------------------------------------------- the loop
    def forward(self, observation: Any) -> np.ndarray:
        """Returns the action for `observation`: the actor's, plus noise while training, clipped.

        While training, the gradient step scheduled by the last `backward` runs in the same
        compiled call, before the actor picks this action.
        """
        if self._input_shapes is None or np.shape(observation) != self._obs_shape:
            self._setup_inputs(observation)
        if self.training != self._pulled and self.flat_weights:
            # Outside `fit` (a hand-written loop): move the weights where this call reads them.
            if self.training:
                self._pull()
            else:
                self._push()
        state = self._window.push(observation)  # [W, *obs]
        if self._pending is not None and self.training:
            train_critic, train_actor = self._pending
            flat = self._pack_training_inputs(state)
            self._pending = None  # cleared first: an interrupt can never run this step twice
            out = self._call(("train", train_critic, train_actor), flat)
            action = out[: self.nb_actions]
            metrics = out[self.nb_actions :]
            self._last_metrics = metrics
            if self._pending_hard_update:
                self._call("hard_update")
                self._pending_hard_update = False
        else:
            flat = np.concatenate([p.reshape(-1) for p in self._process_states(state[None])], dtype=np.float32)
            action = self._call("act_train" if self.training else "act", flat)
        if self.training and self.random_process is not None:
            action = (action + self.random_process.sample()).astype(np.float32)
        if self._low is not None:
            action = np.minimum(np.maximum(action, self._low), self._high)
        self.recent_observation = observation
        self.recent_action = action
        return action

    def _pack_training_inputs(self, state: np.ndarray) -> np.ndarray:
        """One float32 vector in `_layout`'s order: the acting state, then `gradient_steps` batches from memory.

        Each batch is drawn by its own call to the memory, so the memory's sampling rules hold per batch.
        """
        b, k = self.batch_size, self.gradient_steps
        if self._sample_into:
            # One state input, states used as stored: the memory writes each batch in place.
            n, kb = state.size, k * b
            flat = np.empty(n * (1 + 2 * kb) + kb * (self.nb_actions + 2), dtype=np.float32)
            flat[:n] = state.reshape(-1)
            shape = (kb,) + state.shape
            s0 = flat[n : n * (1 + kb)].reshape(shape)
            s1 = flat[n * (1 + kb) : n * (1 + 2 * kb)].reshape(shape)
            rows = flat[n * (1 + 2 * kb) :].reshape(kb, self.nb_actions + 2)
            for i in range(0, kb, b):
                self.memory.sample_into(b, s0[i : i + b], s1[i : i + b], rows[i : i + b])
            return flat
        batches = [self.memory.sample(b) for _ in range(k)]
        s0 = [self._process_states(batch.state0) for batch in batches]  # [K][inputs]
        s1 = [self._process_states(batch.state1) for batch in batches]
        parts = (
            self._process_states(state[None])
            + [x for per_input in zip(*s0) for x in per_input]  # each input's K batches in a row
            + [x for per_input in zip(*s1) for x in per_input]
            + [
                np.concatenate([batch.action.reshape(b, -1), batch.reward[:, None], batch.terminal[:, None]], axis=1)
                for batch in batches
            ]
        )
        return np.concatenate([np.asarray(p).reshape(-1) for p in parts], dtype=np.float32)

    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Stores the transition and schedules a training step (run fused with the next `forward`).

        Returns:
            The metrics of the most recent training step, ordered as `metrics_names` (NaN before
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
        train_critic = step > self.nb_steps_warmup_critic
        train_actor = step > self.nb_steps_warmup_actor
        if (train_critic or train_actor) and step % self.train_interval == 0:
            self._pending = (train_critic, train_actor)
        if self.target_model_update >= 1 and step % int(self.target_model_update) == 0:
            if self._pending is not None:
                self._pending_hard_update = True
            else:
                self._call("hard_update")
        return metrics

    def _end_episode(self) -> None:
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()

    # ------------------------------------------------------------ weights
    @staticmethod
    def weights_paths(filepath: str | os.PathLike) -> tuple[str, str]:
        """Returns the actor's and the critic's weight file paths for `filepath`.

        - `_actor` / `_critic` goes before the suffix, as keras-rl did (`'ddpg.weights.h5'` ->
          `'ddpg_actor.weights.h5'`).
        - A name with `{}` gets `actor` / `critic` in its place instead (`'ddpg_{}_weights.h5f'`).
        - Keras 3 needs names ending in `.weights.h5`: a trailing `.h5f`, `.h5` or `.hdf5` is
          replaced by it, so `'ddpg_{}_weights.h5f'` -> `'ddpg_actor_weights.weights.h5'`.
        """
        filepath = os.fspath(filepath)

        def keras_name(path: str) -> str:
            if path.endswith(".weights.h5"):
                return path
            for ext in (".h5f", ".hdf5", ".h5"):
                if path.endswith(ext):
                    path = path[: -len(ext)]
                    break
            return path + ".weights.h5"

        if "{}" in filepath:
            return keras_name(filepath.format("actor")), keras_name(filepath.format("critic"))
        path = keras_name(filepath)
        stem = path[: -len(".weights.h5")]
        return f"{stem}_actor.weights.h5", f"{stem}_critic.weights.h5"

    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = False) -> None:
        """Saves the actor and the critic as two Keras `.weights.h5` files (see `weights_paths`).

        Each file is written to a temporary name and renamed, so a crash never leaves a damaged
        file in place of a good one.

        Raises:
            FileExistsError: if a file exists and `overwrite` is `False`.
        """
        paths = self.weights_paths(filepath)
        self._sync_for_save()
        if not overwrite:
            for path in paths:
                if os.path.exists(path):
                    raise FileExistsError(
                        f"{path} already exists; pass overwrite=True to replace it. Received: filepath={filepath!r}"
                    )
        for model, path in zip((self.actor, self.critic), paths):
            with atomic_path(path) as tmp:
                model.save_weights(tmp)

    def _sync_for_save(self) -> None:
        """During `fit` the flat training state is current: refresh the models, keep training on."""
        if self.flat_weights and self._pulled:
            for net in self._nets:
                net.push()

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Loads what `save_weights(filepath)` wrote and copies it into the target networks.

        Raises:
            ValueError: if a file is missing, damaged, or holds weights of another architecture.
        """
        paths = self.weights_paths(filepath)
        for path in paths:
            if not os.path.isfile(path):
                raise ValueError(f"The weights file {path} does not exist. Received: filepath={filepath!r}")
        for name, model, path in zip(("actor", "critic"), (self.actor, self.critic), paths):
            _load_model_weights(model, path, name)
        self.target_actor.set_weights(self.actor.get_weights())
        self.target_critic.set_weights(self.critic.get_weights())
        self._pulled = False

    # -------------------------------------------------------- checkpoints
    def _save_checkpoint_files(self, folder: str) -> dict:
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `save_checkpoint()`.")
        self._sync_for_save()
        for name, model in self._checkpoint_models():
            model.save_weights(os.path.join(folder, f"{name}.weights.h5"))
        for name, opt in (("actor_optimizer", self.actor_optimizer), ("critic_optimizer", self.critic_optimizer)):
            with open(os.path.join(folder, f"{name}.npz"), "wb") as f:
                np.savez(f, *[np.asarray(v.numpy()) for v in opt.variables])
        if hasattr(self.memory, "save"):
            self.memory.save(os.path.join(folder, "memory.npz"))
        state: dict[str, Any] = {
            "pending": list(self._pending) if self._pending is not None else None,
            "pending_hard_update": self._pending_hard_update,
            "last_metrics": [None if not np.isfinite(v) else float(v) for v in self._last_metrics],
        }
        if self.random_process is not None and hasattr(self.random_process, "get_state"):
            state["random_process"] = self.random_process.get_state()
        return state

    def _load_checkpoint_files(self, folder: str, state: dict) -> None:
        for name, model in self._checkpoint_models():
            path = os.path.join(folder, f"{name}.weights.h5")
            if not os.path.isfile(path):
                raise ValueError(f"The checkpoint lacks {path}. Received: folder={folder!r}")
            _load_model_weights(model, path, name)
        for name, opt in (("actor_optimizer", self.actor_optimizer), ("critic_optimizer", self.critic_optimizer)):
            path = os.path.join(folder, f"{name}.npz")
            try:
                with np.load(path, allow_pickle=False) as data:
                    values = [data[f"arr_{i}"] for i in range(len(data.files))]
            except Exception as e:  # missing, truncated or damaged file
                raise ValueError(f"The optimizer state {path} is missing or damaged ({e}).") from e
            if len(values) != len(opt.variables) or any(
                tuple(v.shape) != tuple(x.shape) for v, x in zip(opt.variables, values)
            ):
                raise ValueError(f"The optimizer state {path} does not fit this agent's {name}.")
            for v, x in zip(opt.variables, values):
                v.assign(x)
        self._pulled = False
        if hasattr(self.memory, "load"):
            self.memory.load(os.path.join(folder, "memory.npz"))
            if hasattr(self.memory, "end_episode"):
                self.memory.end_episode()  # a resumed run starts a new episode
        pending = state.get("pending")
        self._pending = tuple(bool(x) for x in pending) if pending is not None else None
        self._pending_hard_update = bool(state.get("pending_hard_update", False))
        self._last_metrics = np.array(
            [np.nan if v is None else v for v in state.get("last_metrics", [])], dtype=np.float32
        )
        if "random_process" in state and self.random_process is not None:
            self.random_process.set_state(state["random_process"])

    def _checkpoint_models(self) -> list[tuple[str, keras.Model]]:
        return [
            ("actor", self.actor),
            ("critic", self.critic),
            ("target_actor", self.target_actor),
            ("target_critic", self.target_critic),
        ]


# Keras optimizers whose update is element-wise: on one flat vector they do exactly what they do
# on the separate weights (per-variable `clipnorm` and weight-decay exclusions are not).
_ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion", "Ftrl")


def _elementwise(optimizer: keras.optimizers.Optimizer) -> bool:
    cls = type(optimizer)
    return (
        cls.__module__.startswith("keras.")
        and cls.__name__ in _ELEMENTWISE_OPTIMIZERS
        and getattr(optimizer, "clipnorm", None) is None
        and not getattr(optimizer, "_exclude_from_weight_decay", None)
        and not getattr(optimizer, "_exclude_from_weight_decay_names", None)
    )


def _flattenable(model: keras.Model) -> bool:
    return not model.non_trainable_variables and all(v.dtype == "float32" for v in model.trainable_variables)


class _ModelWeights:
    """A network used through its own Keras variables (any model, any optimizer)."""

    def __init__(self, model: keras.Model):
        self.model = model

    @property
    def variables(self) -> list:
        """What the optimizer updates."""
        return self.model.trainable_variables

    @property
    def state(self) -> list:
        """What a target network copies from its online network."""
        return self.model.weights

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        return self.model(inputs, training=training)

    def soft_update(self, source: _ModelWeights, tau: float) -> None:
        for t, s in zip(self.state, source.state):
            t.assign(t * (1.0 - tau) + s * tau)

    def copy_from(self, source: _ModelWeights) -> None:
        for t, s in zip(self.state, source.state):
            t.assign(s)

    def pull(self) -> None:
        """Nothing to do: the model's variables are the state."""

    def push(self) -> None:
        """Nothing to do: the model's variables are the state."""


# Weight arrays at least this large get a variable each in the flat layout: slicing them out of a
# flat vector copies them on every use, which costs more than a variable's own overhead.
_PACK_MAX_SIZE = 4096


class _FlatWeights(_ModelWeights):
    """A network trained through variables of its own, its small weight arrays packed into one.

    Each variable a compiled call touches costs a fixed overhead, larger than a small network's
    whole training step; packing the small arrays (all of a small network, the biases and thin
    kernels of a large one) into one flat vector per network removes most of it, and so most
    optimizer slots too. Arrays of `_PACK_MAX_SIZE` elements or more get a variable each: slicing
    them out of a flat vector would copy them on every use. The model's own variables are
    refreshed by `push` (at the end of `fit` and before anything is saved) and read back by `pull`
    (at the start of `fit`).
    """

    def __init__(self, model: keras.Model, name: str):
        super().__init__(model)
        weights = list(model.trainable_variables)
        self.shapes = [tuple(v.shape) for v in weights]
        self.packed = [i for i, s in enumerate(self.shapes) if math.prod(s) < _PACK_MAX_SIZE]
        self.unpacked = [i for i in range(len(weights)) if i not in self.packed]
        self.sizes = [math.prod(self.shapes[i]) for i in self.packed]
        self.flat = (
            keras.Variable(np.zeros(sum(self.sizes), np.float32), name=name, dtype="float32") if self.packed else None
        )
        self.own = [
            keras.Variable(np.zeros(self.shapes[i], np.float32), name=f"{name}_{i}", dtype="float32")
            for i in self.unpacked
        ]

    @property
    def variables(self) -> list:
        return ([self.flat] if self.flat is not None else []) + self.own

    @property
    def state(self) -> list:
        return self.variables

    def _values(self) -> list[tf.Tensor]:
        values: list[Any] = [None] * len(self.shapes)
        if self.flat is not None:
            for i, part in zip(self.packed, tf.split(self.flat.value, self.sizes)):
                values[i] = tf.reshape(part, self.shapes[i])
        for i, v in zip(self.unpacked, self.own):
            values[i] = v.value
        return values

    def __call__(self, inputs: Any, training: bool) -> tf.Tensor:
        outputs, _ = self.model.stateless_call(self._values(), [], inputs, training=training)
        return outputs

    def pull(self) -> None:
        weights = self.model.trainable_variables
        if self.flat is not None:
            self.flat.assign(np.concatenate([np.ravel(weights[i].numpy()) for i in self.packed]))
        for i, v in zip(self.unpacked, self.own):
            v.assign(weights[i].numpy())

    def push(self) -> None:
        weights = self.model.trainable_variables
        if self.flat is not None:
            values = np.split(self.flat.numpy(), np.cumsum(self.sizes)[:-1])
            for i, x in zip(self.packed, values):
                weights[i].assign(x.reshape(self.shapes[i]))
        for i, v in zip(self.unpacked, self.own):
            weights[i].assign(v.numpy())


_DIRECT_MODE: str | None = None


def _executor(concrete: Any, mode: str) -> Any:
    """Returns `run(x: np.ndarray) -> tf.Tensor` running `concrete` (one float32 input, one output).

    `mode` picks how the traced graph is reached:
    - `"execute"`: the function op is executed by name, with the input built straight from the numpy
      array. This skips every Python layer of `tf.function` (signature binding, cache lookup,
      context managers, attribute building), which together cost more than a small network's
      whole training step on small machines.
    - `"call_flat"`: through `ConcreteFunction._call_flat` (skips signature binding only).
    - `"public"`: the public call.
    The first two rely on TensorFlow internals, so `_direct_mode` checks them once per process.
    """
    if mode == "execute":
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import context, core
        from tensorflow.python.framework import ops

        ctx = context.context()
        ctx.ensure_initialized()
        name = concrete._inference_function.name
        name = name.decode() if isinstance(name, bytes) else str(name)
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        captures = list(concrete.captured_inputs)
        execute, tensor, not_ok = pywrap_tfe.TFE_Py_Execute, ops.EagerTensor, core._NotOkStatusException
        float32 = tf.float32.as_datatype_enum
        # Without accelerators the input is built in host memory directly (no device name): ~2 us,
        # against ~11 us through the placement that a device name asks for.
        host_only = not _accelerator_visible()

        def run(x: np.ndarray) -> tf.Tensor:
            device = ctx.device_name
            inputs = [tensor(x, None if host_only else device, float32)] + captures
            try:
                return execute(ctx._handle, device, name, inputs, attrs, 1)[0]
            except not_ok as e:
                raise core._status_to_exception(e) from None

        return run
    if mode == "call_flat":
        call_flat, captures = concrete._call_flat, list(concrete.captured_inputs)
        return lambda x: call_flat([tf.constant(x)], captures)
    return lambda x: concrete(tf.constant(x))


def _accelerator_visible() -> bool:
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _intra_op_threads() -> int:
    """The threads TensorFlow may split one op over (its setting, else `TF_NUM_INTRAOP_THREADS`, else the cores)."""
    n = tf.config.threading.get_intra_op_parallelism_threads()
    if n <= 0:
        try:
            n = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
        except ValueError:
            n = 0
    if n <= 0:  # TensorFlow's default: one per core it may use
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return n


# On CPUs, "auto" tells small networks from large ones by their largest trainable weight array.
# Measured at 1 024 values (small) and 65 536 (large); the cut-off between is not measured.
_XLA_MIN_WEIGHTS = 4096

# The XLA:CPU setting this library asks for when TensorFlow runs each op on one thread (see
# `_xla_cpu_flags`): schedule each compiled step in the order that keeps the fewest buffers alive
# instead of the order that exposes the most parallel work. Small steps then run as long chains
# rather than being handed between threads op by op; the arithmetic is the same. With several
# intra-op threads it did not help (large networks: 0.87-1.12 times the speed without it).
_XLA_CPU_FLAG = "xla_cpu_enable_concurrency_optimized_scheduler"


def _user_xla_cpu_flag(xla_flags: str) -> bool | None:
    """The value `XLA_FLAGS` gives `_XLA_CPU_FLAG` (the last one wins, as in XLA), or None if it is absent."""
    value = None
    for token in xla_flags.split():
        name, _, given = token.lstrip("-").partition("=")
        if name == _XLA_CPU_FLAG:
            value = given.strip().lower() not in ("false", "0")
    return value


def _sequential_xla_schedule() -> bool:
    """Whether XLA:CPU compiles with the memory-ordered schedule: as `XLA_FLAGS` says, else ours on one thread."""
    user = _user_xla_cpu_flag(os.environ.get("XLA_FLAGS", ""))
    return (not user) if user is not None else _intra_op_threads() <= 1


@contextlib.contextmanager
def _xla_cpu_flags():
    """Adds `--<_XLA_CPU_FLAG>=false` to `XLA_FLAGS` for the duration, where `_sequential_xla_schedule` says so.

    Only when TensorFlow runs each op on one thread and `XLA_FLAGS` does not name the flag. XLA
    reads `XLA_FLAGS` once per process, at its first compilation: `_direct_mode` compiles its
    probe inside this context, so the setting holds for the rest of the process (unless XLA had
    compiled something before, in which case nothing changes). The variable itself is restored,
    so child processes do not inherit it.
    """
    before = os.environ.get("XLA_FLAGS")
    if _user_xla_cpu_flag(before or "") is None and _intra_op_threads() <= 1:
        os.environ["XLA_FLAGS"] = f"{before} --{_XLA_CPU_FLAG}=false" if before else f"--{_XLA_CPU_FLAG}=false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


def _xla_pays(models: tuple) -> bool:
    """What `jit_compile="auto"` picks: XLA on a GPU or TPU; on CPUs only where it was not slower.

    Over 20 000-step runs on 2 CPU cores (see docs/benchmarks.md; two machines were measured and
    this follows the earlier one where they disagree):
    - small networks (every trainable weight array under `_XLA_MIN_WEIGHTS` values) are fastest
      with XLA when TensorFlow runs each op on one thread (`TF_NUM_INTRAOP_THREADS=1`) and XLA
      uses the memory-ordered schedule (`_xla_cpu_flags`), and fastest without XLA otherwise
      (on the second, newer machine XLA was 1.3 times as fast with several threads too);
    - large networks are fastest with XLA while TensorFlow may split an op over several threads
      (each large matrix product is split too, and the pieces queue behind the ops running beside
      them, while XLA runs its kernels one after another), and not slower without it on one thread.
    """
    if _accelerator_visible():
        return True
    small = all(math.prod(w.shape) < _XLA_MIN_WEIGHTS for m in models for w in m.trainable_weights)
    if _intra_op_threads() <= 1:
        return small and _sequential_xla_schedule()
    return not small


def _mode_works(mode: str) -> bool:
    try:
        v = tf.Variable([2.0, 3.0])

        def probe(x):
            v.assign_add(x)
            return v * 2.0 + 1.0

        concrete = tf.function(probe, jit_compile=True).get_concrete_function(tf.TensorSpec([2], tf.float32))
        out = _executor(concrete, mode)(np.array([5.0, 7.0], np.float32)).numpy()
        return bool(np.array_equal(out, [15.0, 21.0]) and np.array_equal(v.numpy(), [7.0, 10.0]))
    except Exception:  # noqa: BLE001 - any failure means: not this mode
        return False


def _direct_mode() -> str:
    """The fastest way of calling a traced graph that works with this TensorFlow (see `_executor`).

    Checked once per process on a small XLA function that updates a captured variable: each mode
    must return what the public call returns and apply the update exactly once.
    """
    global _DIRECT_MODE
    if _DIRECT_MODE is None:
        with _xla_cpu_flags():  # the probe is this library's first XLA compilation
            _DIRECT_MODE = next((m for m in ("execute", "call_flat") if _mode_works(m)), "public")
    return _DIRECT_MODE


def _direct_caller(fn: Any, spec: tf.TensorSpec) -> Any:
    """Traces `fn` for `spec`; returns a callable taking a numpy array, running the graph directly."""
    return _executor(fn.get_concrete_function(spec), _direct_mode())


def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or w == g for g, w in zip(got, want))


def _huber(x: tf.Tensor, delta: float) -> tf.Tensor:
    if math.isinf(delta):
        return 0.5 * tf.square(x)
    abs_x = tf.abs(x)
    return tf.where(abs_x <= delta, 0.5 * tf.square(x), delta * (abs_x - 0.5 * delta))


def _load_model_weights(model: keras.Model, path: str, name: str) -> None:
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as e:
        raise ValueError(
            f"Could not load the {name}'s weights from {path}: the file is damaged or holds another architecture "
            f"({e}). Received: filepath={path!r}"
        ) from e
