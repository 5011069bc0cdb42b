"""Deep Q-Network (Mnih et al., 2015), with double Q-learning (van Hasselt et al., 2016) and dueling
networks (Wang et al., 2016), on the user's own Keras model.

keras-rl kept its NAF agent in this module: `NAFAgent`, `ContinuousDQNAgent` (from `rl.agents.naf`)
and `NAFLayer` can be imported from here as well (`from rl.agents.dqn import NAFAgent, NAFLayer`)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.naf import ContinuousDQNAgent as ContinuousDQNAgent  # keras-rl's import path
from rl.agents.naf import NAFAgent as NAFAgent  # keras-rl's import path
from rl.agents.off_policy import huber, resolve_delta_clip
from rl.agents.value_based import ValueBasedAgent, check_q_model
from rl.core import Processor
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.util import check_int

__all__ = ["DQNAgent", "DuelingCombine", "NAFLayer", "dueling_model"]

DUELING_TYPES = ("avg", "max", "naive")
NAF_MODES = ("full", "diag")
_NAF_EPSILON = 1e-7  # added to the exponentiated diagonal of L, as Keras' `epsilon()` (and `NAFAgent`)


@keras.saving.register_keras_serializable(package="rl")
class DuelingCombine(keras.layers.Layer):
    """Combines `[V, A_1, ..., A_n]` (one tensor `[B, n + 1]`) into Q-values `[B, n]`.

    `'avg'`: `Q = V + A - mean(A)`; `'max'`: `Q = V + A - max(A)`; `'naive'`: `Q = V + A`.

    Args:
        dueling_type: `'avg'`, `'max'` or `'naive'`. Defaults to `'avg'`.
    """

    def __init__(self, dueling_type: str = "avg", **kwargs: Any):
        super().__init__(**kwargs)
        if dueling_type not in DUELING_TYPES:
            raise ValueError(f"`dueling_type` must be one of {DUELING_TYPES}. Received: dueling_type={dueling_type!r}")
        self.dueling_type = dueling_type

    def call(self, x: Any) -> Any:
        """Combines `[V, A_1..A_n]` into Q-values with the layer's `dueling_type`."""
        value, advantage = x[:, :1], x[:, 1:]  # [B, 1], [B, n]
        if self.dueling_type == "avg":
            return value + advantage - keras.ops.mean(advantage, axis=1, keepdims=True)
        if self.dueling_type == "max":
            return value + advantage - keras.ops.max(advantage, axis=1, keepdims=True)
        return value + advantage

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """`(batch, nb_actions)`: one unit fewer than the input (the value)."""
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] - 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dueling_type": self.dueling_type}


