"""SARSA (Rummery & Niranjan, 1994) with a Keras Q-network: on-policy TD learning, one transition at a time."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.off_policy import huber
from rl.agents.value_based import QPolicyMixin, check_greedy_test_policy, check_q_model
from rl.core import Processor
from rl.engine import DeepAgent, Fields, Nets, VariableWeights
from rl.engine.inputs import fit_state_shapes, model_input, process_states, state_fields
from rl.util import check_int, check_number

__all__ = ["SARSAAgent", "SarsaAgent"]


class SARSAAgent(QPolicyMixin, DeepAgent):
    """SARSA: `Q(s, a)` moves toward `r + gamma * Q(s', a')`, where `a'` is the action the policy takes next.

    Each trained step makes one gradient step on that single transition (no replay memory):

    ```
    y    = r                               if s' is terminal
    y    = r + gamma * Q(s', a')           otherwise; a' = policy(Q(s'))
    loss = huber(y - Q(s, a), delta_clip)  # 0.5 * td^2 when delta_clip=inf
    ```

    `a'` is only known once the policy has acted in `s'`, so the update of a step runs in the
    compiled call of the step after (training first, then the Q-values of the new state): one
    call per environment step, with the same result as updating right away. After a time-limit
    truncation, `a'` is what the policy picks in the real final observation (a truncation is not
    a termination).

    Args:
        model: Keras model from observation(s) to one Q-value per action, output shape
            `(None, nb_actions)`. Its observation input may be shaped `(1,) + obs_shape` (keras-rl
            style, e.g. `Flatten` first) or `obs_shape`.
        nb_actions: number of discrete actions; the action space must be
            `gymnasium.spaces.Discrete(nb_actions)` or another space with `n == nb_actions` and no
            shape (see `rl.agents.value_based.discrete_action_count`). Defaults to `None` (the
            model's output width).
        policy: the policy used in `fit`, given `q_values=` (see `rl.policy`). Defaults to
            `EpsGreedyQPolicy()` (`eps=0.1`).
        test_policy: the policy used in `test`. Defaults to `GreedyQPolicy()`.
        gamma: discount factor in `[0, 1]`. Defaults to `0.99`.
        nb_steps_warmup: steps before training starts. Defaults to `10`.
        train_interval: train on every this many steps' transitions. Defaults to `1`.
        delta_clip: Huber loss threshold on the TD error; `inf` gives `0.5 * td^2`. Defaults to
            `inf`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step with XLA: `True`, `False` or `"auto"` (see
            `rl.engine.DeepAgent`). Defaults to `"auto"`.
        custom_model_objects: custom layers or objects of the model. Defaults to `None`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    sarsa = SARSAAgent(model=model, nb_actions=2, nb_steps_warmup=10, policy=BoltzmannQPolicy())
    sarsa.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    sarsa.fit(env, nb_steps=50_000)
    ```
    """

    base_metrics = ("loss", "mean_q")
    weights_roles = ("model",)
    optimizer_groups = {"model": ["model"]}

    def __init__(
        self,
        model: keras.Model,
        nb_actions: int | None = None,
        policy: Any = None,
        test_policy: Any = None,
        gamma: float = 0.99,
        nb_steps_warmup: int = 10,
        train_interval: int = 1,
        delta_clip: float = np.inf,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
    ):
        super().__init__(processor=processor, jit_compile=jit_compile, custom_model_objects=custom_model_objects)
        self.nb_actions = check_q_model(model, nb_actions)
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0)
        self.nb_steps_warmup = check_int("nb_steps_warmup", nb_steps_warmup, minimum=0)
        self.train_interval = check_int("train_interval", train_interval, minimum=1)
        self.delta_clip = check_number("delta_clip", delta_clip, low=0.0, low_inclusive=False, allow_inf=True)
        self.add_network("model", model)
        self._init_policies(policy, test_policy)
        self._obs_shape: tuple | None = None
        self._input_shapes: list[tuple] | None = None
        self._fields_cache: dict[int, Fields] = {}
        # Crosses calls: the last step's transition waiting for a' (state inputs, action, reward), and
        # the transitions with their targets, trained at the start of the next compiled call.
        self._open: tuple[list[np.ndarray], int, float] | None = None
        self._ready: list[tuple[list[np.ndarray], int, float]] = []
        self._last_metrics = np.full(len(self.base_metrics), np.nan, dtype=np.float32)
        self.recent_observation: Any = None
        self.recent_action: int | None = None

    @property
    def model(self) -> keras.Model:
        """The Q-network."""
        return self.models["model"]

    def compile(self, optimizer: Any, metrics: list | None = None) -> None:
        super().compile(optimizer, metrics)
        self._last_metrics = np.full(len(self.base_metrics) + len(self._metric_fns), np.nan, dtype=np.float32)
        self._fields_cache = {}

    def get_config(self) -> dict[str, Any]:
        return {
            "nb_actions": self.nb_actions,
            "gamma": self.gamma,
            "nb_steps_warmup": self.nb_steps_warmup,
            "train_interval": self.train_interval,
            "delta_clip": self.delta_clip,
            "jit_compile": self._jit_setting,
            "model": self.model.name,
            **self._policy_configs(),
        }

    def serving_policy(self) -> Any:
        """The greedy policy `argmax(Q)` and the Q-values, for `export` (see `rl.export`).

        Raises:
            ValueError: if the test policy is not greedy, the agent has not acted yet, or its
                processor batches states in Python only.
        """
        from rl.export import greedy_serving_policy

        check_greedy_test_policy(self)
        self.sync_models()
        return greedy_serving_policy(self, self.model, self._input_shapes, self._obs_shape, 1)

    def check_env(self, env: Any) -> None:
        self._check_discrete_space(env)

    def reset_states(self) -> None:
        super().reset_states()
        self._open = None
        self.recent_observation = self.recent_action = None

    def abandon_episode(self) -> None:
        self._open = None  # an abandoned episode's last transition never gets its a'

    # ------------------------------------------------------------- the maths
    def train_step(self, nets: Nets, state0: Any, action: tf.Tensor, target: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: one gradient step of `huber(target - Q(state0, action))`; returns the metrics."""
        actions = tf.cast(action, tf.int32)  # [B]

        def loss_fn():
            q = nets.model(state0, training=True)  # [B, A]
            q_taken = tf.gather(q, actions, axis=1, batch_dims=1)  # [B]
            return tf.reduce_mean(huber(target - q_taken, self.delta_clip)), (q, q_taken)

        loss, (q, q_taken) = self.minimize("model", loss_fn)
        return {
            "loss": loss,
            "mean_q": tf.reduce_mean(tf.reduce_max(q, axis=1)),
            **self.compiled_metrics(target, q_taken),
        }

    # ------------------------------------------------------------ the graph
    def _model_inputs(self, observation: Any) -> list[np.ndarray]:
        """The model's input arrays (a batch of one) for `observation`."""
        obs = np.asarray(observation)
        parts = process_states(self.processor, obs[None, None])  # [1, 1, *obs]: keras-rl's state of one observation
        if self._input_shapes is None or obs.shape != self._obs_shape:
            self._input_shapes = fit_state_shapes(
                parts, self.model.inputs, obs_shape=obs.shape, window_length=1, drop_window=True
            )
            self._obs_shape = obs.shape
            self._fields_cache = {}
            self.retrace()
        return [p.reshape((1,) + s) for p, s in zip(parts, self._input_shapes)]

    def _fields(self, k: int) -> Fields:
        if k not in self._fields_cache:
            fields = [state_fields(self._input_shapes)]
            if k:
                fields += [state_fields(self._input_shapes, k, "state0"), ("rows", (k, 2))]  # [action, target]
            self._fields_cache[k] = Fields(fields)
        return self._fields_cache[k]

    def _function(self, k: int, training: bool):
        fields = self._fields(k)
        # Outside training the model's own variables hold the weights (pushed when fit ends).
        nets = self.nets if training else Nets({r: VariableWeights(m) for r, m in self.models.items()})
        size = len(self.base_metrics) + len(self._metric_fns)

        def call(flat: tf.Tensor) -> tf.Tensor:
            parts = fields.unpack(flat)
            steps = []
            for i in range(k):  # one gradient step per transition, in order
                state0 = [x[i : i + 1] for x in parts["state0"]]
                row = parts["rows"][i : i + 1]  # [1, 2]
                state0 = model_input(state0)
                steps.append(self._metric_vector(self.train_step(self.nets, state0, row[:, 0], row[:, 1])))
            metrics = self.mean_metrics(steps, size)
            states = parts["state"]
            q = nets.model(model_input(states), training=False)[0]  # [A]
            return tf.concat([tf.cast(q, tf.float32), metrics], 0)

        return call

    def _q_values(self, inputs: list[np.ndarray]) -> np.ndarray:
        """One compiled call: trains on the transitions ready (while training), then Q-values of `inputs`."""
        ready = self._ready if self.training else []
        k = len(ready)
        if k:
            self._ready = []  # cleared first: an interrupt can never train them twice
        fields = self._fields(k)
        flat = np.empty(fields.size, dtype=np.float32)
        for view, part in zip(fields.view(flat, "state"), inputs):
            view[...] = part.reshape(view.shape)
        if k:
            for j, view in enumerate(fields.view(flat, "state0")):
                for i, (state, _, _) in enumerate(ready):
                    view[i] = state[j].reshape(view.shape[1:])
            fields.view(flat, "rows")[...] = [(a, y) for _, a, y in ready]
        training = self.training
        out = self.call_compiled("sarsa", (k, training), lambda: self._function(k, training), flat, may_use_xla=k > 0)
        if k:
            self._last_metrics = out[self.nb_actions :]
        return out[: self.nb_actions]

    # ------------------------------------------------------------- the loop
    def forward(self, observation: Any) -> int:
        """Returns the policy's action for `observation` (the test policy's outside training).

        While training, the same compiled call first trains on the transitions whose targets are
        known; the Q-values of `observation` then give the previous transition its target.
        """
        inputs = self._model_inputs(observation)
        if self.training != self._pulled and self.flat_weights:
            self._pull() if self.training else self._push()  # outside `fit` (a hand-written loop)
        q = self._q_values(inputs)
        action = self.select_action(q)
        if self.training and self._open is not None:
            state0, action0, reward0 = self._open
            self._ready.append((state0, action0, reward0 + self.gamma * float(q[action])))
        self._open = None
        self.recent_observation, self.recent_action = inputs, action
        return action

    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Schedules the update of the step just taken (see the class description).

        Returns:
            The metrics of the most recent training call, then the policy's and the processor's,
            ordered as `metrics_names` (NaN before the first training call).
        """
        if self.training and self.step > self.nb_steps_warmup and self.step % self.train_interval == 0:
            state, action = self.recent_observation, self.recent_action
            if terminal:
                self._ready.append((state, action, float(reward)))
            elif truncated:
                if next_observation is None:
                    raise ValueError(
                        "`next_observation` is required to bootstrap after a truncation. "
                        "Received: next_observation=None"
                    )
                q = self._q_values(self._model_inputs(next_observation))
                self._ready.append((state, action, float(reward) + self.gamma * float(q[self.select_action(q)])))
            else:
                self._open = (state, action, float(reward))
        metrics = self._last_metrics  # read after a truncation's call, which may have trained
        if self.processor is not None and self.processor.metrics_names:
            metrics = np.concatenate([metrics, np.asarray(self.processor.metrics, dtype=np.float32)])
        return self._with_policy_metrics(metrics)

    # -------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        def encode(item: tuple | None) -> dict | None:
            if item is None:
                return None
            state, action, value = item
            return {"state": [p.tolist() for p in state], "action": int(action), "value": float(value)}

        return {
            "open": encode(self._open),
            "ready": [encode(r) for r in self._ready],
            "last_metrics": [None if not np.isfinite(v) else float(v) for v in self._last_metrics],
            "policies": self._policy_states(),
        }

    def _decode(self, item: Any, field: str) -> tuple[list[np.ndarray], int, float]:
        sizes = [math.prod(int(d) for d in t.shape[1:] if d is not None) for t in self.model.inputs]
        try:
            state = [np.asarray(p, dtype=np.float32) for p in item["state"]]
            action, value = item["action"], item["value"]
            ok = (
                len(state) == len(sizes)
                and all(s.shape[0] == 1 and s.size == n for s, n in zip(state, sizes))
                and isinstance(action, int)
                and 0 <= action < self.nb_actions
                and isinstance(value, (int, float))
            )
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"The checkpoint's agent_state.{field} is invalid. Received: {field}={item!r:.200}")
        return state, action, float(value)

    def validate_checkpoint_state(self, state: dict) -> None:
        if state.get("open") is not None:
            self._decode(state["open"], "open")
        ready = state.get("ready")
        if not isinstance(ready, list):
            raise ValueError(f"The checkpoint's agent_state.ready is invalid. Received: ready={ready!r:.200}")
        for item in ready:
            self._decode(item, "ready")
        metrics = state.get("last_metrics")
        if not isinstance(metrics, list) or len(metrics) != len(self._last_metrics):
            raise ValueError(
                f"The checkpoint's agent_state.last_metrics is invalid. Received: last_metrics={metrics!r}"
            )
        self._validate_policy_states(state.get("policies"))

    def restore_checkpoint_state(self, state: dict) -> None:
        self._open = None if state["open"] is None else self._decode(state["open"], "open")
        self._ready = [self._decode(item, "ready") for item in state["ready"]]
        self._last_metrics = np.array([np.nan if v is None else v for v in state["last_metrics"]], dtype=np.float32)
        self._restore_policy_states(state["policies"])


SarsaAgent = SARSAAgent  # keras-rl's other name
