"""The `Agent` base class, with the one episode loop that `fit` and `test` share, and `Processor`."""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from rl.callbacks import CallbackList, TestLogger, TrainEpisodeLogger, TrainIntervalLogger, Visualizer
from rl.util import check_int, parse_json, read_json, sha256_file, write_json_atomic

__all__ = ["Agent", "Processor"]

_CHECKPOINT_INDEX = "checkpoint.json"
_CHECKPOINT_STATE = "state.json"
# 2: `state.json` lists the SHA-256 of every file, `checkpoint.json` holds the SHA-256 of `state.json`.
_CHECKPOINT_FORMAT = 2
_CHECKPOINT_NAME = re.compile(r"step-[0-9]{12}-[0-9a-f]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    Optional hooks, part of the subclass API: `reset_states`, `_check_env`, `_on_run_begin`,
    `_on_run_end`, keras-rl's `_on_train_begin` and `_on_test_begin`, `_end_episode`,
    `_nonfinite_weights`, and for checkpoints `_save_checkpoint_files`, `_read_checkpoint_files`
    and `_apply_checkpoint_files` (or the one-phase `_load_checkpoint_files`). See the guide
    "Writing a new agent". An agent written for keras-rl, with `backward(self, reward, terminal)`,
    runs as keras-rl ran it: `terminal` is true when the episode ended (a time limit included), and
    after each episode one more `forward(final_observation)` and `backward(0.0, terminal=False)`.
    A processor with `get_state` / `set_state` is saved in checkpoints.

    The loop copies every observation it hands to `forward` and `backward` (once, after the
    processor), so an agent may keep them; it refuses non-finite actions before they reach the
    environment, and observations or rewards that are `None`, not finite, or of the wrong shape.

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

    def _plan_run(self, end_step: int) -> None:
        """Called before a training run starts, with the value of `step` at which it will end.

        For choices that depend on how long the agent trains (`DeepAgent`: XLA or not).
        """

    def _on_run_begin(self, training: bool) -> None:
        """Called at the start of `fit` (training=True) or `test`, after the environment checks."""

    def _on_run_end(self, training: bool) -> None:
        """Called when `fit` or `test` stops, however it stops (also on errors and Ctrl-C)."""

    def _on_train_begin(self) -> None:
        """keras-rl's hook: called when `fit` starts, after the callbacks' `on_train_begin`."""

    def _on_test_begin(self) -> None:
        """keras-rl's hook: called when `test` starts, after the callbacks' `on_train_begin`."""

    def _nonfinite_weights(self) -> list[str]:
        """Names the networks whose weights hold NaN or inf, to explain a non-finite action.

        Called only when `forward` returned a non-finite action, after the run has ended (so after
        `_on_run_end`: weights kept elsewhere during a run are back in the models). The names are
        appended to the error. Defaults to the names of the `layers` models with a non-finite
        weight; override it to name networks by role or to look where your agent keeps them.
        """
        try:
            models = list(self.layers)
        except NotImplementedError:
            return []
        names = []
        for model in models:
            get_weights = getattr(model, "get_weights", None)
            if get_weights is None:
                continue
            for w in get_weights():
                w = np.asarray(w)
                if w.dtype.kind in "fc" and not np.isfinite(w).all():
                    names.append(str(getattr(model, "name", type(model).__name__)))
                    break
        return names

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
        updates_per_vector_step: int | None = None,
    ) -> keras.callbacks.History:
        """Trains the agent for `nb_steps` environment steps.

        `agent.step` keeps counting across calls, so warm-up is not repeated by a second `fit`.
        Ctrl-C stops training cleanly and still returns the History.

        Args:
            env: a gymnasium environment (`reset()` returns `(obs, info)`, `step()` a 5-tuple),
                or a `gymnasium.vector.VectorEnv` (see `rl.vector`: one compiled call acts for
                all sub-environments, and `nb_steps` counts the steps of all of them).
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
            updates_per_vector_step: with a vector env, the gradient steps per vector step when
                training is due, or `None` for one training step per environment step (N per
                vector step of N sub-environments, as SB3's `gradient_steps=-1`). Defaults to `None`.

        Returns:
            A `keras.callbacks.History` whose `history` holds per-episode `episode_reward`,
            `nb_episode_steps` and `nb_steps` (and `env_index` with a vector env).

        Raises:
            ValueError: if the agent is not compiled or an argument is invalid; if `forward`
                returns a non-finite action (the message names the networks with non-finite
                weights, see `_nonfinite_weights`); if an observation holds NaN or inf or changes
                shape during the run, or a reward is not finite or not a scalar.
            TypeError: if the environment does not follow gymnasium's API, or returns (or the
                processor makes) a `None` observation or a reward that is not a number.
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
            updates_per_vector_step=updates_per_vector_step,
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
            env: a gymnasium environment, or a `gymnasium.vector.VectorEnv` (see `rl.vector`:
                `nb_episodes` counts the episodes all sub-environments finish).
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

        Raises:
            ValueError, TypeError: as `fit` does.
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
        updates_per_vector_step: int | None = None,
    ) -> keras.callbacks.History:
        """The one episode loop behind `fit` (training=True) and `test` (training=False)."""
        from rl.vector import is_vector_env, run_vector  # imported here: rl.vector builds on this module

        if updates_per_vector_step is not None or is_vector_env(env):
            return run_vector(
                self,
                env,
                training=training,
                nb_steps=nb_steps,
                nb_episodes=nb_episodes,
                action_repetition=action_repetition,
                callbacks=callbacks,
                nb_max_start_steps=nb_max_start_steps,
                nb_max_episode_steps=nb_max_episode_steps,
                seed=seed,
                updates_per_vector_step=updates_per_vector_step,
            )
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
        # Checks and copies every observation kept beyond its env call, against the run's first one.
        keep = _ObservationGuard(
            "the environment" if processor is None else f"{type(processor).__name__}.process_observation"
        )
        reward_source = "`env.step()`" if processor is None else f"`{type(processor).__name__}.process_step()`"

        if training:
            self._plan_run(self.step + nb_steps)
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
        bad_action: _NonFiniteAction | None = None
        cbs.on_train_begin()
        # An agent written for keras-rl has `backward(reward, terminal)`: it gets keras-rl's calls.
        keras_rl_backward = not _takes_step_outcome(self.backward)
        try:
            self._on_train_begin() if training else self._on_test_begin()
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
                    observation = self._reset_env(env, reset_seed, keep, episode)
                    reset_seed = None
                    if nb_max_start_steps:
                        observation = self._start_steps(
                            env, observation, nb_max_start_steps, start_step_policy, low, high, keep, episode
                        )
                    episode_running = True
                    if training:
                        self.episode += 1

                cbs.on_step_begin(episode_step)
                action = self.forward(observation)
                if type(action) is np.ndarray:
                    if action.dtype.kind in "fc" and not _finite_array(action):
                        raise _NonFiniteAction(action, episode, episode_step, self.step)
                elif not _all_finite(action):
                    raise _NonFiniteAction(action, episode, episode_step, self.step)
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
                    try:
                        reward += r
                    except TypeError:
                        raise _bad_reward(r, reward_source, episode, episode_step, self.step) from None
                    if terminated or truncated:
                        break
                if not isinstance(reward, float):  # numpy float32, a 0-d or (1,) array, ...
                    reward = _as_reward(reward, reward_source, episode, episode_step, self.step)
                if not math.isfinite(reward):
                    raise ValueError(
                        f"The environment returned a non-finite reward at step {episode_step} of episode "
                        f"{episode} (agent step {self.step}). Received: reward={reward!r}"
                    )
                next_observation = keep(next_observation, episode, episode_step)
                episode_step += 1
                if nb_max_episode_steps is not None and episode_step >= nb_max_episode_steps and not terminated:
                    truncated = True
                if keras_rl_backward:  # keras-rl's `terminal`: the episode ended (a time limit too)
                    metrics = self.backward(reward, terminal=bool(terminated or truncated))
                else:
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
                    if keras_rl_backward:
                        # keras-rl shows the final observation in one more forward/backward (action ignored),
                        # which is how its memories store it.
                        self.forward(observation)
                        self.backward(0.0, terminal=False)
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
        except _NonFiniteAction as e:
            bad_action = e  # raised below, once the run has ended and the weights are back in the models
        finally:
            if episode_running:
                self._end_episode()
            self._leave_run(training, nested, outer, did_abort)
        return self._close_run(cbs, history, did_abort, bad_action, "forward")

    def _leave_run(self, training: bool, nested: bool, outer: tuple, did_abort: bool) -> None:
        """Ends a run's training mode; a run started inside another hands the outer run back."""
        self.training = False
        self._on_run_end(training)
        self._running = nested
        if nested:  # back to the outer run: its mode, stop flag (Ctrl-C stops it too) and start-step RNG,
            self.training, self.stop_training, self._run_rng = outer[0], outer[1] or did_abort, outer[2]
            self._on_run_begin(outer[0])  # its run state (e.g. DDPG's training weights, now current),
            self.reset_states()  # and a fresh episode state: the nested episodes reset it

    def _close_run(
        self,
        cbs: CallbackList,
        history: keras.callbacks.History,
        did_abort: bool,
        bad_action: _NonFiniteAction | None,
        method: str,
    ) -> keras.callbacks.History:
        """Raises the error of a non-finite action (naming non-finite weights), else ends the callbacks."""
        if bad_action is not None:
            message = f"{type(self).__name__}.{method} {bad_action}"
            names = self._nonfinite_weights()
            if names:
                message += f"; non-finite weights in: {', '.join(names)}"
            raise ValueError(message)
        cbs.on_train_end({"did_abort": did_abort})
        self.history = history
        return history

    def _reset_env(self, env: Any, seed: int | None, keep: _ObservationGuard, episode: int) -> Any:
        result = env.reset(seed=seed) if seed is not None else env.reset()
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                "`env.reset()` must return `(observation, info)` as gymnasium environments do (old gym "
                f"environments return the observation alone). Received: env.reset() returned {_short_repr(result)}"
            )
        observation, info = result
        if not isinstance(info, dict):
            raise TypeError(
                "`env.reset()` must return `(observation, info)` with `info` a dict, as gymnasium environments "
                f"do. Received: info={_short_repr(info)}"
            )
        if self.processor is not None:
            observation = self.processor.process_observation(observation)
        return keep(observation, episode, 0)

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
        keep: _ObservationGuard,
        episode: int,
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
            observation = keep(observation, episode, None)
            if terminated or truncated:
                warnings.warn(
                    "The environment ended during the random start steps; consider a smaller nb_max_start_steps.",
                    stacklevel=3,
                )
                observation = self._reset_env(env, None, keep, episode)
                break
        return observation

    # ------------------------------------------------------------- checkpoints
    def save_checkpoint(self, dirpath: str | os.PathLike, env: Any = None) -> str:
        """Saves everything needed to continue training into the folder `dirpath`.

        The folder keeps one complete checkpoint: a new one is written beside the old in a
        sub-folder, then `checkpoint.json` is switched to it atomically and the old is removed, so
        a crash at any moment leaves a loadable checkpoint. Temporary files and folders that an
        earlier, killed save left behind are removed too. `state.json` records the SHA-256 of every
        other file of the sub-folder, and `checkpoint.json` the SHA-256 of `state.json`, so that
        `load_checkpoint` detects any damaged byte.

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
            if callable(getattr(self.processor, "get_state", None)):  # e.g. whitening statistics
                state["processor"] = self.processor.get_state()
            files = _folder_files(tmp)
            for path in files.values():
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())
            state["files"] = {rel: sha256_file(path) for rel, path in files.items()}
            state_path = os.path.join(tmp, _CHECKPOINT_STATE)
            write_json_atomic(state_path, state)
            state_digest = sha256_file(state_path)
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(dirpath)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_json_atomic(os.path.join(dirpath, _CHECKPOINT_INDEX), {"latest": name, "state_sha256": state_digest})
        for entry in os.listdir(dirpath):
            path = os.path.join(dirpath, entry)
            old = _CHECKPOINT_NAME.fullmatch(entry) is not None
            leftover = entry.startswith(".step-") and entry.endswith(".tmp")  # a save that was killed
            if entry != name and (old or leftover) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
        return final

    def load_checkpoint(self, dirpath: str | os.PathLike, env: Any = None) -> None:
        """Restores a checkpoint written by `save_checkpoint` (the agent must be built and compiled
        the same way). Pass the environment to restore its RNG states as well.

        All or nothing: every file's SHA-256 and every field the base class owns (format, agent
        class, `step`, `episode`, the RNG states) are checked, then the agent reads and checks its
        own files (`_read_checkpoint_files`), and only then is anything changed: the agent's state
        first (`_apply_checkpoint_files`), then the counters and the RNG states.

        Raises:
            ValueError: naming the file (and the field), if the folder holds no checkpoint, a file
                is missing, damaged or hand-edited, or the checkpoint was written by another kind
                of agent or architecture.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `load_checkpoint()`.")
        dirpath = os.fspath(dirpath)
        folder, state = _read_checkpoint_state(dirpath, type(self).__name__)
        rng_state = _checked_rng_state(state, "rng", type(self._rng.bit_generator), folder)
        env_rng = _checked_env_rng_state(state, env, folder)
        _verify_files(folder, state["files"])
        staged = self._read_checkpoint_files(folder, state["agent_state"])
        processor_state = state.get("processor")
        restore_processor = processor_state is not None and callable(getattr(self.processor, "set_state", None))
        if restore_processor:
            try:  # on a copy: the processor changes only when the whole load succeeds
                copy.deepcopy(self.processor).set_state(processor_state)
            except Exception as e:  # noqa: BLE001 - any failure means the state is unusable
                raise ValueError(
                    f"The checkpoint state file is invalid: `processor` does not fit {type(self.processor).__name__} "
                    f"({e}). Received: processor={_short_repr(processor_state)} in "
                    f"filepath={os.path.join(folder, _CHECKPOINT_STATE)!r}"
                ) from e
        # Everything is checked: from here on nothing can fail on the checkpoint's contents.
        self._apply_checkpoint_files(staged)
        if restore_processor:
            self.processor.set_state(processor_state)
        self.step = state["step"]
        self.episode = state["episode"]
        self._rng.bit_generator.state = rng_state
        if env is not None:
            _set_env_rng_state(env, env_rng)

    def _save_checkpoint_files(self, folder: str) -> dict:
        """Writes the agent's own files into `folder`; returns JSON-compatible extra state (a dict)."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")

    def _read_checkpoint_files(self, folder: str, state: dict) -> Any:
        """Reads and checks everything `_save_checkpoint_files` wrote, changing nothing.

        The first phase of `load_checkpoint`: read every file of `folder` the agent needs and check
        it against the agent (shapes, counts, configuration), together with `state`, the dict
        `_save_checkpoint_files` returned. The files' checksums were verified already.

        Returns:
            Whatever `_apply_checkpoint_files` needs to restore the agent. Defaults to
            `(folder, state)`, for agents that only implement `_load_checkpoint_files`.

        Raises:
            ValueError: naming the file and the field, if anything does not fit the agent.
        """
        return folder, state

    def _apply_checkpoint_files(self, staged: Any) -> None:
        """Restores the agent from what `_read_checkpoint_files` returned: the second phase of
        `load_checkpoint`, which must not fail on checked data. Defaults to
        `_load_checkpoint_files(folder, state)`."""
        folder, state = staged
        self._load_checkpoint_files(folder, state)

    def _load_checkpoint_files(self, folder: str, state: dict) -> None:
        """Restores what `_save_checkpoint_files` wrote, in one phase (see `_read_checkpoint_files`
        and `_apply_checkpoint_files` for a load that changes nothing when it fails)."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")


