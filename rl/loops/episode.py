"""One gymnasium environment: the source behind `Agent.fit` and `Agent.test`.

Each step: `agent.forward(observation)`, the action refused if it is not finite, passed through
the processor and clipped to a bounded `Box`, `env.step` (repeated `action_repetition` times,
the rewards summed), the processor (given a copy of the environment's observation, as keras-rl
gave it, so that a processor may keep what it receives), the reward and observation checks, then
`agent.backward(reward, terminal, truncated=..., next_observation=...)`. Episodes start with
`agent.reset_states()`, `env.reset()` and the random start steps of `nb_max_start_steps`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from rl.callbacks import Visualizer
from rl.loops.guards import (
    NonFiniteAction,
    ObservationGuard,
    _copy_observation,
    all_finite,
    checked_reward,
    finite_array,
    short_repr,
    where,
)
from rl.loops.run import Run
from rl.util import check_int, warn_at_caller

__all__ = ["check_reset", "check_step", "finite_bounds", "run_episodes", "takes_step_outcome"]


def run_episodes(
    agent: Any,
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
) -> Any:
    """Trains (`nb_steps` steps) or tests (`nb_episodes` episodes) `agent` on `env`; see `Agent.fit`.

    Returns:
        The run's `keras.callbacks.History`.
    """
    action_repetition = check_int("action_repetition", action_repetition, minimum=1)
    nb_max_start_steps = check_int("nb_max_start_steps", nb_max_start_steps, minimum=0)
    if nb_max_episode_steps is not None:
        nb_max_episode_steps = check_int("nb_max_episode_steps", nb_max_episode_steps, minimum=1)
    if start_step_policy is not None and not callable(start_step_policy):
        raise TypeError(f"`start_step_policy` must be callable. Received: start_step_policy={start_step_policy!r}")
    if not (hasattr(env, "reset") and hasattr(env, "step")):
        raise TypeError(f"`env` must be a gymnasium environment. Received: env={env!r}")
    agent.check_env(env)
    if visualize:
        callbacks = callbacks + [Visualizer()]
    params = {"nb_steps": nb_steps} if training else {"nb_episodes": nb_episodes}
    if seed is not None:
        if training:
            agent.np_random = np.random.default_rng(seed)
        if hasattr(env, "action_space") and hasattr(env.action_space, "seed"):
            env.action_space.seed(seed)
    end_step = agent.step + nb_steps if training else None
    run = Run(agent, training=training, callbacks=callbacks, params=params, env=env, end_step=end_step)
    source = _Episodes(agent, env, run, action_repetition, nb_max_episode_steps, seed)
    # `test` draws its start steps from its own generator, leaving training's untouched.
    source.start_rng = agent.np_random if training else np.random.default_rng(seed)
    source.nb_max_start_steps, source.start_step_policy = nb_max_start_steps, start_step_policy
    if training:
        body = lambda: source.play(lambda: agent.step >= end_step)  # noqa: E731
    else:
        body = lambda: source.play(lambda: source.episodes_done >= nb_episodes)  # noqa: E731
    return run.execute(body, cleanup=source.cleanup)


class _Episodes:
    """The state of one run over one environment's episodes."""

    def __init__(self, agent: Any, env: Any, run: Run, action_repetition: int, max_steps: int | None, seed: Any):
        self.agent, self.env, self.run = agent, env, run
        self.action_repetition = action_repetition
        self.nb_max_episode_steps = max_steps
        self.reset_seed = seed
        self.low, self.high = finite_bounds(getattr(env, "action_space", None))
        processor = agent.processor
        # Checks and copies every observation kept beyond its env call, against the run's first one.
        self.keep = ObservationGuard(
            "the environment" if processor is None else f"{type(processor).__name__}.process_observation"
        )
        self.reward_source = "`env.step()`" if processor is None else f"`{type(processor).__name__}.process_step()`"
        self.episode_running = False
        self.episodes_done = 0
        self.start_rng: np.random.Generator | None = None
        self.nb_max_start_steps = 0
        self.start_step_policy: Callable | None = None

    def cleanup(self) -> None:
        if self.episode_running:
            self.agent.abandon_episode()

    def play(self, done: Callable[[], bool]) -> None:
        agent, env, run, processor = self.agent, self.env, self.run, self.agent.processor
        training = run.training
        cbs = run.callbacks
        low, high = self.low, self.high
        step_end_logs = cbs.wants("on_step_end")
        want_action_hooks = cbs.wants("on_action_begin") or cbs.wants("on_action_end")
        env_step = env.step
        nb_max_episode_steps = self.nb_max_episode_steps
        keep = self.keep
        # An agent written for keras-rl has `backward(reward, terminal)`: it gets keras-rl's calls.
        keras_rl_backward = not takes_step_outcome(agent.backward)
        episode = agent.episode if training else 0
        observation: Any = None
        episode_step = 0
        episode_reward = 0.0
        while not done():
            if agent.stop_training:
                break
            if not self.episode_running:
                cbs.on_episode_begin(episode)
                episode_step = 0
                episode_reward = 0.0
                agent.reset_states()
                observation = self._reset(self.reset_seed, episode)
                self.reset_seed = None
                if self.nb_max_start_steps:
                    observation = self._start_steps(observation, episode)
                self.episode_running = True
                if training:
                    agent.episode += 1

            cbs.on_step_begin(episode_step)
            action = agent.forward(observation)
            if type(action) is np.ndarray:
                if action.dtype.kind in "fc" and not finite_array(action):
                    raise NonFiniteAction(action, episode, episode_step, agent.step)
            elif not all_finite(action):
                raise NonFiniteAction(action, episode, episode_step, agent.step)
            env_action = processor.process_action(action) if processor is not None else action
            if low is not None:
                env_action = np.minimum(np.maximum(env_action, low), high)
            reward = 0.0
            terminated = truncated = False
            info: dict = {}
            for _ in range(self.action_repetition):
                if want_action_hooks:
                    cbs.on_action_begin(env_action)
                next_observation, r, terminated, truncated, info = check_step(env_step(env_action))
                if processor is not None:  # a copy: the environment may write into its array later
                    next_observation, r, terminated, info = processor.process_step(
                        _copy_observation(next_observation), r, terminated, info
                    )
                if want_action_hooks:
                    cbs.on_action_end(env_action)
                try:
                    reward += r
                except TypeError:
                    checked_reward(r, self.reward_source, where(episode, episode_step, agent.step))
                    raise
                if terminated or truncated:
                    break
            if type(reward) is not float:  # numpy float32, a 0-d or (1,) array, ...
                reward = checked_reward(reward, self.reward_source, where(episode, episode_step, agent.step))
            elif reward - reward != 0.0:  # NaN or inf
                checked_reward(reward, self.reward_source, where(episode, episode_step, agent.step))
            next_observation = keep(next_observation, episode, episode_step)
            episode_step += 1
            if nb_max_episode_steps is not None and episode_step >= nb_max_episode_steps and not terminated:
                truncated = True
            if keras_rl_backward:  # keras-rl's `terminal`: the episode ended (a time limit too)
                metrics = agent.backward(reward, terminal=bool(terminated or truncated))
            else:
                metrics = agent.backward(
                    reward, bool(terminated), truncated=bool(truncated), next_observation=next_observation
                )
            episode_reward += reward
            if training:
                agent.step += 1
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
                self.episode_running = False
                if keras_rl_backward:
                    # keras-rl shows the final observation in one more forward/backward (action ignored),
                    # which is how its memories store it.
                    agent.forward(observation)
                    agent.backward(0.0, terminal=False)
                cbs.on_episode_end(
                    episode,
                    {
                        "episode_reward": float(episode_reward),
                        "nb_episode_steps": episode_step,
                        "nb_steps": agent.step if training else episode_step,
                    },
                )
                episode += 1
                self.episodes_done += 1

    def _reset(self, seed: int | None, episode: int) -> Any:
        observation = check_reset(self.env.reset(seed=seed) if seed is not None else self.env.reset())
        processor = self.agent.processor
        if processor is not None:
            observation = processor.process_observation(_copy_observation(observation))
        return self.keep(observation, episode, 0)

    def _start_steps(self, observation: Any, episode: int) -> Any:
        env, processor, policy = self.env, self.agent.processor, self.start_step_policy
        for _ in range(int(self.start_rng.integers(0, self.nb_max_start_steps))):
            action = env.action_space.sample() if policy is None else policy(observation)
            if processor is not None:
                action = processor.process_action(action)
            if self.low is not None:
                action = np.clip(action, self.low, self.high)
            observation, _, terminated, truncated, _ = check_step(env.step(action))
            if processor is not None:
                observation = processor.process_observation(_copy_observation(observation))
            observation = self.keep(observation, episode, None)
            if terminated or truncated:
                warn_at_caller(
                    "The environment ended during the random start steps; consider a smaller nb_max_start_steps."
                )
                observation = self._reset(None, episode)
                break
        return observation


