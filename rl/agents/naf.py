"""Normalized Advantage Functions (Gu et al., 2016): continuous Q-learning with a quadratic advantage."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.off_policy import OffPolicyAgent, huber, resolve_delta_clip
from rl.core import Processor
from rl.engine import GraphBatch, Nets, UpdateStep
from rl.random import RandomProcess
from rl.util import check_int

__all__ = ["ContinuousDQNAgent", "NAFAgent"]

_EPSILON = 1e-7  # added to the exponentiated diagonal of L, as Keras' `epsilon()`


class NAFAgent(OffPolicyAgent):
    """NAF: Q-learning for continuous actions, with an advantage that is quadratic in the action.

    Three networks of the observation(s) define

    ```
    Q(s, a) = V(s) + A(s, a),    A(s, a) = -0.5 * (a - mu(s))^T P(s) (a - mu(s)),    P = L L^T
    ```

    so the greedy action is `mu(s)` in closed form. `L(s)` is lower-triangular: `L_model`
    outputs its `nb_actions * (nb_actions + 1) // 2` entries row by row (numpy's `tril_indices`
    order), and the diagonal goes through `exp(x) + 1e-7` so that `P` is positive definite
    (`covariance_mode='full'`). With `covariance_mode='diag'`, `L_model` outputs `nb_actions`
    values `x` and `P = diag((exp(x) + 1e-7)^2)`: the full mode restricted to a diagonal `L`.
    (keras-rl's diagonal mode used the raw outputs as `P`'s diagonal, which may be negative;
    this one keeps `P` positive definite, so `mu(s)` stays the maximum of `Q`.)

    Each gradient step, on a batch from `memory`:

    ```
    y      = r + gamma * (1 - terminal) * V'(s1)            # V' the target copy of V
    loss   = mean(huber(y - Q(s0, a), delta_clip))          # V, L and mu trained together
    target : V' <- tau * V + (1 - tau) * V'                 # or a hard copy every N steps
    ```

    Only `V` has a target network: the target needs `max_a Q'(s1, a) = V'(s1)`. A time-limit
    truncation is not a termination: such a transition bootstraps from its real final
    observation. While training, the action is `mu(s)` plus the noise of `random_process`,
    clipped to the action space's bounds; `test` acts with `mu(s)`.

    Args:
        V_model: Keras model from observation(s) to the state value, output shape `(None, 1)`.
        L_model: Keras model to the entries of `L`, output shape
            `(None, nb_actions * (nb_actions + 1) // 2)` (`'full'`) or `(None, nb_actions)`
            (`'diag'`). Its inputs are `[action_input] + observation inputs`, as in keras-rl
            (the action input first, shape `(None, nb_actions)`), or the observation inputs
            only.
        mu_model: Keras model from observation(s) to the greedy action, output shape
            `(None, nb_actions)`.
        random_process: exploration noise added to actions while training (e.g.
            `OrnsteinUhlenbeckProcess(size=nb_actions, ...)`), or `None`. Defaults to `None`.
        covariance_mode: `'full'` or `'diag'` (see above). Defaults to `'full'`.
        nb_actions: size of the action vector; the action space must be a bounded
            `gymnasium.spaces.Box` of shape `(nb_actions,)`. Defaults to `None` (`mu_model`'s
            output width).
        memory: replay memory, typically `rl.memory.SequentialMemory`. Required.
        gamma: discount factor in `[0, 1]`. Defaults to `0.99`.
        batch_size: transitions per gradient step, in `[1, memory.limit]`. Defaults to `32`.
        nb_steps_warmup: steps before training starts. Defaults to `1000`.
        train_interval: train every this many steps. Defaults to `1`.
        memory_interval: store every this many steps. Defaults to `1`.
        target_model_update: `< 1`: soft update of `V'` with this `tau` after each gradient
            step; `>= 1`: hard copy every `int(target_model_update)` steps. Defaults to `10000`.
        delta_range: deprecated; use `delta_clip`. Defaults to `None`.
        delta_clip: Huber loss threshold on the TD error; `inf` gives `0.5 * td^2`. Defaults to
            `inf`.
        custom_model_objects: custom layers or objects needed to clone `V_model` into its
            target network. Defaults to `None`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step with XLA: `True`, `False` or `"auto"` (see
            `rl.engine.DeepAgent`). Acting alone never uses XLA. Defaults to `"auto"`.
        gradient_steps: gradient steps per training call, each on its own batch; metrics are
            their mean. Defaults to `1`.
        nb_steps_random: the first this many training steps act uniformly at random within the
            action space's bounds instead of with `mu` and `random_process`; usually
            `nb_steps_warmup`. Defaults to `0`.

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received,
            when the models, memory or hyper-parameters do not fit together (for instance
            models that share weights: build `V`, `L` and `mu` as separate models).

    Example:

    ```python
    agent = NAFAgent(V_model=V_model, L_model=L_model, mu_model=mu_model, nb_actions=1,
                     memory=SequentialMemory(limit=100_000), nb_steps_warmup=100,
                     random_process=OrnsteinUhlenbeckProcess(size=1, theta=0.15, mu=0.0, sigma=0.3),
                     gamma=0.99, target_model_update=1e-3)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), metrics=["mae"])
    agent.fit(env, nb_steps=50_000, nb_max_episode_steps=200)
    ```
    """

    base_metrics = ("loss", "mean_q")
    weights_roles = ("mu", "V", "L")
    optimizer_groups = {"q": ["mu", "V", "L"]}

    def __init__(
        self,
        V_model: keras.Model,
        L_model: keras.Model,
        mu_model: keras.Model,
        random_process: RandomProcess | None = None,
        covariance_mode: str = "full",
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
        for name, model in (("V_model", V_model), ("L_model", L_model), ("mu_model", mu_model)):
            if not isinstance(model, keras.Model):
                raise TypeError(f"`{name}` must be a Keras model. Received: {name}={model!r}")
        if covariance_mode not in ("full", "diag"):
            raise ValueError(
                f"`covariance_mode` must be 'full' or 'diag'. Received: covariance_mode={covariance_mode!r}"
            )
        if nb_actions is None:
            nb_actions = _output_width("mu_model", mu_model)
        if memory is None:
            raise TypeError(
                "NAFAgent needs a replay memory, e.g. memory=SequentialMemory(limit=100_000). Received: memory=None"
            )
        super().__init__(
            nb_actions=nb_actions,
            memory=memory,
            gamma=gamma,
            batch_size=batch_size,
            warmup={"q": check_int("nb_steps_warmup", nb_steps_warmup, minimum=0)},
            train_interval=train_interval,
            memory_interval=memory_interval,
            target_model_update=target_model_update,
            gradient_steps=gradient_steps,
            random_process=random_process,
            processor=processor,
            jit_compile=jit_compile,
            custom_model_objects=custom_model_objects,
            nb_steps_random=nb_steps_random,
        )
        self.covariance_mode = covariance_mode
        self.delta_clip = resolve_delta_clip(delta_clip, delta_range)
        self.nb_steps_warmup = self.warmup["q"]
        a = self.nb_actions
        # Whether L_model's first input takes the action (keras-rl's layout) besides the observations.
        self._l_takes_action = self._check_models(V_model, L_model, mu_model)
        self.add_network("mu", mu_model)
        self.add_network("V", V_model)
        self.add_network("L", L_model)
        self.add_target("target_V", "V")
        self.V_model, self.L_model, self.mu_model = V_model, L_model, mu_model
        # Where each entry of L's output goes in the matrix (0: the zero padded in front), and
        # which entries are on the diagonal.
        nb_entries = a * (a + 1) // 2 if covariance_mode == "full" else a
        rows, cols = np.tril_indices(a) if covariance_mode == "full" else np.diag_indices(a)
        self._l_index = np.zeros((a, a), np.int32)
        self._l_index[rows, cols] = np.arange(1, nb_entries + 1)
        self._l_diagonal = (rows == cols).astype(np.float32)  # [entries]

    def _check_models(self, V: keras.Model, L: keras.Model, mu: keras.Model) -> bool:
        """Checks the three networks' outputs, inputs and weights; returns whether L takes the action."""
        a = self.nb_actions
        want = {"V_model": 1, "mu_model": a, "L_model": a * (a + 1) // 2 if self.covariance_mode == "full" else a}
        for name, model in (("V_model", V), ("mu_model", mu), ("L_model", L)):
            if len(model.outputs) != 1 or tuple(model.outputs[0].shape[1:]) != (want[name],):
                what = f" (covariance_mode={self.covariance_mode!r}, nb_actions={a})" if name == "L_model" else ""
                raise ValueError(
                    f"`{name}` must have a single output of shape (None, {want[name]}){what}. "
                    f"Received: {name}.outputs={[tuple(o.shape) for o in model.outputs]}"
                )
        n_obs = len(mu.inputs)
        if len(V.inputs) != n_obs:
            raise ValueError(
                f"`V_model` and `mu_model` must take the same observation inputs: mu_model has {n_obs}, V_model "
                f"{len(V.inputs)}. Received: V_model.inputs={V.inputs}"
            )
        if len(L.inputs) == n_obs + 1:
            if tuple(L.inputs[0].shape[1:]) != (a,):
                raise ValueError(
                    f"`L_model`'s first input takes the action and must have shape (None, {a}). "
                    f"Received: L_model.inputs[0].shape={tuple(L.inputs[0].shape)}"
                )
            takes_action = True
        elif len(L.inputs) == n_obs:
            takes_action = False
        else:
            raise ValueError(
                f"`L_model` must take [action_input] + the {n_obs} observation input(s) of mu_model, or the "
                f"observation inputs only. Received: L_model.inputs={L.inputs}"
            )
        owners: dict[int, str] = {}
        for name, model in (("V_model", V), ("L_model", L), ("mu_model", mu)):
            for v in model.weights:
                other = owners.setdefault(id(v), name)
                if other != name:
                    raise ValueError(
                        f"`{other}` and `{name}` share the weight {v.path!r}: NAFAgent trains V, L and mu as separate "
                        "networks (and keeps a target copy of V only), so build them without shared layers. "
                        f"Received: {name}={model.name!r}"
                    )
        return takes_action

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "covariance_mode": self.covariance_mode,
            "nb_steps_warmup": self.nb_steps_warmup,
            "delta_clip": self.delta_clip,
        }

    @property
    def target_V_model(self) -> keras.Model:
        """The target copy of `V_model`."""
        return self.models["target_V"]

    def policy_models(self) -> list[keras.Model]:
        return [self.models["mu"], self.models["V"], self.models["L"]]

    def _observation_inputs_of_others(self, k: int) -> list:
        l_inputs = self.models["L"].inputs[1:] if self._l_takes_action else self.models["L"].inputs
        return [self.models["V"].inputs[k], l_inputs[k]]

    # ------------------------------------------------------------- the maths
    def act_graph(self, nets: Nets, states: Any, training: bool) -> tf.Tensor:
        return nets.mu(states, training=False)  # [B, A]

    def advantage(self, l_entries: tf.Tensor, mu: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
        """In the graph: `A = -0.5 * (a - mu)^T L L^T (a - mu)` from `L_model`'s outputs, `[B]`.

        Args:
            l_entries: `L_model`'s output, `[B, entries]`.
            mu: the greedy actions, `[B, A]`.
            action: the actions, `[B, A]`.
        """
        diagonal = tf.constant(self._l_diagonal)
        entries = diagonal * (tf.exp(l_entries) + _EPSILON) + (1.0 - diagonal) * l_entries  # [B, entries]
        padded = tf.pad(entries, [[0, 0], [1, 0]])  # [B, 1 + entries]: index 0 is the zero
        lower = tf.gather(padded, self._l_index, axis=1)  # [B, A, A]
        lt_d = tf.einsum("bji,bj->bi", lower, action - mu)  # L^T (a - mu), [B, A]
        return -0.5 * tf.reduce_sum(tf.square(lt_d), axis=-1)

    def q_values(self, nets: Nets, states: Any, action: tf.Tensor, training: bool = False) -> tf.Tensor:
        """In the graph: `Q(s, a) = V(s) + A(s, a)`, `[B]`."""
        obs = list(states) if isinstance(states, (list, tuple)) else [states]
        l_inputs = [action] + obs if self._l_takes_action else obs
        v = nets.V(states, training=training)[:, 0]  # [B]
        mu = nets.mu(states, training=training)  # [B, A]
        return v + self.advantage(nets.L(self._model_input(l_inputs), training=training), mu, action)

    def train_step(self, nets: Nets, batch: GraphBatch, step: UpdateStep) -> dict[str, tf.Tensor]:
        v1 = nets.target_V(batch.state1, training=False)[:, 0]  # [B]
        y = tf.stop_gradient(batch.reward + self.gamma * (1.0 - batch.terminal) * v1)  # [B]

        def loss_fn() -> tuple[tf.Tensor, tf.Tensor]:
            q0 = self.q_values(nets, batch.state0, batch.action, training=True)  # [B]
            return self.weighted_mean(huber(y - q0, self.delta_clip), batch), q0

        loss, q0 = self.minimize("q", loss_fn)
        self.update_targets("target_V")
        return {
            "loss": loss,
            "mean_q": tf.reduce_mean(q0),
            **self.compiled_metrics(y, q0),
            **self.td_errors(batch, y - q0),
        }


def _output_width(name: str, model: keras.Model) -> int:
    shape = tuple(model.outputs[0].shape[1:]) if len(model.outputs) == 1 else ()
    if len(shape) != 1 or shape[0] is None:
        raise ValueError(
            f"`nb_actions` is not given and cannot be read from `{name}`'s output. "
            f"Received: {name}.outputs={[tuple(o.shape) for o in model.outputs]}"
        )
    return int(shape[0])


ContinuousDQNAgent = NAFAgent
"""keras-rl's other name of `NAFAgent`."""