@keras.saving.register_keras_serializable(package="rl")
class NAFLayer(keras.layers.Layer):
    """keras-rl's NAF advantage layer: `A = -0.5 * (a - mu)^T P (a - mu)` from `[L_flat, mu, action]`.

    `NAFAgent` computes its advantage itself and does not need this layer; it is here for models
    and code written for keras-rl (`from rl.agents.dqn import NAFLayer`), and computes what
    keras-rl's layer computed:

    - `mode='full'`: `L_flat` holds the `nb_actions * (nb_actions + 1) // 2` entries of a
      lower-triangular `L`, row by row (numpy's `tril_indices` order); the diagonal goes through
      `exp(x) + 1e-7`, and `P = L L^T`. This is `NAFAgent`'s advantage with
      `covariance_mode='full'`.
    - `mode='diag'`: `L_flat` holds `nb_actions` values used as `P`'s diagonal as they are, which
      may be negative (`NAFAgent`'s `covariance_mode='diag'` uses `(exp(x) + 1e-7)^2` instead,
      which keeps `P` positive definite).

    The layer has no weights. It takes a list of three tensors `[L_flat, mu, action]`, of shapes
    `(batch, entries)`, `(batch, nb_actions)` and `(batch, nb_actions)`, or one tensor holding the
    three side by side (keras-rl's older `merge(..., mode='concat')` form), and returns `A` of
    shape `(batch, 1)`.

    Args:
        nb_actions: size of the action vector, >= 1.
        mode: `'full'` or `'diag'`. Defaults to `'full'`.

    Raises:
        TypeError, ValueError: naming the argument, for a bad `nb_actions` or `mode`; when the layer
            is built, for inputs of other shapes.

    Example:

    ```python
    L_flat = keras.Input(shape=(3,))  # nb_actions=2, 'full': 2 * 3 // 2 entries
    mu, action = keras.Input(shape=(2,)), keras.Input(shape=(2,))
    advantage = NAFLayer(2, mode="full")([L_flat, mu, action])  # (None, 1)
    ```
    """

    def __init__(self, nb_actions: int, mode: str = "full", **kwargs: Any):
        super().__init__(**kwargs)
        self.nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        if mode not in NAF_MODES:
            raise ValueError(f"`mode` must be one of {NAF_MODES}. Received: mode={mode!r}")
        self.mode = mode
        a = self.nb_actions
        self.nb_entries = a * (a + 1) // 2 if mode == "full" else a
        # Where each entry of L_flat goes in L (0: the zero padded in front), and which are on the diagonal.
        rows, cols = np.tril_indices(a) if mode == "full" else np.diag_indices(a)
        self._l_index = np.zeros((a, a), np.int32)
        self._l_index[rows, cols] = np.arange(1, self.nb_entries + 1)
        self._l_diagonal = (rows == cols).astype(np.float32)  # [entries]

    def _expected_shapes(self) -> list[tuple[int, ...]]:
        return [(self.nb_entries,), (self.nb_actions,), (self.nb_actions,)]

    def _check_shapes(self, input_shape: Any) -> None:
        expected = self._expected_shapes()
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            shapes = [tuple(shape[1:]) for shape in input_shape]
            if shapes != expected:
                raise ValueError(
                    f"NAFLayer(nb_actions={self.nb_actions}, mode={self.mode!r}) takes [L_flat, mu, action] of shapes "
                    f"(None, {self.nb_entries}), (None, {self.nb_actions}) and (None, {self.nb_actions}). "
                    f"Received: input shapes {[tuple(shape) for shape in input_shape]}"
                )
            return
        width = self.nb_entries + 2 * self.nb_actions
        if tuple(input_shape[1:]) != (width,):
            raise ValueError(
                f"NAFLayer(nb_actions={self.nb_actions}, mode={self.mode!r}) takes [L_flat, mu, action], or the three "
                f"concatenated: shape (None, {width}). Received: input shape {tuple(input_shape)}"
            )

    def build(self, input_shape: Any) -> None:
        """Checks the input shapes (see the class docstring); the layer has no weights."""
        self._check_shapes(input_shape)
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        """`A = -0.5 * (a - mu)^T P (a - mu)`, shape `(batch, 1)`."""
        if isinstance(inputs, (list, tuple)):
            l_flat, mu, action = inputs
        else:
            e, a = self.nb_entries, self.nb_actions
            l_flat, mu, action = inputs[:, :e], inputs[:, e : e + a], inputs[:, e + a :]
        ops = keras.ops
        d = action - mu  # [B, A]
        if self.mode == "diag":
            return -0.5 * ops.sum(l_flat * ops.square(d), axis=-1, keepdims=True)
        diagonal = ops.convert_to_tensor(self._l_diagonal, dtype=l_flat.dtype)
        entries = diagonal * (ops.exp(l_flat) + _NAF_EPSILON) + (1.0 - diagonal) * l_flat  # [B, entries]
        padded = ops.pad(entries, [[0, 0], [1, 0]])  # [B, 1 + entries]: index 0 is the zero
        lower = ops.take(padded, ops.convert_to_tensor(self._l_index), axis=1)  # [B, A, A]
        lt_d = ops.einsum("bji,bj->bi", lower, d)  # L^T (a - mu), [B, A]
        return -0.5 * ops.sum(ops.square(lt_d), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        """`(batch, 1)`."""
        self._check_shapes(input_shape)
        first = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return (first[0], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "nb_actions": self.nb_actions, "mode": self.mode}


def dueling_model(model: keras.Model, nb_actions: int, dueling_type: str = "avg") -> keras.Model:
    """A dueling version of `model`: its last `Dense` layer is replaced by a value-and-advantage head.

    The new head reads what the model's last `Dense` layer read (the features), computes
    `[V, A_1, ..., A_n]` with a fresh `Dense(nb_actions + 1)` and combines them with
    `DuelingCombine(dueling_type)`. Layers after that `Dense` must have no weights (e.g. a linear
    `Activation`, as in keras-rl's examples); they are dropped.

    Raises:
        ValueError: if the model has no `Dense` layer, or layers with weights after its last one.
    """
    dense = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"A dueling network needs a model ending in a Dense layer. Received: model={model.name!r}")
    last = dense[-1]
    after = [layer.name for layer in model.layers[last + 1 :] if layer.weights]
    if after:
        raise ValueError(
            "A dueling network replaces the model's last Dense layer; layers with weights after it cannot be kept. "
            f"Received: layers {after} after {model.layers[last].name!r}"
        )
    features = model.layers[last].input
    head = keras.layers.Dense(nb_actions + 1, name=f"{model.name}_value_advantage")(features)
    q = DuelingCombine(dueling_type, name=f"{model.name}_dueling_{dueling_type}")(head)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, q, name=f"{model.name}_dueling")


