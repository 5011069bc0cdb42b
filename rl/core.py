"""The `Agent` base class, with the one episode loop that `fit` and `test` share, and `Processor`."""

from __future__ import annotations

import math
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from rl.callbacks import CallbackList, TestLogger, TrainEpisodeLogger, TrainIntervalLogger, Visualizer
from rl.util import check_int, read_json, write_json_atomic

__all__ = ["Agent", "Processor"]

_CHECKPOINT_INDEX = "checkpoint.json"
_CHECKPOINT_FORMAT = 1


class Processor:
    """Sits between the agent and its environment; override the hooks you need.

    The loop calls `process_observation` on every observation, `process_reward` on every reward,
    `process_action` on the agent's action before `env.step`, and agents call
    `process_state_batch` on every batch of states before it reaches a network. Use it to turn
    dict observations into arrays (and back into a list of arrays for a multi-input model), to
    scale rewards, or to map actions.

    Example:

    ```python
    class DictProcessor(Processor):
        def process_observation(self, observation):  # {"pos": (2,), "vel": (1,)} -> (3,)
            return np.concatenate([observation["pos"], observation["vel"]])

        def process_state_batch(self, batch):  # (B, 1, 3) -> [pos (B, 2), vel (B, 1)]
            return [batch[:, 0, :2], batch[:, 0, 2:]]
    ```
    """

    def process_step(self, observation: Any, reward: float, done: bool, info: dict) -> tuple:
        """Processes one `env.step` result; `done` is gymnasium's `terminated`."""
        return (
            self.process_observation(observation),
            self.process_reward(reward),
            done,
            self.process_info(info),
        )

    def process_observation(self, observation: Any) -> Any:
        """Returns the observation the agent sees. Defaults to the observation itself."""
        return observation

    def process_reward(self, reward: float) -> float:
        """Returns the reward the agent learns from. Defaults to the reward itself."""
        return reward

    def process_info(self, info: dict) -> dict:
        """Returns the info dict passed to callbacks. Defaults to the dict itself."""
        return info

    def process_action(self, action: Any) -> Any:
        """Returns the action sent to `env.step`. Defaults to the action itself."""
        return action

    def process_state_batch(self, batch: np.ndarray) -> Any:
        """Returns a batch of states `(B, window_length) + obs_shape` as the networks' input(s)."""
        return batch

    @property
    def metrics(self) -> list[float]:
        """Extra metrics reported with the agent's. Defaults to none."""
        return []

    @property
    def metrics_names(self) -> list[str]:
        """Names of `metrics`."""
        return []