def _folder_files(folder: str) -> dict[str, str]:
    """Every file under `folder` but `state.json`: {path relative to `folder`, with "/": path}."""
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel != _CHECKPOINT_STATE:
                files[rel] = path
    return files


def _read_checkpoint_state(dirpath: str, agent_class: str) -> tuple[str, dict]:
    """Reads `checkpoint.json` and the `state.json` it names; checks both (but not the other files)."""
    index_path = os.path.join(dirpath, _CHECKPOINT_INDEX)
    index = read_json(index_path, what="checkpoint index")

    def bad_index(field: str, expected: str, value: Any) -> ValueError:
        return ValueError(
            f"The checkpoint index is invalid: `{field}` must be {expected}. "
            f"Received: {field}={_short_repr(value)} in filepath={index_path!r}"
        )

    if not isinstance(index, dict):
        raise ValueError(
            f"The checkpoint index is invalid: it must hold a JSON object. Received: {_short_repr(index)} "
            f"in filepath={index_path!r}"
        )
    latest = index.get("latest")
    if not isinstance(latest, str) or not _CHECKPOINT_NAME.fullmatch(latest):
        raise bad_index("latest", "the name of a checkpoint sub-folder, such as 'step-000000001000-1a2b3c4d'", latest)
    digest = index.get("state_sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise bad_index("state_sha256", "a SHA-256 in hexadecimal (checkpoints of format 2 and later)", digest)
    folder = os.path.join(dirpath, latest)
    if not os.path.isdir(folder):
        raise ValueError(
            f"The checkpoint sub-folder named by the checkpoint index does not exist. Received: latest={latest!r} "
            f"in filepath={index_path!r}"
        )
    state_path = os.path.join(folder, _CHECKPOINT_STATE)
    if not os.path.isfile(state_path):
        raise ValueError(f"The checkpoint state file does not exist. Received: filepath={state_path!r}")
    with open(state_path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(
            f"The checkpoint state file is damaged: its SHA-256 differs from the one recorded in {index_path!r} "
            f"(one of the two files was changed). Received: filepath={state_path!r}"
        )
    state = parse_json(data, state_path, what="checkpoint state file")

    def bad(field: str, expected: str, value: Any) -> ValueError:
        return ValueError(
            f"The checkpoint state file is invalid: `{field}` must be {expected}. "
            f"Received: {field}={_short_repr(value)} in filepath={state_path!r}"
        )

    if not isinstance(state, dict):
        raise ValueError(
            f"The checkpoint state file is invalid: it must hold a JSON object. Received: {_short_repr(state)} "
            f"in filepath={state_path!r}"
        )
    for key in ("format", "agent", "step", "episode", "rng", "agent_state", "files"):
        if key not in state:
            raise ValueError(f"The checkpoint state file lacks `{key}`. Received: filepath={state_path!r}")
    if type(state["format"]) is not int or state["format"] != _CHECKPOINT_FORMAT:
        raise bad("format", f"{_CHECKPOINT_FORMAT} (checkpoints of another version of keras-rl3)", state["format"])
    if state["agent"] != agent_class:
        raise ValueError(
            f"The checkpoint was written by {state['agent']!r}; this agent is {agent_class!r}. "
            f"Received: filepath={state_path!r}"
        )
    for key in ("step", "episode"):
        value = state[key]
        if type(value) is not int or value < 0:
            raise bad(key, "a non-negative integer", value)
    if not isinstance(state["agent_state"], dict):
        raise bad("agent_state", "a JSON object", state["agent_state"])
    files = state["files"]
    if not isinstance(files, dict):
        raise bad("files", "a JSON object of {file name: SHA-256}", files)
    for rel, file_digest in files.items():
        parts = rel.split("/")
        if rel == _CHECKPOINT_STATE or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            raise bad("files", "relative names of files inside the sub-folder", rel)
        if not isinstance(file_digest, str) or not _SHA256.fullmatch(file_digest):
            raise bad(f"files[{rel!r}]", "a SHA-256 in hexadecimal", file_digest)
    if "env_rng" in state and not isinstance(state["env_rng"], dict):
        raise bad("env_rng", "a JSON object", state["env_rng"])
    return folder, state


def _checked_rng_state(state: dict, field: str, bit_generator: type, folder: str) -> dict:
    """Returns `state[field]` if a fresh `bit_generator` accepts it as its state, else raises."""
    value = _lookup(state, field)
    try:
        if not isinstance(value, dict):
            raise TypeError("not a JSON object")
        bit_generator().state = value  # a throwaway generator: nothing of the agent changes
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(
            f"The checkpoint state file is invalid: `{field}` is not a {bit_generator.__name__} state ({e}). "
            f"Received: {field}={_short_repr(value)} in filepath={os.path.join(folder, _CHECKPOINT_STATE)!r}"
        ) from e
    return value


def _lookup(state: dict, field: str) -> Any:
    value: Any = state
    for key in field.split("."):
        value = value[key]
    return value


def _checked_env_rng_state(state: dict, env: Any, folder: str) -> dict:
    """Checks `env_rng` (when present) and, with `env`, that the environment has those generators."""
    saved = state.get("env_rng", {})
    state_path = os.path.join(folder, _CHECKPOINT_STATE)
    unknown = set(saved) - {"env", "action_space"}
    if unknown:
        raise ValueError(
            "The checkpoint state file is invalid: `env_rng` holds only 'env' and 'action_space'. "
            f"Received: env_rng keys {sorted(unknown)} in filepath={state_path!r}"
        )
    generators = {
        "env": getattr(env, "np_random", None),
        "action_space": getattr(getattr(env, "action_space", None), "np_random", None),
    }
    for key in saved:
        field = f"env_rng.{key}"
        generator = generators[key]
        if env is not None:
            if not isinstance(generator, np.random.Generator):
                what = "env.np_random" if key == "env" else "env.action_space.np_random"
                raise ValueError(
                    f"The checkpoint holds the state of the environment's {what}, but this environment has no such "
                    f"numpy Generator. Received: env={env!r}"
                )
            _checked_rng_state(state, field, type(generator.bit_generator), folder)
        else:
            value = saved[key]
            name = value.get("bit_generator") if isinstance(value, dict) else None
            bit_generator = getattr(np.random, name, None) if isinstance(name, str) else None
            if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
                bit_generator = np.random.PCG64
            _checked_rng_state(state, field, bit_generator, folder)
    return saved if env is not None else {}


def _verify_files(folder: str, files: dict[str, str]) -> None:
    """Checks that every file `state.json` lists is there with the SHA-256 recorded for it."""
    for rel, digest in files.items():
        path = os.path.join(folder, *rel.split("/"))
        if not os.path.isfile(path):
            raise ValueError(f"The checkpoint lacks one of its files. Received: filepath={path!r}")
        if sha256_file(path) != digest:
            raise ValueError(
                "A checkpoint file is damaged: its SHA-256 differs from the one recorded in state.json. "
                f"Received: filepath={path!r}"
            )


def _takes_step_outcome(backward: Callable) -> bool:
    """Whether `backward` accepts `truncated` and `next_observation` (keras-rl's took only `reward, terminal`)."""
    try:
        params = inspect.signature(backward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume this library's
        return True
    names = {p.name for p in params}
    return any(p.kind is p.VAR_KEYWORD for p in params) or {"truncated", "next_observation"} <= names


class _ObservationGuard:
    """Checks and copies each observation the loop keeps; one per run.

    An environment may return the same array at every step and update it in place, and a
    processor may return a view: the loop keeps (and the agent stores) a copy of each observation,
    made once. The copy is refused when the observation is `None`, holds NaN or inf, or does not
    have the shape (the structure, for dicts, tuples and lists) of the run's first observation.
    """

    __slots__ = ("shape", "structure", "source")

    def __init__(self, source: str):
        self.shape: tuple | None = None  # the first observation's shape, when it was an array
        self.structure: Any = _UNSET
        self.source = source

    def __call__(self, observation: Any, episode: int, step: int | None) -> Any:
        if type(observation) is np.ndarray and observation.shape == self.shape:
            if observation.dtype.kind in "fc" and not _finite_array(observation):
                raise _nonfinite_observation(observation, episode, step)
            return observation.copy()
        return self._check(observation, episode, step)

    def _check(self, observation: Any, episode: int, step: int | None) -> Any:
        where = _where(episode, step)
        if observation is None:
            raise TypeError(
                f"`observation` must be an array or a structure of arrays, but {self.source} returned None {where}. "
                "Received: observation=None"
            )
        structure = _structure(observation)
        if self.structure is _UNSET:
            self.structure = structure
            self.shape = observation.shape if type(observation) is np.ndarray else None
        elif structure != self.structure:
            raise ValueError(
                f"The observation's shape changed during the run: the run's first observation had shape "
                f"{self.structure}, the one {where} has {structure}. Received: observation={_short_repr(observation)}"
            )
        if not _all_finite(observation):
            raise _nonfinite_observation(observation, episode, step)
        return _copy_observation(observation)


_UNSET = object()


def _where(episode: int, step: int | None) -> str:
    if step is None:
        return f"during the random start steps of episode {episode}"
    return f"at step {step} of episode {episode}"


def _nonfinite_observation(observation: Any, episode: int, step: int | None) -> ValueError:
    return ValueError(
        f"The environment returned an observation with NaN or inf {_where(episode, step)}. "
        f"Received: observation={_short_repr(observation)}"
    )


def _structure(value: Any) -> Any:
    """The shape of an observation: an array's shape, or the shapes inside a dict, tuple or list."""
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        parts = tuple(_structure(v) for v in value)
        if all(p == () for p in parts):
            return (len(parts),)  # a list of numbers has the shape of the array it makes
        return parts
    return ()  # a number (or another object)


def _copy_observation(value: Any) -> Any:
    """A copy of `value` that later in-place changes to the original do not reach."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        out = copy.copy(value)  # keeps the mapping's type (OrderedDict, ...)
        for k, v in value.items():
            out[k] = _copy_observation(v)
        return out
    if isinstance(value, tuple):
        items = [_copy_observation(v) for v in value]
        return value._make(items) if hasattr(value, "_make") else tuple(items)  # named tuples keep their type
    if isinstance(value, list):
        return [_copy_observation(v) for v in value]
    return value  # numbers and strings cannot change


def _finite_array(a: np.ndarray) -> bool:
    """Whether a float or complex array holds no NaN or inf.

    Exact either way; for the small float arrays of most observations and actions, Python's
    `math.isfinite` over the values is several times faster than numpy's per-call overhead.
    """
    if a.size <= 16 and a.dtype.char in "efd":  # float16, float32, float64
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def _all_finite(value: Any) -> bool:
    """Whether no float or complex number in `value` (an array, number, or dict/tuple/list of them) is NaN or inf."""
    if isinstance(value, (bool, int, np.integer, np.bool_, str)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or _finite_array(value)
    if isinstance(value, (float, complex, np.floating, np.complexfloating)):
        return bool(np.isfinite(value))
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    return True


class _NonFiniteAction(ValueError):
    """Raised inside the loop; reported (with the non-finite weights) once the run has ended."""

    def __init__(self, action: Any, episode: int, step: int, agent_step: int):
        super().__init__(
            f"returned a non-finite action at step {step} of episode {episode} (agent step {agent_step}); it was "
            f"not sent to the environment. Received: action={_short_repr(action)}"
        )


def _bad_reward(reward: Any, source: str, episode: int, step: int, agent_step: int) -> TypeError:
    return TypeError(
        f"The reward must be a number (a Python or numpy scalar), but {source} returned a "
        f"{type(reward).__name__} at step {step} of episode {episode} (agent step {agent_step}). "
        f"Received: reward={_short_repr(reward)}"
    )


def _as_reward(reward: Any, source: str, episode: int, step: int, agent_step: int) -> float:
    """Returns a reward that is not a Python float (numpy scalars, ints, 0-d arrays) as one, or raises."""
    if isinstance(reward, (int, np.integer, np.floating)):
        return float(reward)
    if isinstance(reward, np.ndarray) and reward.dtype.kind in "biuf":
        if reward.ndim == 0:
            return float(reward)
        raise ValueError(
            f"The reward must be a scalar, but {source} returned an array of shape {reward.shape} at step {step} "
            f"of episode {episode} (agent step {agent_step}). Received: reward={_short_repr(reward)}"
        )
    raise _bad_reward(reward, source, episode, step, agent_step)


def _short_repr(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