class DQNAgent(ValueBasedAgent):
    """DQN: a Q-network trained toward bootstrapped targets from a slowly updated target network.

    Each gradient step, on a batch from `memory`:

    ```
    a*     = argmax_a Q(s1, a)   if enable_double_dqn else   argmax_a Q'(s1, a)
    y      = r + gamma * (1 - terminal) * Q'(s1, a*)       # Q': the target network
    loss   = mean(huber(y - Q(s0, a), delta_clip))          # 0.5 * td^2 when delta_clip=inf
    target : w' <- tau * w + (1 - tau) * w'                 # or a hard copy every N steps
    ```

    The action is chosen by `policy` (in `fit`) or `test_policy` (in `test`) from the Q-values
    of the current state. A time-limit truncation is not a termination: such a transition
    bootstraps from its real final observation. Each environment step is one compiled call: the
    training scheduled by the previous step, then the Q-values of the new state, which the policy
    turns into the action; `backward` therefore reports the metrics of the previous training call.

    Args:
        model: Keras model from observation(s) to one Q-value per action, output shape
            `(None, nb_actions)`. Its observation input may be shaped `(window_length,) +
            obs_shape` (keras-rl style, e.g. `Flatten` first) or, when `window_length == 1`,
            `obs_shape`.
        policy: the policy used in `fit`, given `q_values=` (see `rl.policy`). Defaults to
            `EpsGreedyQPolicy()` (`eps=0.1`).
        test_policy: the policy used in `test`. Defaults to `GreedyQPolicy()`.
        enable_double_dqn: pick the next action with the online network and value it with the
            target network. Defaults to `False`.
        enable_dueling_network: replace the model's last `Dense` layer by a value-and-advantage
            head (see `dueling_model`). Defaults to `False`.
        dueling_type: how the dueling head combines `V` and `A`: `'avg'` (`V + A - mean(A)`),
            `'max'` (`V + A - max(A)`) or `'naive'` (`V + A`). Defaults to `'avg'`.
        nb_actions: number of discrete actions; the action space must be
            `gymnasium.spaces.Discrete(nb_actions)` or another space with `n == nb_actions` and no
            shape (see `rl.agents.value_based.discrete_action_count`). Defaults to `None` (the
            model's output width).
        memory: replay memory, typically `rl.memory.SequentialMemory`. Required.
        gamma: discount factor in `[0, 1]`. Defaults to `0.99`.
        batch_size: transitions per gradient step, in `[1, memory.limit]`. Defaults to `32`.
        nb_steps_warmup: steps before training starts. Defaults to `1000`.
        train_interval: train every this many steps. Defaults to `1`.
        memory_interval: store every this many steps. Defaults to `1`.
        target_model_update: `< 1`: soft update with this `tau` after each gradient step;
            `>= 1`: hard copy every `int(target_model_update)` steps. Defaults to `10000`.
        delta_range: deprecated; use `delta_clip`. Defaults to `None`.
        delta_clip: Huber loss threshold on the TD error; `inf` gives `0.5 * td^2`. Defaults to
            `inf`.
        custom_model_objects: custom layers/objects needed to clone the model into the target
            network. Defaults to `None`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step with XLA: `True`, `False` or `"auto"` (see
            `rl.engine.DeepAgent`). Defaults to `"auto"`.
        gradient_steps: gradient steps per training call, each on its own batch. Defaults to `1`.
        nb_steps_random: the first this many training steps take actions drawn uniformly from
            `[0, nb_actions)` instead of `policy`'s; usually `nb_steps_warmup`. Defaults to `0`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received,
            when the model, memory, policies or hyper-parameters do not fit together.

    Example:

    ```python
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=50_000, window_length=1),
                     nb_steps_warmup=10, target_model_update=1e-2, policy=BoltzmannQPolicy())
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    agent.fit(env, nb_steps=50_000)
    agent.test(env, nb_episodes=5, visualize=False)
    ```
    """

    base_metrics = ("loss", "mean_q")
    weights_roles = ("model",)
    optimizer_groups = {"model": ["model"]}

    def __init__(
        self,
        model: keras.Model,
        policy: Any = None,
        test_policy: Any = None,
        enable_double_dqn: bool = False,
        enable_dueling_network: bool = False,
        dueling_type: str = "avg",
        nb_actions: int | None = None,
        memory: Any = None,
        gamma: float = 0.99,
        batch_size: int = 32,
        nb_steps_warmup: int = 1000,
        train_interval: int = 1,
        memory_interval: int = 1,
        target_model_update: float = 10000,
        delta_range: tuple[float, float] | None = None,
        delta_clip: float = np.inf,
        custom_model_objects: dict | None = None,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        gradient_steps: int = 1,
        nb_steps_random: int = 0,
    ):
        if memory is None:
            raise TypeError(
                "DQNAgent needs a replay memory, e.g. memory=SequentialMemory(limit=50000). Received: memory=None"
            )
        if not isinstance(enable_double_dqn, bool):
            raise TypeError(f"`enable_double_dqn` must be a bool. Received: enable_double_dqn={enable_double_dqn!r}")
        if not isinstance(enable_dueling_network, bool):
            raise TypeError(
                f"`enable_dueling_network` must be a bool. Received: enable_dueling_network={enable_dueling_network!r}"
            )
        if dueling_type not in DUELING_TYPES:
            raise ValueError(f"`dueling_type` must be one of {DUELING_TYPES}. Received: dueling_type={dueling_type!r}")
        nb_actions = check_q_model(model, nb_actions)
        super().__init__(
            policy=policy,
            test_policy=test_policy,
            nb_actions=nb_actions,
            memory=memory,
            gamma=gamma,
            batch_size=batch_size,
            warmup={"model": check_int("nb_steps_warmup", nb_steps_warmup, minimum=0)},
            train_interval=train_interval,
            memory_interval=memory_interval,
            target_model_update=target_model_update,
            gradient_steps=gradient_steps,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects={"DuelingCombine": DuelingCombine, **(custom_model_objects or {})},
            nb_steps_random=nb_steps_random,
        )
        self.enable_double_dqn = enable_double_dqn
        self.enable_dueling_network = enable_dueling_network
        self.dueling_type = dueling_type
        self.delta_clip = resolve_delta_clip(delta_clip, delta_range)
        self.nb_steps_warmup = self.warmup["model"]
        if enable_dueling_network:
            model = dueling_model(model, nb_actions, dueling_type)
        self.add_network("model", model)
        self.add_target("target_model", "model")

    @property
    def model(self) -> keras.Model:
        """The online Q-network (the dueling one when `enable_dueling_network`)."""
        return self.models["model"]

    @property
    def target_model(self) -> keras.Model:
        """The target Q-network."""
        return self.models["target_model"]

    def policy_models(self) -> list[keras.Model]:
        return [self.models["model"]]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "enable_double_dqn": self.enable_double_dqn,
            "enable_dueling_network": self.enable_dueling_network,
            "dueling_type": self.dueling_type,
            "nb_steps_warmup": self.nb_steps_warmup,
            "delta_clip": self.delta_clip,
        }

    # ------------------------------------------------------------- the maths
    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        return nets.model(states, training=False)  # [B, A] Q-values; the policy picks outside

    def td_target(self, nets: Nets, batch: GraphBatch) -> tf.Tensor:
        """`y = r + gamma * (1 - terminal) * Q'(s1, a*)`, `[B]`."""
        q1_target = nets.target_model(batch.state1, training=False)  # [B, A]
        if self.enable_double_dqn:
            best = tf.argmax(nets.model(batch.state1, training=False), axis=1, output_type=tf.int32)  # [B]
            q1 = tf.gather(q1_target, best, axis=1, batch_dims=1)  # [B]
        else:
            q1 = tf.reduce_max(q1_target, axis=1)  # [B]
        return batch.reward + self.gamma * (1.0 - batch.terminal) * q1

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        y = tf.stop_gradient(self.td_target(nets, batch))  # [B]
        actions = tf.cast(batch.action[:, 0], tf.int32)  # [B]

        def loss_fn():
            q = nets.model(batch.state0, training=True)  # [B, A]
            q_taken = tf.gather(q, actions, axis=1, batch_dims=1)  # [B]
            return self.weighted_mean(huber(y - q_taken, self.delta_clip), batch), (q, q_taken)

        loss, (q, q_taken) = self.minimize("model", loss_fn)
        self.update_targets("target_model")
        return {
            "loss": loss,
            "mean_q": tf.reduce_mean(tf.reduce_max(q, axis=1)),
            **self.compiled_metrics(y, q_taken),
            **self.td_errors(batch, y - q_taken),
        }
