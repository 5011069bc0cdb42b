"""`DeepAgent`: what every agent that trains Keras networks needs, and no algorithm owns.

Networks, target networks, trained parameters and optimizers are addressed by role name
(`"actor"`, `"critic"`, `"target_actor"`, ...); weight layouts, compiled functions, saving,
loading and checkpoints follow those names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.core import Agent, Processor
from rl.engine.compiled import CompiledFunctions, Signature, direct_mode
from rl.engine.layout import FlatWeights, ParameterWeights, VariableWeights, apply_gradients, flat_layout_fits
from rl.engine.xla import resolve_jit_compile
from rl.util import atomic_path, check_free_space, clone_optimizer, get_optimizer

__all__ = ["DeepAgent", "Nets", "read_weights_file", "save_weights_files", "weights_paths"]


class Nets(dict):
    """Role name -> weight layout (see `rl.engine.layout`), also readable as attributes: `nets.actor`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def weights_paths(filepath: str | os.PathLike, roles: Sequence[str]) -> tuple[str, ...]:
    """The weight file of each role for `filepath`, in the order of `roles`.

    - `_<role>` goes before the suffix, as keras-rl did (`'ddpg.weights.h5'` ->
      `'ddpg_actor.weights.h5'`).
    - A name with `{}` gets the role in its place instead (`'ddpg_{}_weights.h5f'`).
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
        return tuple(keras_name(filepath.format(role)) for role in roles)
    stem = keras_name(filepath)[: -len(".weights.h5")]
    return tuple(f"{stem}_{role}.weights.h5" for role in roles)


class _WeightsPaths:
    """`agent.weights_paths(filepath)`, also callable on the class (with the class's `weights_roles`)."""

    def __get__(self, obj: Any, cls: type) -> Callable[[str | os.PathLike], tuple[str, ...]]:
        roles = (obj if obj is not None else cls).weights_roles

        def paths(filepath: str | os.PathLike) -> tuple[str, ...]:
            return weights_paths(filepath, roles)

        paths.__doc__ = weights_paths.__doc__
        return paths


class DeepAgent(Agent):
    """Base class of agents that train Keras networks in compiled TensorFlow functions.

    A subclass registers its parts by role in its constructor and writes its maths; this class
    does the rest (optimizers, metrics, weight layouts, compiled functions, weights files and
    checkpoints). The subclass API:

    - `add_network(role, model)`, `add_target(role, source)`, `add_parameter(role, value)`:
      the networks, their target copies, and trained variables that are not networks;
    - `optimizer_groups`: `{group: [roles]}`, one optimizer per group (class attribute or set
      in the constructor), in the order `compile` takes a list of optimizers;
    - `weights_roles`: the roles `save_weights` writes (targets are restored from them);
    - `base_metrics`: names of the metrics the training step returns, before `compile`'s;
    - in the graph, `self.nets` maps each role to its weight layout (`nets.actor(x, training)`),
      `self.update_targets(*roles)` moves targets toward their sources, `self.copy_targets()`
      copies them, `self.seed_stream.next()` gives a fresh stateless seed.

    Args:
        processor: an `rl.core.Processor`. Defaults to `None`.
        jit_compile: compile the training step with XLA: `True`, `False`, or `"auto"` (XLA on
            a GPU or TPU, and on CPUs for small networks in training runs that reach
            `XLA_MIN_STEPS` steps; see `rl.engine.xla.xla_pays`). An `"auto"` choice that XLA
            cannot compile warns and runs without XLA; `True` raises. Defaults to `"auto"`.
        custom_model_objects: custom layers or objects needed to clone models into target
            networks. Defaults to `None`.
    """

    optimizer_groups: dict[str, list[str]] = {}
    weights_roles: tuple[str, ...] = ()
    base_metrics: tuple[str, ...] = ()
    weights_paths = _WeightsPaths()

    def __init__(
        self,
        processor: Processor | None = None,
        jit_compile: bool | str = "auto",
        custom_model_objects: dict | None = None,
    ):
        super().__init__(processor=processor)
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
        self._jit_setting = jit_compile
        self.custom_model_objects = dict(custom_model_objects or {})
        self.models: dict[str, keras.Model] = {}  # every network by role, targets included
        self.targets: dict[str, str] = {}  # target role -> source role
        self.parameters: dict[str, keras.Variable] = {}
        self.optimizers: dict[str, keras.optimizers.Optimizer] = {}
        self.nets = Nets()  # role -> weight layout, set by `compile`
        self.seed_stream = SeedStream()
        self._functions: CompiledFunctions | None = None
        self._copies = CompiledFunctions(xla=False, fallback=False)
        self._flat_allowed = True
        # Whether the flat training state holds the current weights (the models' own variables
        # then lag behind until `_push`). Switched only by `_pull` and `_push`.
        self._pulled = False
        self._metric_fns: list[Callable] = []
        self._metric_names: list[str] = []
        self._tau: float | None = None  # soft target updates' rate, None for hard copies
        direct_mode()  # checks once per process how traced graphs can be called directly

    # ----------------------------------------------------------- registration
    def add_network(self, role: str, model: keras.Model) -> keras.Model:
        """Registers `model` under `role` (an online network, trained by an optimizer group)."""
        if not isinstance(model, keras.Model):
            raise TypeError(f"`{role}` must be a Keras model. Received: {role}={model!r}")
        self.models[role] = model
        return model

    def add_target(self, role: str, source: str) -> keras.Model:
        """Registers a target network `role`: a clone of network `source` with its weights."""
        model = self.models[source]
        try:
            with keras.saving.custom_object_scope(self.custom_model_objects):
                clone = keras.models.clone_model(model)
        except Exception as e:  # noqa: BLE001 - any failure means the model cannot be cloned
            raise ValueError(
                f"The {source} could not be cloned into a target network ({e}). Pass its custom layers in "
                f"`custom_model_objects`. Received: custom_model_objects={self.custom_model_objects!r}"
            ) from e
        clone.set_weights(model.get_weights())
        self.models[role] = clone
        self.targets[role] = source
        return clone

    def add_parameter(self, role: str, value: float | np.ndarray) -> keras.Variable:
        """Registers a trained float32 variable that is not a network: a scalar (e.g. a log
        temperature) or an array (e.g. a state-independent log standard deviation)."""
        variable = keras.Variable(np.asarray(value, np.float32), name=role, dtype="float32")
        self.parameters[role] = variable
        return variable

    def _resolve_xla(self, end_step: int | None = None) -> bool:
        online = [m for r, m in self.models.items() if r not in self.targets]
        return resolve_jit_compile(self._jit_setting, online, self.step if end_step is None else end_step)

    def plan_run(self, end_step: int) -> None:
        if self._functions is not None and self._jit_setting == "auto":
            self._functions.use_xla(self._resolve_xla(end_step))

    @property
    def jit_compile(self) -> bool:
        """Whether the training step runs with XLA (with `"auto"`: the choice made for the current or
        last training run; a compile failure turns it off)."""
        if self._functions is None:
            return self._resolve_xla()
        return self._functions.xla

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer: Any, metrics: list | None = None) -> None:
        """Sets the optimizers and the extra metrics.

        Args:
            optimizer: one Keras optimizer (or its name, e.g. `'adam'`), cloned so that each
                optimizer group (see `optimizer_groups`) gets its own; or a list with one per
                group, in `optimizer_groups` order; or a dict by group name.
            metrics: functions or names (e.g. `['mae']`) of `metric(y_true, y_pred)`, evaluated
                by the training step where the agent says (its TD targets and predictions).
                Defaults to `None`.

        Raises:
            TypeError, ValueError: for an unknown optimizer or metric, or a list of the wrong size.
        """
        groups = list(self.optimizer_groups)
        optimizers = self._resolve_optimizers(optimizer, groups)
        self._metric_fns, self._metric_names = _resolve_metrics(metrics)
        self._push()  # a re-compile keeps the weights trained so far
        roles = list(self.models)
        pairs = [(self.models[t], self.models[s]) for t, s in self.targets.items()]
        flat = self._flat_allowed and flat_layout_fits(
            [self.models[r] for r in roles], list(optimizers.values()), pairs
        )
        self.nets = Nets(
            {r: FlatWeights(self.models[r], f"{r}_weights") if flat else VariableWeights(self.models[r]) for r in roles}
        )
        for role, variable in self.parameters.items():
            self.nets[role] = ParameterWeights(variable)
        for group, opt in optimizers.items():
            opt.build([v for role in self.optimizer_groups[group] for v in self.nets[role].variables])
        self.optimizers = optimizers
        self._copies = CompiledFunctions(xla=False, fallback=False)  # the weight copies, for these nets
        self._pulled = False
        self._functions = CompiledFunctions(self._resolve_xla(), fallback=self._jit_setting == "auto")
        self.compiled = True

    def _resolve_optimizers(self, optimizer: Any, groups: list[str]) -> dict[str, keras.optimizers.Optimizer]:
        if isinstance(optimizer, dict):
            if set(optimizer) != set(groups):
                raise ValueError(
                    f"`optimizer` as a dict needs one optimizer per group {groups}. Received: keys {sorted(optimizer)}"
                )
            given = [get_optimizer(optimizer[g], f"optimizer[{g!r}]") for g in groups]
        elif isinstance(optimizer, (list, tuple)):
            if len(optimizer) != len(groups):
                names = ", ".join(f"{g}_optimizer" for g in groups)
                raise ValueError(
                    f"`optimizer` must be one optimizer or a list [{names}]. Received: {len(optimizer)} optimizers"
                )
            given = [get_optimizer(o, f"optimizer[{i}]") for i, o in enumerate(optimizer)]
        else:
            one = get_optimizer(optimizer, "optimizer")
            given = [one] + [clone_optimizer(one) for _ in groups[1:]]
        out: dict[str, keras.optimizers.Optimizer] = {}
        seen: list = []
        for group, opt in zip(groups, given):
            if opt.built or any(opt is s for s in seen):
                opt = clone_optimizer(opt)  # Keras 3 optimizers serve the variables they were built for
            seen.append(opt)
            out[group] = opt
        return out

    @property
    def train_metrics_names(self) -> list[str]:
        """Names of the values one training step reports: `[*base_metrics, *compile's metrics]`."""
        return list(self.base_metrics) + self._metric_names

    @property
    def metrics_names(self) -> list[str]:
        """`[*base_metrics, *compile's metrics, *processor.metrics_names]`."""
        names = list(self.base_metrics) + self._metric_names
        if self.processor is not None:
            names = names + list(self.processor.metrics_names)
        return names

    def compiled_metrics(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """In the graph: `compile`'s metrics on `y_true`, `y_pred` (shape `[B]`), by name."""
        return {
            name: tf.reduce_mean(fn(y_true[:, None], y_pred[:, None]))
            for name, fn in zip(self._metric_names, self._metric_fns)
        }

    def _metric_vector(self, metrics: dict[str, tf.Tensor]) -> tf.Tensor:
        """The training step's metrics as one vector in `metrics_names` order (NaN where absent)."""
        nan = tf.constant(np.nan, tf.float32)
        names = list(self.base_metrics) + self._metric_names
        unknown = set(metrics) - set(names)
        if unknown:
            raise ValueError(f"The training step returned metrics not in base_metrics: {sorted(unknown)}")
        return tf.stack([tf.cast(metrics[n], tf.float32) if n in metrics else nan for n in names])

    @staticmethod
    def mean_metrics(steps: list[tf.Tensor], size: int) -> tf.Tensor:
        """In the graph: the metrics of a call's updates `[M]` each, averaged over the updates that
        computed them (a metric only some updates return, such as a delayed actor's loss, is the
        mean of those); NaN where none did, or when there were no updates.

        Args:
            steps: each update's metric vector (`_metric_vector`), `[M]`.
            size: `M`, for a call without updates.
        """
        if not steps:
            return tf.fill([size], np.float32(np.nan))
        if len(steps) == 1:
            return steps[0]
        stacked = tf.stack(steps)  # [K, M]
        known = tf.math.logical_not(tf.math.is_nan(stacked))
        counts = tf.reduce_sum(tf.cast(known, tf.float32), axis=0)  # [M]
        sums = tf.reduce_sum(tf.where(known, stacked, 0.0), axis=0)  # [M]
        return tf.where(counts > 0, sums / tf.maximum(counts, 1.0), np.float32(np.nan))

    # ------------------------------------------------------------ the graph
    def update_targets(self, *roles: str) -> None:
        """In the graph: moves each target in `roles` toward its source by `tau` (soft updates only)."""
        if self._tau is None:
            return
        for role in roles:
            self.nets[role].soft_update(self.nets[self.targets[role]], self._tau)

    def copy_targets(self) -> None:
        """In the graph: copies every target network from its source."""
        for role, source in self.targets.items():
            self.nets[role].copy_from(self.nets[source])

    def minimize(
        self, group: str, loss_fn: Callable[[], tuple[tf.Tensor, Any]], max_grad_norm: float | None = None
    ) -> tuple[tf.Tensor, Any]:
        """In the graph: one optimizer step of `group` on `loss_fn() -> (loss, aux)`; returns both.

        The gradient is taken with respect to every network and parameter of the group (in its
        current weight layout) and applied by the group's optimizer (see
        `rl.engine.layout.apply_gradients` for the optimizer's own gradient clipping).

        Args:
            group: the optimizer group.
            loss_fn: returns the loss and anything else to hand back.
            max_grad_norm: if given, the gradients of the whole group are scaled down together so
                that their global norm is at most this (as PPO does). Defaults to `None`.
        """
        weights = [self.nets[role] for role in self.optimizer_groups[group]]
        variables = [v for w in weights for v in w.variables]
        with tf.GradientTape() as tape:
            loss, aux = loss_fn()
        grads = tape.gradient(loss, variables)
        if max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, max_grad_norm)
        apply_gradients(self.optimizers[group], grads, weights)
        return loss, aux

    def call_compiled(
        self, name: str, options: Any, build: Callable[[], Callable], x: np.ndarray, may_use_xla: bool = True
    ) -> np.ndarray:
        """Runs compiled function `name` (traced once per `options` and input size) on `x`."""
        return self._functions.call(Signature(name, options, x.shape[0]), build, x, may_use_xla)

    def retrace(self) -> None:
        """Forgets the compiled functions: each is traced anew at its next call.

        Call it when something the graphs hold as a constant changes (the action bounds, TD3+BC's
        observation statistics); the networks' weights are variables and need no retrace.
        """
        if self._functions is not None:
            self._functions.clear()

    @property
    def trace_count(self) -> int:
        """How many times the agent's compiled functions have been traced (for retrace checks)."""
        return 0 if self._functions is None else self._functions.trace_count

    @property
    def flat_weights(self) -> bool:
        """Whether training packs each network's small weight arrays into one flat variable.

        Chosen by `compile` (see `rl.engine.layout.flat_layout_fits`): on for Keras' element-wise
        optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl; with
        or without gradient clipping) and models holding only float32 trainable weights. The maths
        is the same either way; the flat layout makes each training step much cheaper.
        """
        return any(isinstance(n, FlatWeights) for n in self.nets.values())

    # ------------------------------------------------- where the weights live
    def _pull(self) -> None:
        """Copies the models' weights into the flat training state."""
        if self.flat_weights and not self._pulled:
            for net in self.nets.values():
                net.pull()
            self._pulled = True

    def _push(self) -> None:
        """Copies the flat training state back into the models' own variables, for good."""
        self.sync_models()
        self._pulled = False

    def sync_models(self) -> None:
        """Refreshes the models' own variables from the training state, which stays current.

        Training may keep the weights in a flat layout (see `flat_weights`) and copy them back to
        the models only when the run ends; call this to read current weights from the models
        during a run (`save_weights` and checkpoints do).
        """
        if self.flat_weights and self._pulled:
            self._copy_weights("push")

    def _copy_weights(self, direction: str) -> None:
        """Copies every network's weights in one compiled call (`"push"`: into the models, `"pull"`:
        out of them into the training state): far cheaper than an eager copy per array when a
        callback's hooks need it at every step. Kept apart from `trace_count`'s functions."""
        nets = list(self.nets.values())

        def build() -> Callable[[tf.Tensor], tf.Tensor]:
            def copy(x: tf.Tensor) -> tf.Tensor:
                for net in nets:
                    net.push_in_graph() if direction == "push" else net.pull_in_graph()
                return x

            return copy

        self._copies.call(Signature(direction, None, 1), build, np.zeros(1, np.float32), may_use_xla=False)

    def reload_models(self) -> None:
        """Copies the models' own variables into the training state, when training keeps one.

        The run calls it after each hook of a callback that may change weights (see
        `rl.callbacks.Callback.touches_weights`), so that weights a callback sets during `fit`
        are the ones training goes on from.
        """
        if self.flat_weights and self._pulled:
            self._copy_weights("pull")

    def on_run_begin(self, training: bool) -> None:
        if training:
            self._pull()

    def on_run_end(self, training: bool) -> None:
        self._push()

    def nonfinite_weights(self) -> list[str]:
        """Online networks (and parameters) whose weights hold NaN or inf, by role (for error messages).

        Targets are left out: they follow their networks.
        """
        self.sync_models()
        bad = [
            r
            for r, m in self.models.items()
            if r not in self.targets and any(not np.isfinite(w).all() for w in m.get_weights())
        ]
        return bad + [r for r, v in self.parameters.items() if not np.isfinite(v.numpy()).all()]

    @property
    def layers(self) -> list[keras.Model]:
        """The online networks, in `weights_roles` order."""
        return [self.models[r] for r in self.weights_roles]

    def reset_states(self) -> None:
        """Resets stateful layers (each episode)."""
        for model in self.models.values():
            for layer in model.layers:
                if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
                    layer.reset_state()

    # --------------------------------------------------------------- weights
    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = False) -> None:
        """Saves each network of `weights_roles` as a Keras `.weights.h5` file (see `weights_paths`).

        Each file is written to a temporary name and renamed, so a crash never leaves a damaged
        file in place of a good one. HDF5 files carry no checksum: a file damaged later loads
        without complaint unless its structure breaks (checkpoints verify a SHA-256 of every
        file; see `save_checkpoint`).

        Raises:
            FileExistsError: if a file exists and `overwrite` is `False`.
        """
        paths = self.weights_paths(filepath)
        self.sync_models()
        save_weights_files([self.models[r] for r in self.weights_roles], paths, overwrite, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Loads what `save_weights(filepath)` wrote and copies it into the target networks.

        Every file is read and checked before any network changes. It detects missing files,
        files that are not Keras weight files, and weights of another architecture; it cannot
        detect values changed inside an intact file (HDF5 has no checksums).

        Raises:
            ValueError: if a file is missing, damaged, or holds weights of another architecture.
        """
        paths = self.weights_paths(filepath)
        for path in paths:
            if not os.path.isfile(path):
                raise ValueError(f"The weights file {path} does not exist. Received: filepath={filepath!r}")
        staged = {role: self._read_model_weights(role, path) for role, path in zip(self.weights_roles, paths)}
        for role, values in staged.items():
            self.models[role].set_weights(values)
        for target, source in self.targets.items():
            self.models[target].set_weights(self.models[source].get_weights())
        self._pulled = False

    def _read_model_weights(self, role: str, path: str) -> list[np.ndarray]:
        """Reads a `.weights.h5` file for network `role` into arrays, leaving the network untouched."""
        return read_weights_file(self.models[role], path, role, self.custom_model_objects)

    # ----------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        """JSON-compatible state of the subclass that crosses calls (override to add to it)."""
        return {}

    def restore_checkpoint_state(self, state: dict) -> None:
        """Restores what `checkpoint_state` returned (already validated by `validate_checkpoint_state`)."""

    def validate_checkpoint_state(self, state: dict) -> None:
        """Raises ValueError naming the field if `state` (from `checkpoint_state`) is not usable."""

    def save_checkpoint_files(self, folder: str) -> dict:
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `save_checkpoint()`.")
        self.sync_models()
        nbytes = sum(int(np.asarray(w).nbytes) for m in self.models.values() for w in m.get_weights())
        nbytes += sum(int(np.prod(v.shape)) * 4 for opt in self.optimizers.values() for v in opt.variables)
        nbytes += int(getattr(getattr(self, "memory", None), "nbytes", 0) or 0)
        check_free_space(folder, nbytes, "the checkpoint", f"folder={folder!r}")
        for role, model in self.models.items():
            model.save_weights(os.path.join(folder, f"{role}.weights.h5"))
        for group, opt in self.optimizers.items():
            with open(os.path.join(folder, f"{group}_optimizer.npz"), "wb") as f:
                np.savez(f, *[np.asarray(v.numpy()) for v in opt.variables])
        with open(os.path.join(folder, "parameters.npz"), "wb") as f:
            arrays = {r: np.asarray(v.numpy()) for r, v in self.parameters.items()}
            np.savez(f, seed_stream=self.seed_stream.get_state(), **arrays)
        return {"roles": list(self.models), "groups": list(self.optimizers), **self.checkpoint_state()}

    def read_checkpoint_files(self, folder: str, state: dict) -> dict:
        """Reads and checks every file of a checkpoint; changes nothing (see `apply_checkpoint_files`)."""
        if not isinstance(state, dict):
            raise ValueError(f"The checkpoint's agent_state must be an object. Received: agent_state={state!r}")
        if state.get("roles") != list(self.models) or state.get("groups") != list(self.optimizers):
            raise ValueError(
                f"The checkpoint holds networks {state.get('roles')} and optimizers {state.get('groups')}; this agent "
                f"has {list(self.models)} and {list(self.optimizers)}. Received: folder={folder!r}"
            )
        staged: dict[str, Any] = {"weights": {}, "optimizers": {}, "state": state}
        for role in self.models:
            path = os.path.join(folder, f"{role}.weights.h5")
            if not os.path.isfile(path):
                raise ValueError(f"The checkpoint lacks {path}. Received: folder={folder!r}")
            staged["weights"][role] = self._read_model_weights(role, path)
        for group, opt in self.optimizers.items():
            path = os.path.join(folder, f"{group}_optimizer.npz")
            arrays = _read_npz(path, f"the {group} optimizer's state")
            values = [arrays.get(f"arr_{i}") for i in range(len(opt.variables))]
            if len(arrays) != len(opt.variables) or any(
                x is None or tuple(v.shape) != tuple(x.shape) for v, x in zip(opt.variables, values)
            ):
                raise ValueError(f"The optimizer state {path} does not fit this agent's {group} optimizer.")
            staged["optimizers"][group] = values
        path = os.path.join(folder, "parameters.npz")
        params = _read_npz(path, "the trained parameters")
        if set(params) != set(self.parameters) | {"seed_stream"} or any(
            params[r].shape != tuple(v.shape) for r, v in self.parameters.items()
        ):
            raise ValueError(f"The parameters file {path} does not fit this agent. Received: keys {sorted(params)}")
        SeedStream.check_state(params["seed_stream"], path)
        staged["parameters"] = params
        self.validate_checkpoint_state(state)
        return staged

    def apply_checkpoint_files(self, staged: dict) -> None:
        """Applies what `read_checkpoint_files` read and checked."""
        for role, values in staged["weights"].items():
            self.models[role].set_weights(values)
        for group, values in staged["optimizers"].items():
            for v, x in zip(self.optimizers[group].variables, values):
                v.assign(x)
        params = staged["parameters"]
        for role, variable in self.parameters.items():
            variable.assign(params[role])
        self.seed_stream.set_state(params["seed_stream"])
        self._pulled = False
        self.restore_checkpoint_state(staged["state"])

    def load_checkpoint_files(self, folder: str, state: dict) -> None:
        self.apply_checkpoint_files(self.read_checkpoint_files(folder, state))


def read_weights_file(
    model: keras.Model,
    path: str,
    network: str = "model",
    custom_objects: dict | None = None,
    received: str | None = None,
) -> list[np.ndarray]:
    """Reads a Keras `.weights.h5` file written for `model` into arrays, leaving `model` untouched.

    Args:
        model: the network the file is for (cloned to read it).
        path: the file.
        network: the network's name in messages. Defaults to `"model"`.
        custom_objects: custom layers needed to clone `model`. Defaults to `None`.
        received: what to name as received in messages. Defaults to `filepath=<path>`.

    Returns:
        The arrays of `model.get_weights()` that the file holds.

    Raises:
        ValueError: if the file is missing, damaged, or holds weights of another architecture.
    """
    received = received or f"filepath={path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"The weights file {path} does not exist. Received: {received}")
    try:
        with keras.saving.custom_object_scope(custom_objects or {}):
            scratch = keras.models.clone_model(model)
        scratch.load_weights(path)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ValueError(
            f"Could not load the {network}'s weights from {path}: the file is damaged or holds another architecture "
            f"({e}). Received: {received}"
        ) from e
    values = scratch.get_weights()
    if [v.shape for v in values] != [w.shape for w in model.get_weights()]:
        raise ValueError(f"The weights in {path} do not fit the {network}. Received: {received}")
    return values


def save_weights_files(
    models: Sequence[keras.Model], paths: Sequence[str], overwrite: bool, filepath: str | os.PathLike
) -> None:
    """Saves each model to its `.weights.h5` path, each through a temporary name and a rename.

    Raises:
        FileExistsError: naming `filepath`, if a file exists and `overwrite` is `False` (before
            any file is written).
    """
    if not overwrite:
        for path in paths:
            if os.path.exists(path):
                raise FileExistsError(
                    f"{path} already exists; pass overwrite=True to replace it. Received: filepath={filepath!r}"
                )
    nbytes = sum(int(np.asarray(w).nbytes) for model in models for w in model.get_weights())
    check_free_space(os.path.dirname(os.path.abspath(paths[0])), nbytes, "the weights", f"filepath={filepath!r}")
    for model, path in zip(models, paths):
        with atomic_path(path) as tmp:
            model.save_weights(tmp)


class SeedStream:
    """Seeds for random draws inside compiled steps: a key and a counter in one int64 variable.

    `next()` (in the graph) advances the counter and returns a seed for `tf.random.stateless_*`:
    draws are reproducible from the key, and the state is saved in checkpoints. The key is drawn
    from numpy's global generator (seeded by `keras.utils.set_random_seed`) unless given.
    """

    def __init__(self, key: int | None = None):
        if key is None:
            key = int(np.random.randint(0, 2**31 - 1))
        self.variable = tf.Variable(np.array([key, 0], np.int64), trainable=False, name="seed_stream")

    def next(self) -> tf.Tensor:
        """In the graph: a fresh seed, shape `[2]`."""
        return self.variable.assign_add(tf.constant([0, 1], tf.int64))

    def get_state(self) -> np.ndarray:
        """The stream's position, for checkpoints."""
        return self.variable.numpy()

    def set_state(self, state: np.ndarray) -> None:
        """Moves the stream to a position `get_state` returned."""
        self.variable.assign(np.asarray(state, np.int64))

    @staticmethod
    def check_state(state: np.ndarray, path: str) -> None:
        """Raises a `ValueError` naming `path` if `state` is not a stream position."""
        if state.shape != (2,) or state.dtype.kind not in "iu":
            raise ValueError(f"The seed stream state in {path} is invalid. Received: seed_stream={state!r}")


def _read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as e:  # missing, truncated or damaged file
        raise ValueError(f"The file holding {what}, {path}, is missing or damaged ({e}).") from e


def _resolve_metrics(metrics: list | None) -> tuple[list[Callable], list[str]]:
    if metrics is not None and not isinstance(metrics, (list, tuple)):
        raise TypeError(f"`metrics` must be a list. Received: metrics={metrics!r}")
    fns, names = [], []
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
        fns.append(fn)
        names.append(m if isinstance(m, str) else getattr(fn, "__name__", type(fn).__name__))
    return fns, names