class Agent:
    """Base class of all agents: `compile`, `fit`, `test`, and the loop they share.

    A subclass implements `forward(observation) -> action`, `backward(reward, terminal, ...)
    -> metrics`, `compile`, `layers`, `metrics_names`, `save_weights` and `load_weights`; the
    loop does the rest (resets, action repetition, time limits, callbacks, logging, Ctrl-C).
    See the guide "Writing a new agent".

    Args:
        processor: a `Processor` between the agent and the environment. Defaults to `None`.

    Attributes:
        step: environment steps trained so far, counted across `fit` calls (a Python int).
        episode: training episodes started so far.
        training: `True` inside `fit`, `False` otherwise.
        compiled: whether `compile` has been called.
    """

    def __init__(self, processor: Processor | None = None):
        if processor is not None and not isinstance(processor, Processor):
            raise TypeError(f"`processor` must be an `rl.core.Processor`. Received: processor={processor!r}")
        self.processor = processor
        self.training = False
        self.step = 0
        self.episode = 0
        self.compiled = False
        self.stop_training = False
        self.history: keras.callbacks.History | None = None
        self._rng = np.random.default_rng()
        self._running = False  # whether a `fit`/`test` loop is in progress (a run can start inside another)

    # ------------------------------------------------------------ to implement
    def get_config(self) -> dict[str, Any]:
        """Returns the agent's configuration."""
        return {}

    def compile(self, optimizer: Any, metrics: list | None = None) -> None:
        """Prepares the agent for training."""
        raise NotImplementedError

    def forward(self, observation: Any) -> Any:
        """Returns the action to take for `observation` (explores while `self.training`)."""
        raise NotImplementedError

    def backward(
        self, reward: float, terminal: bool, truncated: bool = False, next_observation: Any = None
    ) -> list[float]:
        """Learns from the last step: called after each `env.step` with its outcome.

        Args:
            reward: the step's reward (summed over repeated actions).
            terminal: whether the episode *terminated*: do not bootstrap from `next_observation`.
            truncated: whether the episode was cut by a time limit: it ends, but the value of
                `next_observation` still counts.
            next_observation: the (processed) observation after the step.

        Returns:
            The metrics of this step, ordered as `metrics_names` (NaN where not computed).
        """
        raise NotImplementedError

    def save_weights(self, filepath: str, overwrite: bool = False) -> None:
        """Saves the agent's networks."""
        raise NotImplementedError

    def load_weights(self, filepath: str) -> None:
        """Loads what `save_weights` wrote."""
        raise NotImplementedError

    @property
    def layers(self) -> list:
        """The agent's Keras models."""
        raise NotImplementedError

    @property
    def metrics_names(self) -> list[str]:
        """Names of the values `backward` returns."""
        return []

    def reset_states(self) -> None:
        """Called at the start of every episode: resets recurrent state and exploration noise."""

    def _check_env(self, env: Any) -> None:
        """Called at the start of `fit`/`test`: raise here if the environment does not fit the agent."""

    def _end_episode(self) -> None:
        """Called when an episode is abandoned without ending (the run stopped in its middle)."""

    def _on_run_begin(self, training: bool) -> None:
        """Called at the start of `fit` (training=True) or `test`, after the environment checks."""

    def _on_run_end(self, training: bool) -> None:
        """Called when `fit` or `test` stops, however it stops (also on errors and Ctrl-C)."""

    # ----------------------------------------------------------------- running
    def fit(
        self,
        env: Any,
        nb_steps: int,
        action_repetition: int = 1,
        callbacks: list | None = None,
        verbose: int = 1,
        visualize: bool = False,
        nb_max_start_steps: int = 0,
        start_step_policy: Callable[[Any], Any] | None = None,
        log_interval: int = 10000,
        nb_max_episode_steps: int | None = None,
        seed: int | None = None,
    ) -> keras.callbacks.History:
        """Trains the agent for `nb_steps` environment steps.

        `agent.step` keeps counting across calls, so warm-up is not repeated by a second `fit`.
        Ctrl-C stops training cleanly and still returns the History.

        Args:
            env: a gymnasium environment (`reset()` returns `(obs, info)`, `step()` a 5-tuple).
            nb_steps: number of agent steps to train for, >= 1.
            action_repetition: times each action is repeated in the environment. Defaults to `1`.
            callbacks: `rl.callbacks.Callback`s or plain Keras callbacks. Defaults to `None`.
            verbose: `0` silent, `1` progress bar per `log_interval` steps, `2` one line per
                episode. Defaults to `1`.
            visualize: render the environment (see `Visualizer`). Defaults to `False`.
            nb_max_start_steps: at each episode start, take a random number of steps in
                `[0, nb_max_start_steps)` with `start_step_policy` before the agent acts.
                Defaults to `0`.
            start_step_policy: `policy(observation) -> action` for start steps, or `None` to
                sample the action space. Defaults to `None`.
            log_interval: steps per progress interval with `verbose=1`. Defaults to `10000`.
            nb_max_episode_steps: end (truncate) episodes after this many steps, or `None`.
                The last transition still bootstraps. Defaults to `None`.
            seed: seeds the first `env.reset`, the action space and the start-step draws, or
                `None`. Defaults to `None`.

        Returns:
            A `keras.callbacks.History` whose `history` holds per-episode `episode_reward`,
            `nb_episode_steps` and `nb_steps`.

        Raises:
            ValueError: if the agent is not compiled or an argument is invalid.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `fit()`.")
        nb_steps = check_int("nb_steps", nb_steps, minimum=1)
        log_interval = check_int("log_interval", log_interval, minimum=1)
        logger: list = []
        if verbose == 1:
            logger = [TrainIntervalLogger(interval=log_interval)]
        elif verbose > 1:
            logger = [TrainEpisodeLogger()]
        return self._run(
            env,
            training=True,
            nb_steps=nb_steps,
            nb_episodes=None,
            action_repetition=action_repetition,
            callbacks=logger + list(callbacks or []),
            visualize=visualize,
            nb_max_start_steps=nb_max_start_steps,
            start_step_policy=start_step_policy,
            nb_max_episode_steps=nb_max_episode_steps,
            seed=seed,
        )

    def test(
        self,
        env: Any,
        nb_episodes: int = 1,
        action_repetition: int = 1,
        callbacks: list | None = None,
        visualize: bool = True,
        nb_max_episode_steps: int | None = None,
        nb_max_start_steps: int = 0,
        start_step_policy: Callable[[Any], Any] | None = None,
        verbose: int = 1,
        seed: int | None = None,
    ) -> keras.callbacks.History:
        """Runs `nb_episodes` episodes without exploration noise and without learning.

        Args:
            env: a gymnasium environment.
            nb_episodes: number of episodes, >= 1. Defaults to `1`.
            action_repetition: times each action is repeated. Defaults to `1`.
            callbacks: extra callbacks. Defaults to `None`.
            visualize: render the environment (needs a `render_mode`; see `Visualizer`).
                Defaults to `True`.
            nb_max_episode_steps: truncate episodes after this many steps. Defaults to `None`.
            nb_max_start_steps: random start steps per episode, as in `fit`. Defaults to `0`.
            start_step_policy: policy for start steps. Defaults to `None`.
            verbose: `1` prints each episode's return. Defaults to `1`.
            seed: seeds the first `env.reset`. Defaults to `None`.

        Returns:
            A `keras.callbacks.History` with per-episode `episode_reward` and `nb_episode_steps`.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `test()`.")
        nb_episodes = check_int("nb_episodes", nb_episodes, minimum=1)
        logger = [TestLogger()] if verbose >= 1 else []
        return self._run(
            env,
            training=False,
            nb_steps=None,
            nb_episodes=nb_episodes,
            action_repetition=action_repetition,
            callbacks=logger + list(callbacks or []),
            visualize=visualize,
            nb_max_start_steps=nb_max_start_steps,
            start_step_policy=start_step_policy,
            nb_max_episode_steps=nb_max_episode_steps,
            seed=seed,
        )

    def _run(
        self,
        env: Any,
        *,
        training: bool,
        nb_steps: int | None,
        nb_episodes: int | None,
        action_repetition: int,
        callbacks: list,
        visualize: bool,
        nb_max_start_steps: int,
        start_step_policy: Callable[[Any], Any] | None,
        nb_max_episode_steps: int | None,
        seed: int | None,
    ) -> keras.callbacks.History:
        """The one episode loop behind `fit` (training=True) and `test` (training=False)."""
        action_repetition = check_int("action_repetition", action_repetition, minimum=1)
        nb_max_start_steps = check_int("nb_max_start_steps", nb_max_start_steps, minimum=0)
        if nb_max_episode_steps is not None:
            nb_max_episode_steps = check_int("nb_max_episode_steps", nb_max_episode_steps, minimum=1)
        if start_step_policy is not None and not callable(start_step_policy):
            raise TypeError(f"`start_step_policy` must be callable. Received: start_step_policy={start_step_policy!r}")
        if not (hasattr(env, "reset") and hasattr(env, "step")):
            raise TypeError(f"`env` must be a gymnasium environment. Received: env={env!r}")
        self._check_env(env)

        history = keras.callbacks.History()
        if visualize:
            callbacks = callbacks + [Visualizer()]
        cbs = CallbackList(callbacks + [history])
        cbs.set_model(self)
        cbs.set_env(env)
        if training:
            cbs.set_params({"nb_steps": nb_steps})
        else:
            cbs.set_params({"nb_episodes": nb_episodes})
        if seed is not None:
            if training:
                self._rng = np.random.default_rng(seed)
            if hasattr(env, "action_space") and hasattr(env.action_space, "seed"):
                env.action_space.seed(seed)
        # A run may start inside another (`agent.test` from a callback during `fit`, e.g. EvalCallback):
        # it keeps the outer run's state and hands it back at its end (see the `finally` below).
        nested, outer = self._running, (self.training, self.stop_training, getattr(self, "_run_rng", None))
        # `test` draws its start steps from its own generator, leaving training's untouched.
        self._run_rng = self._rng if training else np.random.default_rng(seed)
        reset_seed = seed

        processor = self.processor
        low = high = None
        space = getattr(env, "action_space", None)
        if space is not None and getattr(space, "low", None) is not None and getattr(space, "high", None) is not None:
            if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
                low, high = space.low, space.high
        step_end_logs = cbs.wants("on_step_end")
        want_action_hooks = cbs.wants("on_action_begin") or cbs.wants("on_action_end")
        env_step = env.step

        self._on_run_begin(training)
        self._running = True
        self.training = training
        self.stop_training = False
        end_step = self.step + nb_steps if training else None
        episode = self.episode if training else 0
        episodes_done = 0
        observation: Any = None
        episode_running = False
        episode_step = 0
        episode_reward = 0.0
        did_abort = False
        cbs.on_train_begin()
        try:
            while True:
                if training:
                    if self.step >= end_step:
                        break
                elif episodes_done >= nb_episodes:
                    break
                if self.stop_training:
                    break
                if not episode_running:
                    cbs.on_episode_begin(episode)
                    episode_step = 0
                    episode_reward = 0.0
                    self.reset_states()
                    observation = self._reset_env(env, reset_seed)
                    reset_seed = None
                    if nb_max_start_steps:
                        observation = self._start_steps(
                            env, observation, nb_max_start_steps, start_step_policy, low, high
                        )
                    episode_running = True
                    if training:
                        self.episode += 1

                cbs.on_step_begin(episode_step)
                action = self.forward(observation)
                env_action = processor.process_action(action) if processor is not None else action
                if low is not None:
                    env_action = np.minimum(np.maximum(env_action, low), high)
                reward = 0.0
                terminated = truncated = False
                info: dict = {}
                for _ in range(action_repetition):
                    if want_action_hooks:
                        cbs.on_action_begin(env_action)
                    next_observation, r, terminated, truncated, info = self._env_step(env_step, env_action)
                    if processor is not None:
                        next_observation, r, terminated, info = processor.process_step(
                            next_observation, r, terminated, info
                        )
                    if want_action_hooks:
                        cbs.on_action_end(env_action)
                    reward += r
                    if terminated or truncated:
                        break
                if not math.isfinite(reward):
                    raise ValueError(
                        f"The environment returned a non-finite reward at step {episode_step} of episode "
                        f"{episode} (agent step {self.step}). Received: reward={reward!r}"
                    )
                _check_finite_observation(next_observation, episode, episode_step)
                episode_step += 1
                if nb_max_episode_steps is not None and episode_step >= nb_max_episode_steps and not terminated:
                    truncated = True
                metrics = self.backward(
                    reward, bool(terminated), truncated=bool(truncated), next_observation=next_observation
                )
                episode_reward += reward
                if training:
                    self.step += 1
                if step_end_logs:
                    cbs.on_step_end(
                        episode_step - 1,
                        {
                            "action": action,
                            "observation": next_observation,
                            "reward": reward,
                            "metrics": metrics,
                            "episode": episode,
                            "info": info,
                        },
                    )
                observation = next_observation
                if terminated or truncated:
                    episode_running = False
                    cbs.on_episode_end(
                        episode,
                        {
                            "episode_reward": float(episode_reward),
                            "nb_episode_steps": episode_step,
                            "nb_steps": self.step if training else episode_step,
                        },
                    )
                    episode += 1
                    episodes_done += 1
        except KeyboardInterrupt:
            did_abort = True
        finally:
            if episode_running:
                self._end_episode()
            self.training = False
            self._on_run_end(training)
            self._running = nested
            if nested:  # back to the outer run: its mode, stop flag (Ctrl-C stops it too) and start-step RNG,
                self.training, self.stop_training, self._run_rng = outer[0], outer[1] or did_abort, outer[2]
                self._on_run_begin(outer[0])  # its run state (e.g. DDPG's training weights, now current),
                self.reset_states()  # and a fresh episode state: the nested episodes reset it
        cbs.on_train_end({"did_abort": did_abort})
        self.history = history
        return history

    def _reset_env(self, env: Any, seed: int | None) -> Any:
        result = env.reset(seed=seed) if seed is not None else env.reset()
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise TypeError(
                "`env.reset()` must return `(observation, info)` as gymnasium environments do; this looks like an "
                f"old gym environment. Received: env.reset() -> {type(result).__name__}"
            )
        observation = result[0]
        if self.processor is not None:
            observation = self.processor.process_observation(observation)
        _check_finite_observation(observation, self.episode, 0)
        return observation

    @staticmethod
    def _env_step(env_step: Callable, action: Any) -> tuple:
        result = env_step(action)
        if not (isinstance(result, tuple) and len(result) == 5):
            n = len(result) if isinstance(result, tuple) else type(result).__name__
            raise TypeError(
                "`env.step()` must return `(observation, reward, terminated, truncated, info)` as gymnasium "
                f"environments do (old gym environments return 4 values). Received: a result of length {n}"
            )
        return result

    def _start_steps(
        self,
        env: Any,
        observation: Any,
        nb_max_start_steps: int,
        policy: Callable[[Any], Any] | None,
        low: Any,
        high: Any,
    ) -> Any:
        for _ in range(int(self._run_rng.integers(0, nb_max_start_steps))):
            action = env.action_space.sample() if policy is None else policy(observation)
            if self.processor is not None:
                action = self.processor.process_action(action)
            if low is not None:
                action = np.clip(action, low, high)
            observation, _, terminated, truncated, _ = self._env_step(env.step, action)
            if self.processor is not None:
                observation = self.processor.process_observation(observation)
            if terminated or truncated:
                warnings.warn(
                    "The environment ended during the random start steps; consider a smaller nb_max_start_steps.",
                    stacklevel=3,
                )
                observation = self._reset_env(env, None)
                break
        return observation

    # ------------------------------------------------------------- checkpoints
    def save_checkpoint(self, dirpath: str | os.PathLike, env: Any = None) -> str:
        """Saves everything needed to continue training into the folder `dirpath`.

        The folder keeps one complete checkpoint: a new one is written beside the old in a
        sub-folder, then `checkpoint.json` is switched to it atomically and the old is removed, so
        a crash at any moment leaves a loadable checkpoint.

        Args:
            dirpath: checkpoint folder (created if needed).
            env: the training environment, whose RNG states are saved with the agent's. Defaults
                to `None`.

        Returns:
            The path of the sub-folder written.
        """
        dirpath = os.fspath(dirpath)
        os.makedirs(dirpath, exist_ok=True)
        name = f"step-{self.step:012d}-{uuid.uuid4().hex[:8]}"
        tmp = os.path.join(dirpath, f".{name}.tmp")
        final = os.path.join(dirpath, name)
        os.makedirs(tmp)
        try:
            state = {
                "format": _CHECKPOINT_FORMAT,
                "agent": type(self).__name__,
                "step": self.step,
                "episode": self.episode,
                "rng": self._rng.bit_generator.state,
                "agent_state": self._save_checkpoint_files(tmp),
            }
            if env is not None:
                state["env_rng"] = _env_rng_state(env)
            write_json_atomic(os.path.join(tmp, "state.json"), state)
            for entry in os.listdir(tmp):
                with open(os.path.join(tmp, entry), "rb+") as f:
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(dirpath)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_json_atomic(os.path.join(dirpath, _CHECKPOINT_INDEX), {"latest": name})
        for entry in os.listdir(dirpath):
            path = os.path.join(dirpath, entry)
            if entry != name and os.path.isdir(path) and (entry.startswith("step-") or entry.endswith(".tmp")):
                shutil.rmtree(path, ignore_errors=True)
        return final

    def load_checkpoint(self, dirpath: str | os.PathLike, env: Any = None) -> None:
        """Restores a checkpoint written by `save_checkpoint` (the agent must be built and compiled
        the same way). Pass the environment to restore its RNG states as well.

        Raises:
            ValueError: if the folder holds no checkpoint, a file is missing or damaged, or the
                checkpoint was written by another kind of agent or architecture.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `load_checkpoint()`.")
        dirpath = os.fspath(dirpath)
        index = read_json(os.path.join(dirpath, _CHECKPOINT_INDEX), what="checkpoint index")
        if not isinstance(index, dict) or "latest" not in index:
            raise ValueError(f"The checkpoint index is invalid. Received: dirpath={dirpath!r}")
        folder = os.path.join(dirpath, index["latest"])
        state = read_json(os.path.join(folder, "state.json"), what="checkpoint state file")
        if state.get("format") != _CHECKPOINT_FORMAT or state.get("agent") != type(self).__name__:
            raise ValueError(
                f"The checkpoint was written by {state.get('agent')!r} (format {state.get('format')}); this agent is "
                f"{type(self).__name__!r}. Received: dirpath={dirpath!r}"
            )
        self._load_checkpoint_files(folder, state["agent_state"])
        self.step = int(state["step"])
        self.episode = int(state["episode"])
        self._rng.bit_generator.state = state["rng"]
        if env is not None and "env_rng" in state:
            _set_env_rng_state(env, state["env_rng"])

    def _save_checkpoint_files(self, folder: str) -> dict:
        """Writes the agent's own files into `folder`; returns JSON-compatible extra state."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")

    def _load_checkpoint_files(self, folder: str, state: dict) -> None:
        """Restores what `_save_checkpoint_files` wrote."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")


def _check_finite_observation(observation: Any, episode: int, step: int) -> None:
    if isinstance(observation, np.ndarray) and observation.dtype.kind == "f" and not np.isfinite(observation).all():
        raise ValueError(
            f"The environment returned an observation with NaN or inf at step {step} of episode {episode}. "
            f"Received: observation={observation!r}"
        )


def _env_rng_state(env: Any) -> dict:
    state: dict = {}
    rng = getattr(env, "np_random", None)
    if isinstance(rng, np.random.Generator):
        state["env"] = rng.bit_generator.state
    space_rng = getattr(getattr(env, "action_space", None), "np_random", None)
    if isinstance(space_rng, np.random.Generator):
        state["action_space"] = space_rng.bit_generator.state
    return state


def _set_env_rng_state(env: Any, state: dict) -> None:
    if "env" in state:
        env.np_random.bit_generator.state = state["env"]
    if "action_space" in state:
        env.action_space.np_random.bit_generator.state = state["action_space"]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
