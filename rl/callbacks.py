"""Callbacks for `Agent.fit` and `Agent.test`: episode/step hooks, loggers, checkpoints, evaluation,
TensorBoard, rendering."""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any

import keras
import numpy as np

from rl.util import check_int, warn_at_caller, write_json_atomic

__all__ = [
    "Callback",
    "CallbackList",
    "Checkpoint",
    "EvalCallback",
    "FileLogger",
    "ModelIntervalCheckpoint",
    "TensorBoard",
    "TestLogger",
    "TrainEpisodeLogger",
    "TrainIntervalLogger",
    "Visualizer",
    "WandbLogger",
]


class Callback(keras.callbacks.Callback):
    """Base class of agent callbacks: a Keras callback with episode, step and action hooks.

    `self.model` is the agent and `self.env` the environment. Episode logs hold `episode_reward`,
    `nb_episode_steps` and `nb_steps`; step logs hold `action`, `observation`, `reward`,
    `metrics` (ordered as `agent.metrics_names`), `episode` and `info`. Evaluation logs (see
    `EvalCallback`) hold `eval_step`, `eval_mean_return`, `eval_std_return` and `best_mean_return`.
    """

    env: Any = None
    _callback_list: CallbackList | None = None  # the list running this callback (set by `CallbackList`)
    #: Whether the callback may read or change the agent's weights in its hooks. During a run an
    #: agent may train a copy of its weights (the flat layout): for such a callback the run brings
    #: the models up to date before each hook it overrides and takes back what the hook changed
    #: afterwards, so it sees the live weights and its changes take effect. Callbacks that only log
    #: set it to `False` to skip that work; plain Keras callbacks count as `True`.
    touches_weights: bool = True

    def _set_env(self, env: Any) -> None:
        self.env = env

    def on_episode_begin(self, episode: int, logs: dict | None = None) -> None:
        """Called at the start of each episode."""

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        """Called at the end of each episode."""

    def on_step_begin(self, step: int, logs: dict | None = None) -> None:
        """Called before each agent step; `step` counts steps within the episode."""

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        """Called after each agent step (after the agent has learned from it)."""

    def on_action_begin(self, action: Any, logs: dict | None = None) -> None:
        """Called before each `env.step` (several per agent step with `action_repetition > 1`)."""

    def on_action_end(self, action: Any, logs: dict | None = None) -> None:
        """Called after each `env.step`."""

    def on_eval_end(self, step: int, logs: dict | None = None) -> None:
        """Called after each evaluation of an `EvalCallback`; `step` is the training step it evaluated."""


_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_episode_begin",
    "on_episode_end",
    "on_step_begin",
    "on_step_end",
    "on_action_begin",
    "on_action_end",
    "on_eval_end",
)
# Plain Keras callbacks see episodes as epochs and steps as batches.
_KERAS_EQUIVALENT = {
    "on_train_begin": "on_train_begin",
    "on_train_end": "on_train_end",
    "on_episode_begin": "on_epoch_begin",
    "on_episode_end": "on_epoch_end",
    "on_step_begin": "on_train_batch_begin",
    "on_step_end": "on_train_batch_end",
}


