"""The cross-entropy method (Szita & Lorincz, 2006): gradient-free search over a network's weights."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rl.agents.value_based import discrete_action_count, space_type
from rl.core import Agent, Processor
from rl.engine import CompiledFunctions, Fields, Signature, weights_paths
from rl.engine.deep_agent import read_weights_file, save_weights_files
from rl.engine.inputs import acting_fields, fit_state_shapes, model_input, pack_states, process_states
from rl.memory import ObservationWindow
from rl.util import check_int, check_number

__all__ = ["CEMAgent"]


class CEMAgent(Agent):
    """CEM: samples weight vectors from a Gaussian, keeps the best episodes', refits the Gaussian.

    The agent keeps a diagonal Gaussian over the flat vector of all of `model`'s weights,
    `theta = [mean, std]`. Each training episode is played with one weight vector drawn from it;
    `memory` (an `rl.memory.EpisodeParameterMemory`) stores the vector with the episode's return.
    Every `train_interval` finished episodes after the warm-up:

    ```
    params, returns = memory.sample(batch_size)           # stored episodes, drawn uniformly
    elite = the max(1, int(batch_size * elite_frac)) best params by return
    mean  = mean(elite);   std = std(elite) + noise_ampl * exp(-noise_decay_const * step)
    ```

    `model` maps observations to `nb_actions` scores. While training, the action is drawn with
    probabilities `softmax(scores)` (as keras-rl did, also when the model already ends with a
    softmax); `test` takes `argmax(scores)`. The model holds the best weights seen so far (those of
    the training episode with the highest return), which `test`, `save_weights` and callbacks
    use. The episode return counts every step's reward up to its end, whether it terminated or
    was truncated by a time limit. No gradient is taken, so `compile` needs no optimizer; acting
    runs in a compiled TensorFlow function that reads the sampled weights from one variable.

    Random draws (weights and actions) come from the agent's generator: seeded by `seed`, and
    re-seeded by `fit(..., seed=...)`; it is saved in checkpoints.

    Args:
        model: Keras model from observation(s) to `nb_actions` scores, output `(None, nb_actions)`.
            Its observation input may be shaped `(window_length,) + obs_shape` (keras-rl style)
            or, when `window_length == 1`, `obs_shape`.
        nb_actions: number of discrete actions; the action space must be
            `gymnasium.spaces.Discrete(nb_actions)` or another space with `n == nb_actions` and no
            shape (see `rl.agents.value_based.discrete_action_count`).
        memory: an `rl.memory.EpisodeParameterMemory` (or any object with its `append`,
            `finalize_episode` and `sample`).
        batch_size: episodes sampled from memory per update, >= 1. Defaults to `50`.
        nb_steps_warmup: environment steps before the first update. Defaults to `1000`.
        train_interval: update every this many finished training episodes. Defaults to `50`.
        elite_frac: fraction of the sampled episodes kept as the elite, in `(0, 1]`: the best
            `max(1, int(batch_size * elite_frac))`. Defaults to `0.05`.
        memory_interval: keras-rl's argument, >= 1. The return counts every step's reward here,
            so it changes nothing (keras-rl summed only every `memory_interval`-th reward).
            Defaults to `1`.
        theta_init: the initial `[mean, std]`, a 1-D array of `2 * n` values for `n` weights
            (standard deviations >= 0), or `None` for means 0 and standard deviations 1.
            Defaults to `None`.
        noise_decay_const: decay rate of the extra standard deviation, >= 0. Defaults to `0.0`.
        noise_ampl: extra standard deviation added after each update, at step 0, >= 0.
            Defaults to `0.0`.
        processor: an `rl.core.Processor`. Defaults to `None`.
        seed: seed of the agent's generator. Defaults to `None` (drawn from numpy's global
            generator, which `keras.utils.set_random_seed` seeds).

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    memory = EpisodeParameterMemory(limit=1000, window_length=1)
    agent = CEMAgent(model=model, nb_actions=2, memory=memory, batch_size=50,
                     nb_steps_warmup=2000, train_interval=50, elite_frac=0.05)
    agent.compile()
    agent.fit(env, nb_steps=100_000)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        nb_actions: int,
        memory: Any,
        batch_size: int = 50,
        nb_steps_warmup: int = 1000,
        train_interval: int = 50,
        elite_frac: float = 0.05,
        memory_interval: int = 1,
        theta_init: np.ndarray | None = None,
        noise_decay_const: float = 0.0,
        noise_ampl: float = 0.0,
        processor: Processor | None = None,
        seed: int | None = None,
    ):
        super().__init__(processor=processor)
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
        self.nb_actions = check_int("nb_actions", nb_actions, minimum=1)
        if len(model.outputs) != 1 or tuple(model.outputs[0].shape[1:]) != (self.nb_actions,):
            raise ValueError(
                f"`model` must have a single output of shape (None, {self.nb_actions}) (nb_actions={self.nb_actions}). "
                f"Received: model.outputs={[tuple(o.shape) for o in model.outputs]}"
            )
        if not all(callable(getattr(memory, name, None)) for name in ("append", "finalize_episode", "sample")):
            raise TypeError(
                "`memory` must be an episode memory such as EpisodeParameterMemory (with append, finalize_episode "
                f"and sample). Received: memory={memory!r}"
            )
        self.model = model
        self.memory = memory
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.nb_steps_warmup = check_int("nb_steps_warmup", nb_steps_warmup, minimum=0)
        self.train_interval = check_int("train_interval", train_interval, minimum=1)
        self.elite_frac = check_number("elite_frac", elite_frac, low=0.0, high=1.0, low_inclusive=False)
        self.num_best = max(1, int(self.batch_size * self.elite_frac))
        self.memory_interval = check_int("memory_interval", memory_interval, minimum=1)
        self.noise_decay_const = check_number("noise_decay_const", noise_decay_const, low=0.0)
        self.noise_ampl = check_number("noise_ampl", noise_ampl, low=0.0)
        self.window_length = int(getattr(memory, "window_length", 1))

        weights = model.weights  # keras-rl's order: that of model.get_weights()
        self.shapes = [tuple(w.shape) for w in weights]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.num_weights = sum(self.sizes)
        position = {id(w): i for i, w in enumerate(weights)}
        self._trainable_index = [position[id(v)] for v in model.trainable_variables]
        self._non_trainable_index = [position[id(v)] for v in model.non_trainable_variables]
        self.theta = np.concatenate([np.zeros(self.num_weights), np.ones(self.num_weights)])
        if theta_init is not None:
            self.update_theta(theta_init, name="theta_init")
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self._rng = np.random.default_rng(seed)
        self.best_seen: tuple[float, np.ndarray] = (-np.inf, self.get_weights_flat(model.get_weights()))
        self._current = self.best_seen[1].copy()  # the weights the running training episode plays
        self._finished = 0  # training episodes finished (updates come every `train_interval`)
        self._window = ObservationWindow(self.window_length)
        self._params_var: tf.Variable | None = None
        self._loaded: bool | None = None  # what the acting variable holds: True the sample, False the model's
        self._functions: CompiledFunctions | None = None
        self._fields: Fields | None = None
        self._obs_shape: tuple | None = None
        self._input_shapes: list[tuple] | None = None
        self.recent_observation: Any = None
        self.recent_action: int | None = None

    # ----------------------------------------------------------------- setup
    def compile(self, optimizer: Any = None, metrics: list | None = None) -> None:
        """Prepares acting. CEM takes no gradient: `optimizer` and `metrics` are accepted and ignored.

        Args:
            optimizer: ignored. Defaults to `None`.
            metrics: ignored. Defaults to `None`.
        """
        if self._params_var is None:
            self._params_var = tf.Variable(np.zeros(self.num_weights, np.float32), trainable=False, name="cem_params")
        self._functions = CompiledFunctions(xla=False, fallback=False)
        self._loaded = None
        self.compiled = True

    def get_config(self) -> dict[str, Any]:
        config = {
            "nb_actions": self.nb_actions,
            "batch_size": self.batch_size,
            "nb_steps_warmup": self.nb_steps_warmup,
            "train_interval": self.train_interval,
            "elite_frac": self.elite_frac,
            "memory_interval": self.memory_interval,
            "noise_decay_const": self.noise_decay_const,
            "noise_ampl": self.noise_ampl,
            "model": self.model.name,
        }
        if hasattr(self.memory, "get_config"):
            config["memory"] = self.memory.get_config()
        return config

    @property
    def layers(self) -> list[keras.Model]:
        """`[model]`."""
        return [self.model]

    @property
    def metrics_names(self) -> list[str]:
        """`['mean_best_reward', *processor.metrics_names]`: the elite's mean return at each update."""
        names = ["mean_best_reward"]
        if self.processor is not None:
            names += list(self.processor.metrics_names)
        return names

    def serving_policy(self) -> Any:
        """The test-mode policy `argmax(scores)` of the best weights seen, with the scores, for
        `export` (see `rl.export`).

        Raises:
            ValueError: if the agent has not acted yet, or its processor batches states in Python only.
        """
        from rl.export import greedy_serving_policy

        return greedy_serving_policy(
            self, self.model, self._input_shapes, self._obs_shape, self.window_length, scores_name="scores"
        )

    def check_env(self, env: Any) -> None:
        space = getattr(env, "action_space", None)
        maps_actions = (
            self.processor is not None and type(self.processor).process_action is not Processor.process_action
        )
        if not maps_actions and discrete_action_count(space) != self.nb_actions:
            raise ValueError(
                f"CEMAgent picks one of nb_actions={self.nb_actions} actions: the environment needs "
                f"gymnasium.spaces.Discrete({self.nb_actions}) or another space with n={self.nb_actions} and no shape "
                "(or a Processor whose process_action maps them). "
                f"Received: env.action_space={space!r} of type {space_type(space)}"
            )

    # ------------------------------------------------------- weight vectors
    def get_weights_flat(self, weights: list[np.ndarray]) -> np.ndarray:
        """The model's weights (as `model.get_weights()` lists them) as one float32 vector."""
        return np.concatenate([np.ravel(w) for w in weights]).astype(np.float32) if weights else np.zeros(0, np.float32)

    def get_weights_list(self, weights_flat: np.ndarray) -> list[np.ndarray]:
        """The inverse of `get_weights_flat`: arrays shaped as `model.get_weights()`."""
        out, pos = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(np.asarray(weights_flat[pos : pos + size], np.float32).reshape(shape))
            pos += size
        return out

    def update_theta(self, theta: np.ndarray, name: str = "theta") -> None:
        """Sets the sampling distribution `[mean, std]` (a 1-D array of `2 * num_weights` values).

        Raises:
            ValueError: if `theta` has the wrong shape, is not finite, or has a negative std.
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (2 * self.num_weights,):
            raise ValueError(
                f"`{name}` must be [mean, std] for the model's {self.num_weights} weights, shape "
                f"({2 * self.num_weights},). Received: {name} of shape {theta.shape}"
            )
        if not np.isfinite(theta).all():
            raise ValueError(f"`{name}` must be finite. Received: {name} with NaN or inf")
        if (theta[self.num_weights :] < 0).any():
            raise ValueError(f"`{name}`'s standard deviations (its second half) must be >= 0. Received: {name}")
        self.theta = theta.copy()

    def choose_weights(self) -> np.ndarray:
        """Draws the next training episode's weights from `theta`; returns them."""
        mean, std = self.theta[: self.num_weights], self.theta[self.num_weights :]
        self._current = (mean + std * self._rng.standard_normal(self.num_weights)).astype(np.float32)
        if self._loaded:
            self._params_var.assign(self._current)
        return self._current

    def _load_params(self, training: bool) -> None:
        """Puts the weights acting reads into its variable: the sample while training, else the model's."""
        self._params_var.assign(self._current if training else self.get_weights_flat(self.model.get_weights()))
        self._loaded = training

    def on_run_begin(self, training: bool) -> None:
        self._load_params(training)

    def on_run_end(self, training: bool) -> None:
        self._loaded = None

    # ------------------------------------------------------------- acting
    def reset_states(self) -> None:
        """Starts a new episode's observation window."""
        self._window.reset()
        self.recent_observation = None
        self.recent_action = None

    def _setup_inputs(self, observation: Any, parts: list[np.ndarray]) -> None:
        """Checks the first (processed) state of a run against the model's inputs; records their shapes."""
        obs = np.asarray(observation)
        shapes = fit_state_shapes(
            parts,
            self.model.inputs,
            obs_shape=obs.shape,
            window_length=self.window_length,
            drop_window=self.window_length == 1 and self.processor is None,
            received="observation of shape",
        )
        if shapes != self._input_shapes:
            self._functions.clear()
        self._obs_shape, self._input_shapes = obs.shape, shapes
        self._fields = acting_fields(shapes)

    def _act_function(self):
        fields, model, params = self._fields, self.model, self._params_var
        splits, shapes = self.sizes, self.shapes

        def act(flat: tf.Tensor) -> tf.Tensor:
            values = [tf.reshape(p, s) for p, s in zip(tf.split(params, splits), shapes)] if splits else []
            trainable = [values[i] for i in self._trainable_index]
            non_trainable = [values[i] for i in self._non_trainable_index]
            states = fields.unpack(flat)["state"]
            outputs, _ = model.stateless_call(trainable, non_trainable, model_input(states))
            return tf.cast(tf.reshape(outputs, [-1]), tf.float32)  # [nb_actions]

        return act

    def scores(self, observation: Any) -> np.ndarray:
        """The model's `nb_actions` scores for `observation` (pushed into the observation window)."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before acting.")
        obs = np.asarray(observation)
        if obs.dtype.kind not in "biuf":
            raise TypeError(f"Observations must be numeric arrays. Received: observation of dtype {obs.dtype}")
        if self._loaded is not self.training:
            self._load_params(self.training)  # a hand-written loop, outside fit and test
        parts = process_states(self.processor, self._window.push(obs)[None])  # the real state: no made-up probe
        if self._input_shapes is None or obs.shape != self._obs_shape:
            self._setup_inputs(obs, parts)
        flat = pack_states(parts)
        return self._functions.call(Signature("act", None, flat.shape[0]), self._act_function, flat, False)

    def forward(self, observation: Any) -> int:
        """Returns an action: drawn with probabilities `softmax(scores)` while training, else `argmax`."""
        scores = self.scores(observation)
        if self.training:
            p = np.exp(scores - scores.max())
            action = int(np.searchsorted(np.cumsum(p), self._rng.random() * p.sum(), side="right"))
            action = min(action, self.nb_actions - 1)
        else:
            action = int(np.argmax(scores))
        self.recent_observation = observation
        self.recent_action = action
        return action

    # ------------------------------------------------------------ learning
    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Adds `reward` to the episode's return; at the episode's end stores it, updates `theta`
        every `train_interval` episodes, and draws the next episode's weights.

        Returns:
            `[mean return of the elite]` at an update, NaN otherwise (then the processor's metrics).
        """
        metrics = [np.nan]
        if self.processor is not None and self.processor.metrics_names:
            metrics += list(self.processor.metrics)
        if not self.training:
            return metrics
        self.memory.append(
            self.recent_observation, self.recent_action, reward, terminal, training=True, truncated=truncated
        )
        if not (terminal or truncated):
            return metrics
        episode_return = float(getattr(self.memory, "episode_reward", np.nan))
        self.memory.finalize_episode(self._current)
        if episode_return > self.best_seen[0]:
            self.best_seen = (episode_return, self._current.copy())
            self.model.set_weights(self.get_weights_list(self._current))
        self._finished += 1
        if self.step > self.nb_steps_warmup and self._finished % self.train_interval == 0:
            metrics[0] = self.update_distribution()
        self.choose_weights()
        return metrics

    def update_distribution(self) -> float:
        """Refits `theta` to the elite of a batch of stored episodes; returns the elite's mean return."""
        params, returns = self.memory.sample(self.batch_size)
        returns = np.asarray(returns, dtype=np.float64)
        best = np.argsort(returns, kind="stable")[-self.num_best :]
        elite = np.stack([np.asarray(params[i], np.float64) for i in best])  # [num_best, num_weights]
        min_std = self.noise_ampl * np.exp(-self.step * self.noise_decay_const)
        self.theta = np.concatenate([elite.mean(axis=0), elite.std(axis=0) + min_std])
        return float(returns[best].mean())

    def abandon_episode(self) -> None:
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()  # an abandoned episode's partial return is not a return

    # --------------------------------------------------------------- weights
    def weights_paths(self, filepath: str | os.PathLike) -> tuple[str]:
        """The file `save_weights(filepath)` writes: `'cem.weights.h5'` -> `'cem_model.weights.h5'`
        (see `rl.engine.weights_paths`)."""
        return weights_paths(filepath, ("model",))

    def save_weights(self, filepath: str | os.PathLike, overwrite: bool = False) -> None:
        """Saves the model (the best weights seen) to a Keras `.weights.h5` file, atomically.

        Raises:
            FileExistsError: if the file exists and `overwrite` is `False`.
        """
        save_weights_files([self.model], self.weights_paths(filepath), overwrite, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Loads what `save_weights(filepath)` wrote into the model; the next training episode plays them.

        Raises:
            ValueError: if the file is missing, damaged, or holds weights of another architecture.
        """
        (path,) = self.weights_paths(filepath)
        values = self._read_weights(path, f"filepath={filepath!r}")
        self.model.set_weights(values)
        self._current = self.get_weights_flat(values)
        self._loaded = None

    def _read_weights(self, path: str, received: str) -> list[np.ndarray]:
        return read_weights_file(self.model, path, received=received)

    # ----------------------------------------------------------- checkpoints
    def save_checkpoint_files(self, folder: str) -> dict:
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `save_checkpoint()`.")
        self.model.save_weights(os.path.join(folder, "model.weights.h5"))
        with open(os.path.join(folder, "cem.npz"), "wb") as f:
            np.savez(f, theta=self.theta, current=self._current, best_params=self.best_seen[1])
        if hasattr(self.memory, "save"):
            self.memory.save(os.path.join(folder, "memory.npz"))
        best = self.best_seen[0]
        return {"finished": self._finished, "best_return": None if not np.isfinite(best) else float(best)}

    def read_checkpoint_files(self, folder: str, state: dict) -> dict:
        where = f"folder={folder!r}"
        finished = state.get("finished") if isinstance(state, dict) else None
        if isinstance(finished, bool) or not isinstance(finished, int) or finished < 0:
            raise ValueError(f"The checkpoint's agent_state.finished is invalid. Received: finished={finished!r}")
        best = state.get("best_return")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not np.isfinite(best)):
            raise ValueError(f"The checkpoint's agent_state.best_return is invalid. Received: best_return={best!r}")
        staged: dict[str, Any] = {"finished": finished, "best_return": -np.inf if best is None else float(best)}
        staged["weights"] = self._read_weights(os.path.join(folder, "model.weights.h5"), where)
        path = os.path.join(folder, "cem.npz")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as e:  # missing, truncated or damaged
            raise ValueError(f"The CEM state {path} is missing or damaged ({e}). Received: {where}") from e
        n = self.num_weights
        for key, size in (("theta", 2 * n), ("current", n), ("best_params", n)):
            a = arrays.get(key)
            if a is None or a.shape != (size,) or a.dtype.kind != "f" or not np.isfinite(a).all():
                raise ValueError(f"The CEM state {path} lacks a finite `{key}` of shape ({size},). Received: {where}")
        if (arrays["theta"][n:] < 0).any():
            raise ValueError(f"The CEM state {path} has a negative standard deviation in `theta`. Received: {where}")
        staged.update({k: arrays[k] for k in ("theta", "current", "best_params")})
        path = os.path.join(folder, "memory.npz")
        if hasattr(self.memory, "read_state"):
            staged["memory"] = self.memory.read_state(path)
        return staged

    def apply_checkpoint_files(self, staged: dict) -> None:
        self.model.set_weights(staged["weights"])
        self.theta = staged["theta"].astype(np.float64)
        self._current = staged["current"].astype(np.float32)
        self.best_seen = (staged["best_return"], staged["best_params"].astype(np.float32))
        self._finished = staged["finished"]
        if "memory" in staged:
            self.memory.set_state(staged["memory"])
        if hasattr(self.memory, "end_episode"):
            self.memory.end_episode()  # a resumed run starts a new episode
        self._loaded = None