def finite_bounds(space: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`(low, high)` of a space with finite bounds (a bounded `Box`), else `(None, None)`."""
    if space is not None and getattr(space, "low", None) is not None and getattr(space, "high", None) is not None:
        if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
            return space.low, space.high
    return None, None


def check_reset(result: Any) -> Any:
    """The observation of an `env.reset()` result, or a `TypeError` if it is not gymnasium's `(obs, info)`."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            "`env.reset()` must return `(observation, info)` as gymnasium environments do (old gym "
            f"environments return the observation alone). Received: env.reset() returned {short_repr(result)}"
        )
    observation, info = result
    if not isinstance(info, dict):
        raise TypeError(
            "`env.reset()` must return `(observation, info)` with `info` a dict, as gymnasium environments "
            f"do. Received: info={short_repr(info)}"
        )
    return observation


def check_step(result: Any) -> tuple:
    """An `env.step()` result, or a `TypeError` if it is not gymnasium's 5-tuple."""
    if not (isinstance(result, tuple) and len(result) == 5):
        n = len(result) if isinstance(result, tuple) else type(result).__name__
        raise TypeError(
            "`env.step()` must return `(observation, reward, terminated, truncated, info)` as gymnasium "
            f"environments do (old gym environments return 4 values). Received: a result of length {n}"
        )
    return result


def takes_step_outcome(backward: Callable) -> bool:
    """Whether `backward` accepts `truncated` and `next_observation` (keras-rl's took only `reward, terminal`)."""
    try:
        params = inspect.signature(backward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume this library's
        return True
    names = {p.name for p in params}
    return any(p.kind is p.VAR_KEYWORD for p in params) or {"truncated", "next_observation"} <= names