class CallbackList:
    """Drives a list of callbacks; plain `keras.callbacks.Callback`s get epoch/batch calls.

    Only the hooks a callback overrides are called, so unused hooks cost nothing per step.
    A `keras.callbacks.History` also records the evaluation logs of `on_eval_end`.

    Raises:
        TypeError: if an entry is not a Keras callback, or is `keras.callbacks.TensorBoard`
            (use `rl.callbacks.TensorBoard`).
    """

    def __init__(self, callbacks: list[keras.callbacks.Callback] | None = None):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, keras.callbacks.Callback):
                raise TypeError(f"Each callback must be a `keras.callbacks.Callback`. Received: callback={cb!r}")
            if isinstance(cb, keras.callbacks.TensorBoard):
                raise TypeError(
                    "keras.callbacks.TensorBoard cannot serve an RL agent (it needs a Keras training loop); use "
                    f"rl.callbacks.TensorBoard(log_dir={cb.log_dir!r}, update_freq={cb.update_freq!r}), which "
                    f"takes the same log_dir and update_freq. Received: callback={cb!r}"
                )
            if isinstance(cb, Callback):
                cb._callback_list = self
        self._histories = [cb for cb in self.callbacks if isinstance(cb, keras.callbacks.History)]
        self._hooks: dict[str, list] = {name: [] for name in _HOOKS}
        for cb in self.callbacks:
            cls = type(cb)
            for name in _HOOKS:
                if isinstance(cb, Callback):
                    base = getattr(Callback, name)
                    if getattr(cls, name) is not base:
                        self._hooks[name].append(getattr(cb, name))
                elif name in _KERAS_EQUIVALENT:
                    keras_name = _KERAS_EQUIVALENT[name]
                    if getattr(cls, keras_name) is not getattr(keras.callbacks.Callback, keras_name):
                        self._hooks[name].append(getattr(cb, keras_name))

    def guard_weights(self, before: Any, after: Any) -> None:
        """Wraps each hook of a callback that may touch the agent's weights in `before()` / `after()`.

        The run passes the agent's `sync_models` and `reload_models`: callbacks whose
        `touches_weights` is true (plain Keras callbacks but `History` included) then read the
        live weights and change them for good. Hooks of other callbacks run as they are.
        """
        for name in _HOOKS:
            self._hooks[name] = [
                _guarded(hook, before, after) if _touches_weights(hook.__self__) else hook for hook in self._hooks[name]
            ]

    def set_model(self, model: Any) -> None:
        """Gives every callback the agent (Keras callbacks get it as their `model`)."""
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        """Gives every callback the run's parameters (`nb_steps` or `nb_episodes`)."""
        for cb in self.callbacks:
            cb.set_params(params)

    def set_env(self, env: Any) -> None:
        """Gives every callback that has `set_env` the environment."""
        for cb in self.callbacks:
            if isinstance(cb, Callback):
                cb._set_env(env)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Calls `on_train_begin` of every callback (also when `test` starts)."""
        for hook in self._hooks["on_train_begin"]:
            hook(logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        """Calls `on_train_end` of every callback (also when `test` ends)."""
        for hook in self._hooks["on_train_end"]:
            hook(logs)

    def on_episode_begin(self, episode: int, logs: dict | None = None) -> None:
        """Calls `on_episode_begin` of every callback (Keras callbacks: `on_epoch_begin`)."""
        for hook in self._hooks["on_episode_begin"]:
            hook(episode, logs)

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        """Calls `on_episode_end` of every callback (Keras callbacks: `on_epoch_end`)."""
        for hook in self._hooks["on_episode_end"]:
            hook(episode, logs)

    def on_step_begin(self, step: int, logs: dict | None = None) -> None:
        """Calls `on_step_begin` of every callback (Keras callbacks: `on_batch_begin`)."""
        for hook in self._hooks["on_step_begin"]:
            hook(step, logs)

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        """Calls `on_step_end` of every callback (Keras callbacks: `on_batch_end`)."""
        for hook in self._hooks["on_step_end"]:
            hook(step, logs)

    def on_action_begin(self, action: Any, logs: dict | None = None) -> None:
        """Calls `on_action_begin` of every callback that has it, before each `env.step`."""
        for hook in self._hooks["on_action_begin"]:
            hook(action, logs)

    def on_action_end(self, action: Any, logs: dict | None = None) -> None:
        """Calls `on_action_end` of every callback that has it, after each `env.step`."""
        for hook in self._hooks["on_action_end"]:
            hook(action, logs)

    def on_eval_end(self, step: int, logs: dict | None = None) -> None:
        """Calls `on_eval_end` of every callback that has it, after an evaluation during training."""
        for hook in self._hooks["on_eval_end"]:
            hook(step, logs)
        for history in self._histories:
            for key, value in (logs or {}).items():
                history.history.setdefault(key, []).append(value)

    def wants(self, name: str) -> bool:
        """Whether any callback listens to hook `name` (lets the loop skip building its logs)."""
        return bool(self._hooks[name])


def _touches_weights(cb: Any) -> bool:
    if isinstance(cb, Callback):
        return bool(cb.touches_weights)
    return not isinstance(cb, keras.callbacks.History)


def _guarded(hook: Any, before: Any, after: Any) -> Any:
    def call(*args: Any) -> None:
        before()
        try:
            hook(*args)
        finally:
            after()

    call.__self__ = hook.__self__  # type: ignore[attr-defined]  # the callback, for a second guard_weights
    return call


def _format_metrics(names: list[str], values: np.ndarray) -> str:
    parts = []
    for name, value in zip(names, values):
        parts.append(f"{name}: {value:.3f}" if np.isfinite(value) else f"{name}: --")
    return ", ".join(parts)


def _training_begins(nb_steps: int, first_step: int) -> str:
    """The loggers' first line: `'Training for 3400 steps ...'` (`'... (from step 6000) ...'` when resumed)."""
    resumed = f" (from step {first_step})" if first_step else ""
    return f"Training for {nb_steps} steps{resumed} ..."


def _training_ends(logs: dict | None, steps: int, nb_steps: int, first_step: int, seconds: float) -> str:
    """The loggers' last line: `'done, took ...'`, or where a run that Ctrl-C (`KeyboardInterrupt`) ended stopped."""
    if logs and logs.get("did_abort"):
        agent_step = f" (agent step {first_step + steps})" if first_step else ""
        return (
            f"Training stopped early (KeyboardInterrupt) at step {steps} of {nb_steps}{agent_step}, "
            f"took {seconds:.3f} seconds"
        )
    return f"done, took {seconds:.3f} seconds"


class TestLogger(Callback):
    """Prints each test episode's return and length; when Ctrl-C ends the test, how many episodes ran."""

    touches_weights = False  # it only logs

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._episodes = 0
        print(f"Testing for {self.params['nb_episodes']} episodes ...")

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        self._episodes += 1
        print(f"Episode {episode + 1}: reward: {logs['episode_reward']:.3f}, steps: {logs['nb_episode_steps']}")

    def on_train_end(self, logs: dict | None = None) -> None:
        if logs and logs.get("did_abort"):
            print(
                f"Testing stopped early (KeyboardInterrupt) after {self._episodes} of "
                f"{self.params['nb_episodes']} episodes"
            )


class TrainEpisodeLogger(Callback):
    """Prints one line per training episode: return, length, speed and mean metrics.

    Each line starts with the run's progress, `steps/nb_steps`, counted from the step the run
    started at: a run resumed from a checkpoint at step 6000 with `nb_steps=3400` counts up to
    `3400/3400` (its first line says "from step 6000"). The last line says whether the run
    finished or Ctrl-C stopped it early, and at which step.
    """

    touches_weights = False  # it only logs

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._train_start = time.perf_counter()
        self._names = list(self.model.metrics_names)
        self._first_step = int(getattr(self.model, "step", 0))
        print(_training_begins(self.params["nb_steps"], self._first_step))

    def on_episode_begin(self, episode: int, logs: dict | None = None) -> None:
        self._episode_start = time.perf_counter()
        self._metrics: list = []

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        self._metrics.append(logs["metrics"])

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        duration = time.perf_counter() - self._episode_start
        steps = logs["nb_episode_steps"]
        metrics = np.asarray(self._metrics, dtype=np.float64).reshape(len(self._metrics), -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns during warm-up
            means = np.nanmean(metrics, axis=0) if len(metrics) else np.full(len(self._names), np.nan)
        print(
            f"{logs['nb_steps'] - self._first_step:>7d}/{self.params['nb_steps']}: episode: {episode + 1}, "
            f"duration: {duration:.2f}s, episode steps: {steps}, steps per second: {steps / max(duration, 1e-9):.0f}, "
            f"episode reward: {logs['episode_reward']:.3f}, {_format_metrics(self._names, means)}"
        )

    def on_train_end(self, logs: dict | None = None) -> None:
        steps = int(getattr(self.model, "step", 0)) - self._first_step
        seconds = time.perf_counter() - self._train_start
        print(_training_ends(logs, steps, self.params["nb_steps"], self._first_step, seconds))


class TrainIntervalLogger(Callback):
    """Shows a Keras progress bar per interval of steps, then the interval's episode returns and metrics.

    Intervals are counted from the step the run started at (a resumed run starts at interval 1);
    each interval's header gives the agent's total steps. The last line says whether the run
    finished or Ctrl-C stopped it early, and at which step.

    Args:
        interval: steps per interval. Defaults to `10000`.
    """

    touches_weights = False  # it only logs

    def __init__(self, interval: int = 10000):
        super().__init__()
        self.interval = check_int("interval", interval, minimum=1)
        # Updating the bar costs far more than a step: refresh it a few hundred times an interval.
        self._refresh = max(1, self.interval // 200)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._train_start = time.perf_counter()
        self._names = list(self.model.metrics_names)
        self._steps = 0
        self._first_step = int(getattr(self.model, "step", 0))
        print(_training_begins(self.params["nb_steps"], self._first_step))
        self._target = min(self.interval, self.params["nb_steps"])
        self._start_interval()

    def _start_interval(self) -> None:
        self._interval_start = time.perf_counter()
        self._metrics: list = []
        self._episode_rewards: list = []
        remaining = self.params["nb_steps"] - self._steps
        self._progbar = keras.utils.Progbar(target=min(self.interval, remaining), interval=0.5)
        print(f"Interval {self._steps // self.interval + 1} ({self._first_step + self._steps} steps performed)")

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        self._steps += 1
        self._metrics.append(logs["metrics"])
        done = self._steps % self.interval
        if done == 0:
            self._progbar.update(self.interval, finalize=True)
            self._summarise(self.interval)
            if self._steps < self.params["nb_steps"]:
                self._start_interval()
        elif done % self._refresh == 0:
            self._progbar.update(done, values=[("reward", float(logs["reward"]))])

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        self._episode_rewards.append(logs["episode_reward"])

    def _summarise(self, steps: int) -> None:
        duration = time.perf_counter() - self._interval_start
        line = f"{steps / max(duration, 1e-9):.0f} steps/s"
        if self._episode_rewards:
            r = np.asarray(self._episode_rewards)
            line += f" - {len(r)} episodes - episode_reward: {r.mean():.3f} [{r.min():.3f}, {r.max():.3f}]"
        if self._metrics and self._names:
            metrics = np.asarray(self._metrics, dtype=np.float64).reshape(len(self._metrics), -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                line += " - " + _format_metrics(self._names, np.nanmean(metrics, axis=0))
        print(line)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._steps % self.interval:
            self._progbar.update(self._steps % self.interval, finalize=True)
            self._summarise(self._steps % self.interval)
        seconds = time.perf_counter() - self._train_start
        print(_training_ends(logs, self._steps, self.params["nb_steps"], self._first_step, seconds))


class FileLogger(Callback):
    """Writes per-episode logs (return, length, mean metrics, duration) to a JSON file.

    The file holds one list per key (`episode`, `episode_reward`, `nb_episode_steps`, `nb_steps`,
    `duration` and each of `agent.metrics_names`), one entry per episode; with an `EvalCallback`
    in the same run, also one entry per evaluation under `eval_step`, `eval_mean_return`,
    `eval_std_return` and `best_mean_return`. It is rewritten atomically every `interval` steps and
    at the end of training. `python -m rl.plot LOG.json` draws it (see `rl.plot.plot_log`).

    Args:
        filepath: path of the JSON file.
        interval: steps between writes, or `None` to write only at the end. Defaults to `None`.
    """

    touches_weights = False  # it only logs

    def __init__(self, filepath: str | os.PathLike, interval: int | None = None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.interval = None if interval is None else check_int("interval", interval, minimum=1)
        self.data: dict[str, list] = {}
        self._steps = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._names = list(self.model.metrics_names)

    def on_episode_begin(self, episode: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._metrics: list = []

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        self._metrics.append(logs["metrics"])
        self._steps += 1
        if self.interval is not None and self._steps % self.interval == 0:
            self.save_data()

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        metrics = np.asarray(self._metrics, dtype=np.float64).reshape(len(self._metrics), -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            means = np.nanmean(metrics, axis=0) if len(metrics) else np.full(len(self._names), np.nan)
        row = {"episode": episode, "duration": time.perf_counter() - self._start, **logs}
        row.update({name: float(v) if np.isfinite(v) else None for name, v in zip(self._names, means)})
        for key, value in row.items():
            self.data.setdefault(key, []).append(_jsonable(value))

    def on_eval_end(self, step: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.data.setdefault(key, []).append(_jsonable(value))

    def on_train_end(self, logs: dict | None = None) -> None:
        self.save_data()

    def save_data(self) -> None:
        """Writes the collected data now."""
        write_json_atomic(self.filepath, self.data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


class ModelIntervalCheckpoint(Callback):
    """Saves the agent's weights every `interval` training steps.

    Args:
        filepath: weights path passed to `agent.save_weights`; `{step}` is replaced by the step
            count, e.g. `"ddpg_{step}.weights.h5"`.
        interval: steps between saves.
        verbose: `1` prints a line per save. Defaults to `0`.
    """

    touches_weights = False  # save_weights and save_checkpoint read the live weights themselves

    def __init__(self, filepath: str | os.PathLike, interval: int, verbose: int = 0):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.interval = check_int("interval", interval, minimum=1)
        self.verbose = verbose

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        total = self.model.step
        if total % self.interval != 0:
            return
        # Only `{step}` is filled here: a `{}` is left for `save_weights` (actor / critic).
        filepath = self.filepath.replace("{step}", str(total))
        if self.verbose:
            print(f"Step {total}: saving model to {filepath}")
        self.model.save_weights(filepath, overwrite=True)


class Checkpoint(Callback):
    """Saves a full, resumable checkpoint (`agent.save_checkpoint`) every `interval` training steps.

    The checkpoint holds the networks, optimizer states, replay memory, noise state, RNG states,
    counters and the environment's RNG state, so `agent.load_checkpoint(dirpath, env=env)`
    followed by `agent.fit(env, nb_steps=total - agent.step)` continues the run.

    Args:
        dirpath: checkpoint folder (replaced atomically at each save).
        interval: steps between checkpoints.
        verbose: `1` prints a line per save. Defaults to `0`.
    """

    touches_weights = False  # save_weights and save_checkpoint read the live weights themselves

    def __init__(self, dirpath: str | os.PathLike, interval: int, verbose: int = 0):
        super().__init__()
        self.dirpath = os.fspath(dirpath)
        self.interval = check_int("interval", interval, minimum=1)
        self.verbose = verbose

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        total = self.model.step
        if total % self.interval != 0:
            return
        self.model.save_checkpoint(self.dirpath, env=self.env)
        if self.verbose:
            print(f"Step {total}: checkpoint saved to {self.dirpath}")


class EvalCallback(Callback):
    """Evaluates the agent on a separate environment during training and keeps the best weights.

    Every `eval_interval` training steps (counted by `agent.step`, so across `fit` calls) it runs
    `nb_episodes` episodes with `agent.test`: no exploration noise, no learning, the weights
    trained so far. Training then continues where it was; the training episode in progress goes
    on with a fresh agent episode state (noise process, observation window), since the test
    episodes reset it.

    Each evaluation is reported to the other callbacks of the run through `on_eval_end(step,
    logs)`, with `logs` holding `eval_step`, `eval_mean_return`, `eval_std_return` and
    `best_mean_return`: the History returned by `fit` gets one entry per evaluation under these
    keys, and `FileLogger` and `TensorBoard` record them. With `save_best_to`, the weights are
    written by `agent.save_weights(save_best_to, overwrite=True)` (each file atomically) whenever
    the mean return beats the best so far.

    A training loop other than `fit` (offline training, for example) can call `evaluate_now(step)`
    itself, after `set_model(agent)`.

    Args:
        eval_env: the environment to evaluate on, a gymnasium environment apart from the training
            one, with the same spaces.
        eval_interval: training steps between evaluations, >= 1. Defaults to `10000`.
        nb_episodes: episodes per evaluation, >= 1. Defaults to `5`.
        save_best_to: weights path for `agent.save_weights` (for DDPG, `"best.weights.h5"` writes
            `best_actor.weights.h5` and `best_critic.weights.h5`), or `None` not to save.
            Defaults to `None`.
        verbose: `1` prints one line per evaluation, `0` nothing. Defaults to `1`.
        seed: seeds the evaluation environment's first reset at every evaluation, so each
            evaluation plays the same start states; `None` leaves it unseeded. Defaults to `None`.
        nb_max_episode_steps: truncate evaluation episodes after this many steps, or `None`.
            Defaults to `None`.

    Attributes:
        evaluations: one dict per evaluation: its logs, plus `returns` (each episode's return).
        best_mean_return: the best mean return so far (`-inf` before the first evaluation).
        best_step: the training step of the best evaluation, or `None`.

    Raises:
        TypeError: if `eval_env` is not an environment, or an argument has the wrong type.
        ValueError: if `eval_interval` or `nb_episodes` is below 1, or (when training starts) the
            evaluation environment's spaces differ from the training environment's.

    Example:

    ```python
    eval_cb = EvalCallback(gym.make("Pendulum-v1"), eval_interval=5000, nb_episodes=5,
                           save_best_to="best.weights.h5", seed=0)
    history = agent.fit(env, nb_steps=20_000, callbacks=[eval_cb])
    history.history["eval_step"], history.history["eval_mean_return"]  # [5000, ...], [...]
    agent.load_weights("best.weights.h5")  # the best evaluated weights
    ```
    """

    touches_weights = False  # its nested test run brings the models up to date

    def __init__(
        self,
        eval_env: Any,
        eval_interval: int = 10000,
        nb_episodes: int = 5,
        save_best_to: str | os.PathLike | None = None,
        verbose: int = 1,
        seed: int | None = None,
        nb_max_episode_steps: int | None = None,
    ):
        super().__init__()
        if not (callable(getattr(eval_env, "reset", None)) and callable(getattr(eval_env, "step", None))):
            raise TypeError(
                f"`eval_env` must be a gymnasium environment (with `reset` and `step`). Received: eval_env={eval_env!r}"
            )
        if save_best_to is not None and not isinstance(save_best_to, (str, os.PathLike)):
            raise TypeError(f"`save_best_to` must be a path or None. Received: save_best_to={save_best_to!r}")
        self.eval_env = eval_env
        self.eval_interval = check_int("eval_interval", eval_interval, minimum=1)
        self.nb_episodes = check_int("nb_episodes", nb_episodes, minimum=1)
        self.save_best_to = None if save_best_to is None else os.fspath(save_best_to)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.seed = None if seed is None else check_int("seed", seed)
        self.nb_max_episode_steps = (
            None if nb_max_episode_steps is None else check_int("nb_max_episode_steps", nb_max_episode_steps, minimum=1)
        )
        self.evaluations: list[dict] = []
        self.best_mean_return = -math.inf
        self.best_step: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        for name in ("action_space", "observation_space"):
            train_space, eval_space = getattr(self.env, name, None), getattr(self.eval_env, name, None)
            train_space = getattr(self.env, f"single_{name}", train_space)  # a vector env: one sub-environment's
            if train_space is not None and eval_space is not None and train_space != eval_space:
                raise ValueError(
                    f"The evaluation environment's {name} differs from the training environment's "
                    f"({train_space}). Received: eval_env.{name}={eval_space}"
                )

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        if self.model.training and self.model.step % self.eval_interval == 0:
            self.evaluate_now(self.model.step)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._callback_list = None  # a later `evaluate_now` outside a run reports to nobody

    def evaluate_now(self, step: int | None = None) -> dict:
        """Evaluates the agent now, records the result and saves the weights if they are the best.

        Args:
            step: the training step to file the result under. Defaults to `agent.step`.

        Returns:
            The evaluation logs: `eval_step`, `eval_mean_return`, `eval_std_return` and
            `best_mean_return`.

        Raises:
            ValueError: if no agent was set (pass the callback to `fit`, or call `set_model`).
        """
        agent = self.model
        if agent is None:
            raise ValueError("EvalCallback has no agent: pass it to `fit`, or call `set_model(agent)` first.")
        step = agent.step if step is None else check_int("step", step, minimum=0)
        history = agent.test(
            self.eval_env,
            nb_episodes=self.nb_episodes,
            visualize=False,
            verbose=0,
            seed=self.seed,
            nb_max_episode_steps=self.nb_max_episode_steps,
        )
        returns = [float(r) for r in history.history["episode_reward"]]
        mean, std = float(np.mean(returns)), float(np.std(returns))
        improved = mean > self.best_mean_return
        if improved:
            self.best_mean_return, self.best_step = mean, step
            if self.save_best_to is not None:
                folder = os.path.dirname(self.save_best_to)
                if folder:
                    os.makedirs(folder, exist_ok=True)
                agent.save_weights(self.save_best_to, overwrite=True)
        logs = {
            "eval_step": step,
            "eval_mean_return": mean,
            "eval_std_return": std,
            "best_mean_return": self.best_mean_return,
        }
        self.evaluations.append({**logs, "returns": returns})
        if self.verbose:
            line = f"Step {step}: eval mean return {mean:.3f} +/- {std:.3f} over {len(returns)} episodes"
            if improved:
                line += " (new best" + (f", saved to {self.save_best_to})" if self.save_best_to else ")")
            else:
                line += f" (best {self.best_mean_return:.3f} at step {self.best_step})"
            print(line)
        if self._callback_list is not None:
            self._callback_list.on_eval_end(step, logs)
        return logs


class TensorBoard(Callback):
    """Writes TensorBoard scalars of a run through `tf.summary`.

    `keras.callbacks.TensorBoard` needs a Keras training loop; this callback takes its main
    arguments (`log_dir`, `update_freq`) and writes, under `log_dir/train` for `fit`:

    - per episode, at the agent's step count: `episode_reward` and `nb_episode_steps`;
    - per update (every `update_freq` steps, or each episode): the mean of each of
      `agent.metrics_names` over the steps since the last update, NaN values left out (a metric
      with no finite value is not written), and `steps_per_second`;
    - per evaluation of an `EvalCallback` in the same run, at the evaluated step:
      `eval_mean_return`, `eval_std_return` and `best_mean_return`.

    For `test`, `episode_reward` and `nb_episode_steps` go under `log_dir/test`, at the episode
    number. Writing needs only TensorFlow; to view them, install TensorBoard (`pip install
    keras-rl3[tensorboard]`) and run `tensorboard --logdir LOG_DIR`.

    Args:
        log_dir: the folder to write the event files in. Defaults to `"logs"`.
        update_freq: `"episode"` (or Keras' `"epoch"`) to write the metrics once per episode,
            or an integer `N` >= 1 to write them every `N` training steps (`"batch"` means 1).
            Defaults to `"episode"`.
        write_steps_per_second: whether to write `steps_per_second` with each update. Defaults
            to `True`.

    Raises:
        TypeError: if `log_dir` is not a path.
        ValueError: if `update_freq` is neither `"episode"`, `"epoch"`, `"batch"` nor an integer >= 1.

    Example:

    ```python
    agent.fit(env, nb_steps=20_000, callbacks=[TensorBoard(log_dir="logs/ddpg", update_freq=1000)])
    # then: tensorboard --logdir logs/ddpg
    ```
    """

    touches_weights = False  # it only logs

    def __init__(
        self,
        log_dir: str | os.PathLike = "logs",
        update_freq: str | int = "episode",
        write_steps_per_second: bool = True,
    ):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"`log_dir` must be a path. Received: log_dir={log_dir!r}")
        self.log_dir = os.fspath(log_dir)
        if update_freq in ("episode", "epoch"):
            self.update_freq: str | int = "episode"
        elif update_freq == "batch":
            self.update_freq = 1
        elif isinstance(update_freq, str):
            raise ValueError(
                "`update_freq` must be 'episode', 'epoch', 'batch' or an integer >= 1. "
                f"Received: update_freq={update_freq!r}"
            )
        else:
            self.update_freq = check_int("update_freq", update_freq, minimum=1)
        self.write_steps_per_second = bool(write_steps_per_second)
        self._writer: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        import tensorflow as tf  # only where summaries are written
        from tensorflow.core.framework import summary_pb2

        # What `tf.summary.scalar` writes, without needing the tensorboard package to write it.
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        ).SerializeToString()
        self._training = bool(self.model.training)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train" if self._training else "test"))
        self._names = list(self.model.metrics_names)
        self._start_update()

    def _start_update(self) -> None:
        self._metrics: list = []
        self._update_start = time.perf_counter()

    def _scalars(self, values: dict, step: int) -> None:
        import tensorflow as tf

        with self._writer.as_default():
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=self._metadata)

    def _write_update(self) -> None:
        steps = len(self._metrics)
        if not steps:
            return
        values = {}
        if self._names:
            metrics = np.asarray(self._metrics, dtype=np.float64).reshape(steps, -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns during warm-up
                means = np.nanmean(metrics, axis=0)
            values.update({name: float(m) for name, m in zip(self._names, means) if np.isfinite(m)})
        if self.write_steps_per_second:
            values["steps_per_second"] = steps / max(time.perf_counter() - self._update_start, 1e-9)
        self._scalars(values, self.model.step)
        self._start_update()

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        if not self._training:
            return
        self._metrics.append(logs["metrics"])
        if self.update_freq != "episode" and self.model.step % self.update_freq == 0:
            self._write_update()

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        at = self.model.step if self._training else episode
        self._scalars(
            {"episode_reward": float(logs["episode_reward"]), "nb_episode_steps": int(logs["nb_episode_steps"])}, at
        )
        if self._training and self.update_freq == "episode":
            self._write_update()

    def on_eval_end(self, step: int, logs: dict | None = None) -> None:
        self._scalars({k: float(v) for k, v in (logs or {}).items() if k != "eval_step"}, step)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._training and self.update_freq != "episode":
            self._write_update()  # the steps since the last update
        self._writer.flush()
        self._writer.close()
        self._writer = None


class Visualizer(Callback):
    """Shows the environment while the agent runs.

    gymnasium renders through the `render_mode` the environment was made with: `"human"` opens a
    window updated at every step; `"rgb_array"` frames are collected in `self.frames`. An
    environment made without a `render_mode` gets a warning and is not shown.
    """

    touches_weights = False  # it only logs

    def __init__(self) -> None:
        super().__init__()
        self.frames: list = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        mode = getattr(self.env, "render_mode", None)
        self._collect = mode == "rgb_array"
        if mode is None:
            warn_at_caller(
                "visualize=True, but the environment was made without a render_mode, so nothing is shown. "
                "Create it with gymnasium.make(env_id, render_mode='human') to watch it."
            )

    def on_action_end(self, action: Any, logs: dict | None = None) -> None:
        if self._collect:
            self.frames.append(self.env.render())


class WandbLogger(Callback):
    """Sends each episode's statistics to Weights & Biases (keras-rl's `WandbLogger`).

    The run starts when the logger is created (`wandb.init(**kwargs)`); at the start of training
    the run's config records the run parameters, the agent's `get_config()` and the environment's
    id. At each episode's end one `log` call sends: `step`, `episode`, `duration`,
    `episode_steps`, `sps`, `episode_reward`, the mean / min / max of the rewards, actions and
    observations (numeric ones) of the episode, and the mean of each agent metric (NaN where
    none was computed). `EvalCallback` results are logged as they come. The run is left open at
    the end of training; call `logger.run.finish()` when done. Use wandb's offline mode
    (`WANDB_MODE=offline` or `mode="offline"`) to log without a network.

    Args:
        **kwargs: passed to `wandb.init`; `project` defaults to `"keras-rl"`.

    Raises:
        ImportError: if wandb is not installed (`pip install -e ".[wandb]"`).

    Example:

    ```python
    agent.fit(env, nb_steps=50_000, callbacks=[WandbLogger(project="pendulum", mode="offline")])
    ```
    """

    touches_weights = False  # it only logs

    def __init__(self, **kwargs: Any):
        super().__init__()
        try:
            import wandb
        except ImportError as e:
            raise ImportError('WandbLogger needs wandb, which is not installed: pip install -e ".[wandb]"') from e
        self.run = wandb.init(**{"project": "keras-rl", **kwargs})
        self.step = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._names = list(self.model.metrics_names)
        get_config = getattr(self.model, "get_config", None)
        try:
            agent_config = get_config() if callable(get_config) else {}
        except Exception:  # noqa: BLE001 - a config that cannot be made is left out, training goes on
            agent_config = {}
        spec = getattr(self.env, "spec", None)
        self.run.config.update(
            {
                "params": dict(self.params or {}),
                "agent": {"class_name": type(self.model).__name__, "config": _plain(agent_config)},
                "env": getattr(spec, "id", None) or type(self.env).__name__,
            },
            allow_val_change=True,
        )

    def on_episode_begin(self, episode: int, logs: dict | None = None) -> None:
        self._episode_start = time.perf_counter()
        self._observations: list = []
        self._rewards: list = []
        self._actions: list = []
        self._metrics: list = []

    def on_step_end(self, step: int, logs: dict | None = None) -> None:
        self._observations.append(logs["observation"])
        self._rewards.append(logs["reward"])
        self._actions.append(logs["action"])
        self._metrics.append(logs["metrics"])
        self.step += 1

    def on_episode_end(self, episode: int, logs: dict | None = None) -> None:
        duration = time.perf_counter() - self._episode_start
        steps = len(self._rewards)
        values: dict[str, Any] = {
            "step": self.step,
            "episode": episode + 1,
            "duration": duration,
            "episode_steps": steps,
            "sps": steps / max(duration, 1e-9),
            "episode_reward": float(logs["episode_reward"]) if logs else float(np.sum(self._rewards)),
        }
        for name, items in (("reward", self._rewards), ("action", self._actions), ("obs", self._observations)):
            try:
                arr = np.asarray(items, dtype=np.float64)
            except (TypeError, ValueError):  # dict or ragged observations: no summary
                continue
            if arr.size:
                values.update({f"{name}_mean": arr.mean(), f"{name}_min": arr.min(), f"{name}_max": arr.max()})
        metrics = np.full((len(self._metrics), len(self._names)), np.nan)
        for row, step_metrics in zip(metrics, self._metrics):
            got = np.asarray(step_metrics, dtype=np.float64).reshape(-1)[: len(self._names)]
            row[: got.size] = got
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns during warm-up
            for k, name in enumerate(self._names):
                values[name] = float(np.nanmean(metrics[:, k])) if len(metrics) else math.nan
        self.run.log({k: float(v) if isinstance(v, (np.floating, np.integer)) else v for k, v in values.items()})

    def on_eval_end(self, step: int, logs: dict | None = None) -> None:
        self.run.log({k: float(v) for k, v in (logs or {}).items()})


def _plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays turned into Python numbers and lists (for JSON configs)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value
