"""A gymnasium vector environment: the source behind `fit` and `test` on a `gymnasium.vector.VectorEnv`.

`Agent.fit` and `Agent.test` hand a vector environment to `run_vector`, the source of this
module. Each vector step is one compiled call for all `N` sub-environments
(`OffPolicyAgent.forward_batch`, fused with the training scheduled by the previous step), one
`env.step`, then `backward_batch`, which stores each sub-environment's transition as a step of
that sub-environment's own episode.

What a vector run counts and reports:

- `nb_steps` (and `agent.step`) count environment steps across sub-environments: a vector step
  of `N` sub-environments is `N` steps. The run stops at the first vector step that reaches
  `nb_steps`, so it may take up to `N - 1` steps more. With `AutoresetMode.NEXT_STEP` a
  sub-environment's reset step (the step after its episode ended, which only resets it) is no
  environment step: it is neither stored nor counted.
- Training: by default one training step per environment step (`gradient_steps` updates every
  `train_interval` steps past the warm-up, as in `fit` on one environment), so `N` per vector
  step; `fit(..., updates_per_vector_step=k)` runs `k` gradient steps per vector step instead
  (SB3's `gradient_steps`), whenever one of its environment steps is a training step.
- Callbacks: `on_step_begin` / `on_step_end` run once per environment step, in sub-environment
  order, with `agent.step` advancing by one each time (so `Checkpoint` and
  `ModelIntervalCheckpoint` intervals work as in `fit`); step and episode logs carry `env_index`,
  and the History gets one `env_index` per episode besides `episode_reward`, `nb_episode_steps`
  and `nb_steps`. `test` stops once `nb_episodes` episodes have ended (in any sub-environments);
  the episodes still running are abandoned.
- Seeding: `seed` resets sub-environment `i` with `seed + i` (gymnasium's rule), seeds the
  vector action space and the agent's generator; each sub-environment explores with its own copy
  of the agent's `random_process`, seeded from the agent's generator.
- Truncation bootstraps from the real final observation, which gymnasium hands back by
  autoreset mode: with `NEXT_STEP` (the default) it is the step's observation and the next step
  only resets that sub-environment (its transition is not stored); with `SAME_STEP` it is
  `info["final_obs"]` and the step's observation is already the next episode's first.
  `AutoresetMode.DISABLED` is refused.

Limits: `window_length` must be 1, and `memory_interval` 1; `action_repetition`,
`nb_max_start_steps` and `nb_max_episode_steps` are refused (give each sub-environment a time
limit instead: `gymnasium.make_vec(env_id, num_envs, max_episode_steps=...)`); `visualize` is
ignored. In `SequentialMemory` the sub-environments' steps interleave, so each transition takes
two slots (its observation and its next): size `limit` for twice the transitions. A checkpoint
saved during a vector run holds what it holds in `fit` (networks, optimizers, memory, noise
states, counters) plus the vector env's own generators (`env.np_random`,
`env.action_space.np_random`), not the sub-environments' states or generators: a resumed run
starts fresh episodes (reset it with a new seed), so it continues training but does not repeat
the uninterrupted run exactly.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from rl.loops.guards import NonFiniteAction, all_finite, check_rows_finite, checked_reward
from rl.loops.run import Run
from rl.util import check_int

__all__ = ["autoreset_mode", "is_vector_env", "run_vector"]


def is_vector_env(env: Any) -> bool:
    """Whether `env` is a `gymnasium.vector.VectorEnv` (sync, async, or a wrapper of one).

    Args:
        env: any object.

    Returns:
        `True` for a vector environment.
    """
    return isinstance(env, (gym.vector.VectorEnv, gym.vector.VectorWrapper))


def autoreset_mode(env: Any) -> gym.vector.AutoresetMode:
    """The autoreset mode of a vector environment, read from `env.metadata["autoreset_mode"]`.

    Args:
        env: a `gymnasium.vector.VectorEnv`.

    Returns:
        The `gymnasium.vector.AutoresetMode`; `NEXT_STEP` when the metadata does not say.

    Raises:
        ValueError: if the mode is `DISABLED` or not one gymnasium defines.
    """
    mode = (getattr(env, "metadata", None) or {}).get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    try:
        mode = gym.vector.AutoresetMode(mode)
    except ValueError:
        raise ValueError(
            f"Unknown autoreset mode of the vector environment. Received: env.metadata['autoreset_mode']={mode!r}"
        ) from None
    if mode is gym.vector.AutoresetMode.DISABLED:
        raise ValueError(
            "The vector environment does not reset its sub-environments (autoreset_mode=DISABLED), which the "
            "training loop needs. Create it with autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP (the "
            "default) or SAME_STEP. Received: env.metadata['autoreset_mode']=AutoresetMode.DISABLED"
        )
    return mode


class _SingleSpaces:
    """One sub-environment's spaces, for the agent's `_check_env`."""

    def __init__(self, env: Any):
        self.action_space = env.single_action_space
        self.observation_space = env.single_observation_space
        self.unwrapped = self


def run_vector(
    agent: Any,
    env: Any,
    *,
    training: bool,
    nb_steps: int | None,
    nb_episodes: int | None,
    callbacks: list,
    seed: int | None,
    updates_per_vector_step: int | None = None,
    action_repetition: int = 1,
    nb_max_start_steps: int = 0,
    nb_max_episode_steps: int | None = None,
) -> keras.callbacks.History:
    """Runs `fit` (training=True) or `test` on a vector environment; see the module's docstring.

    Args:
        agent: a compiled agent with `forward_batch` and `backward_batch` (the off-policy agents).
        env: a `gymnasium.vector.VectorEnv` with autoreset mode `NEXT_STEP` or `SAME_STEP`.
        training: `True` for `fit`, `False` for `test`.
        nb_steps: with `training`, environment steps across sub-environments.
        nb_episodes: without `training`, episodes to finish across sub-environments.
        callbacks: callbacks (loggers included).
        seed: sub-environment `i` is reset with `seed + i`, or `None`.
        updates_per_vector_step: gradient steps per vector step, or `None` for one training step
            per environment step. Defaults to `None`.
        action_repetition, nb_max_start_steps, nb_max_episode_steps: `fit`'s arguments; only
            their defaults are accepted.

    Returns:
        The run's `keras.callbacks.History`.

    Raises:
        TypeError: if `env` is no vector environment, or the agent cannot act in one.
        ValueError: for an argument a vector run does not support, autoreset mode `DISABLED`,
            non-finite observations, rewards or actions.
    """
    if not is_vector_env(env):
        raise TypeError(
            "`updates_per_vector_step` applies to vector environments (gymnasium.vector.VectorEnv) only. "
            f"Received: env={env!r}, updates_per_vector_step={updates_per_vector_step!r}"
        )
    name = type(agent).__name__
    if not (callable(getattr(agent, "forward_batch", None)) and callable(getattr(agent, "backward_batch", None))):
        raise TypeError(
            f"{name} cannot run on a vector environment: it acts one observation at a time (it has no "
            "`forward_batch` / `backward_batch`). The off-policy agents (DDPGAgent, TD3Agent, SACAgent, NAFAgent, "
            "DQNAgent) accept vector environments; for this agent, pass a single environment such as "
            f"gymnasium.make(env_id). Received: env={env!r}"
        )
    if updates_per_vector_step is not None:
        updates_per_vector_step = check_int("updates_per_vector_step", updates_per_vector_step, minimum=1)
    for arg, value, default in (
        ("action_repetition", action_repetition, 1),
        ("nb_max_start_steps", nb_max_start_steps, 0),
        ("nb_max_episode_steps", nb_max_episode_steps, None),
    ):
        if value != default:
            hint = (
                " Give each sub-environment a time limit instead: gymnasium.make_vec(env_id, num_envs, "
                "max_episode_steps=...)."
                if arg == "nb_max_episode_steps"
                else ""
            )
            raise ValueError(f"`{arg}` is not supported with a vector environment.{hint} Received: {arg}={value!r}")
    if getattr(agent, "memory_interval", 1) != 1:
        raise ValueError(
            f"A vector environment needs memory_interval=1. Received: memory_interval={agent.memory_interval}"
        )
    mode = autoreset_mode(env)
    n = int(env.num_envs)
    agent.check_env(_SingleSpaces(env))
    params = {"nb_steps": nb_steps} if training else {"nb_episodes": nb_episodes}
    if seed is not None:
        if training:
            agent.np_random = np.random.default_rng(seed)
        env.action_space.seed(seed)
    # Each sub-environment explores with its own noise process: the agent's for the first, copies for the others.
    noise = None
    if training and getattr(agent, "random_process", None) is not None:
        noise = [agent.random_process] + [copy.deepcopy(agent.random_process) for _ in range(n - 1)]
        for process in noise[1:]:
            if isinstance(getattr(process, "rng", None), np.random.Generator):
                process.rng = np.random.default_rng(int(agent.np_random.integers(2**63)))
    end_step = agent.step + nb_steps if training else None
    run = Run(
        agent, training=training, callbacks=callbacks, params=params, env=env, end_step=end_step, method="forward_batch"
    )
    source = _VectorSteps(agent, env, run, mode, n, noise, seed, updates_per_vector_step, end_step, nb_episodes)
    return run.execute(source.play, cleanup=source.cleanup)


class _VectorSteps:
    """The state of one run over a vector environment's sub-environments."""

    def __init__(
        self,
        agent: Any,
        env: Any,
        run: Run,
        mode: gym.vector.AutoresetMode,
        n: int,
        noise: list | None,
        seed: int | None,
        updates: int | None,
        end_step: int | None,
        nb_episodes: int | None,
    ):
        self.agent, self.env, self.run, self.mode, self.n, self.noise = agent, env, run, mode, n, noise
        self.seed, self.updates, self.end_step, self.nb_episodes = seed, updates, end_step, nb_episodes
        self.running = False
        training = run.training
        self.next_episode = agent.episode if training else 0
        self.episode_ids = np.zeros(n, dtype=np.int64)
        self.episode_steps = np.zeros(n, dtype=np.int64)
        self.episode_rewards = np.zeros(n, dtype=np.float64)

    def cleanup(self) -> None:
        if self.running:
            self.agent.abandon_episode()

    def begin_episode(self, i: int) -> None:
        self.episode_ids[i], self.episode_steps[i], self.episode_rewards[i] = self.next_episode, 0, 0.0
        self.next_episode += 1
        if self.run.training:
            self.agent.episode += 1
        if self.noise is not None and hasattr(self.noise[i], "reset_states"):
            self.noise[i].reset_states()
        self.run.callbacks.on_episode_begin(int(self.episode_ids[i]), {"env_index": i})

    def play(self) -> None:
        agent, env, n, mode, noise = self.agent, self.env, self.n, self.mode, self.noise
        training, cbs, processor = self.run.training, self.run.callbacks, agent.processor
        end_step, nb_episodes, seed = self.end_step, self.nb_episodes, self.seed
        episode_ids, episode_steps, episode_rewards = self.episode_ids, self.episode_steps, self.episode_rewards
        low, high = _finite_bounds(env.single_action_space)
        step_logs = cbs.wants("on_step_end")
        step_begin = cbs.wants("on_step_begin")
        resetting = np.zeros(n, dtype=bool)  # NEXT_STEP: the sub-environment's next step only resets it
        episodes_done = 0
        agent.reset_states()
        observations, _ = env.reset(seed=seed) if seed is not None else env.reset()
        observations = _observations(observations, processor, n)
        self.running = True
        for i in range(n):
            self.begin_episode(i)
        while not agent.stop_training:
            if training and agent.step >= end_step:
                break
            if not training and episodes_done >= nb_episodes:
                break
            if step_begin:
                for i in np.flatnonzero(~resetting):
                    cbs.on_step_begin(int(episode_steps[i]), {"env_index": int(i)})
            actions = agent.forward_batch(observations, noise)
            if not all_finite(actions):
                row = next(i for i in range(n) if not all_finite(actions[i]))
                raise NonFiniteAction(actions[row], int(episode_ids[row]), int(episode_steps[row]), agent.step)
            env_actions = actions
            if processor is not None:
                env_actions = np.stack([np.asarray(processor.process_action(a)) for a in actions])
            if low is not None:
                env_actions = np.minimum(np.maximum(env_actions, low), high)
            result = env.step(env_actions)
            next_obs, rewards, terminated, truncated, infos = result
            terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
            rewards = np.asarray(rewards, dtype=np.float64).copy()
            stored = ~resetting
            ended = (terminated | truncated) & stored
            # The real next observation of each stored step (an episode's final one where it ended), and the
            # observation each sub-environment acts on next (with SAME_STEP, the next episode's first one).
            same_step_reset = ended if mode is gym.vector.AutoresetMode.SAME_STEP else np.zeros(n, dtype=bool)
            final = np.array(next_obs, copy=True)
            for i in np.flatnonzero(same_step_reset):
                final[i] = infos["final_obs"][i]
                if np.array_equal(final[i], next_obs[i]):
                    raise ValueError(_aliased_final_observation(env, int(i)))
            want_info = processor is not None or step_logs
            row_infos = [_row_info(infos, i) if want_info else {} for i in range(n)]
            if processor is None:
                following = next_obs
            else:
                # The processor gets copies, as in keras-rl: rows of `final`, this step's own copy, which is not
                # written again (a processor may keep them), or a copy of the next episode's first observation.
                following = [None] * n
                processed: list = [None] * n
                for i in range(n):
                    if stored[i]:
                        o, r, _, row_infos[i] = processor.process_step(
                            final[i], rewards[i], terminated[i], row_infos[i]
                        )
                        processed[i] = np.asarray(o)
                        rewards[i] = _processed_reward(r, int(episode_ids[i]), int(episode_steps[i]), agent.step, i)
                    if not stored[i]:  # a reset step: `final[i]` is the new episode's first observation
                        following[i] = processed[i] = np.asarray(processor.process_observation(final[i]))
                    elif same_step_reset[i]:  # each observation goes through the processor once
                        following[i] = np.asarray(processor.process_observation(np.array(next_obs[i], copy=True)))
                    else:
                        following[i] = processed[i]
                final = processed
            final = check_rows_finite(
                np.array(final, copy=True),
                lambda i: f"at step {episode_steps[i]} of episode {episode_ids[i]} (sub-environment {i})",
            )
            if not np.isfinite(rewards[stored]).all():
                i = int(np.flatnonzero(stored & ~np.isfinite(rewards))[0])
                raise ValueError(
                    f"The environment returned a non-finite reward at step {episode_steps[i]} of episode "
                    f"{episode_ids[i]} (sub-environment {i}, agent step {agent.step}). Received: reward={rewards[i]!r}"
                )
            metrics = agent.backward_batch(rewards, terminated, truncated, final, stored, self.updates)
            rows = np.flatnonzero(stored)
            episode_steps[rows] += 1
            episode_rewards[rows] += rewards[rows]
            if not (step_logs or ended.any()):  # nothing to report per step: count them at once
                if training:
                    agent.step += len(rows)
                rows = rows[:0]
            for i in rows:
                i = int(i)
                if training:
                    agent.step += 1
                if step_logs:
                    cbs.on_step_end(
                        int(episode_steps[i]) - 1,
                        {
                            "action": actions[i],
                            "observation": final[i],
                            "reward": float(rewards[i]),
                            "metrics": metrics,
                            "episode": int(episode_ids[i]),
                            "info": row_infos[i],
                            "env_index": i,
                        },
                    )
                if ended[i]:
                    cbs.on_episode_end(
                        int(episode_ids[i]),
                        {
                            "episode_reward": float(episode_rewards[i]),
                            "nb_episode_steps": int(episode_steps[i]),
                            "nb_steps": agent.step if training else int(episode_steps[i]),
                            "env_index": i,
                        },
                    )
                    episodes_done += 1
            if following is next_obs and not same_step_reset.any():
                observations = final  # the same observations, copied and checked already
            else:
                observations = _observations(following, None, n)
            if mode is gym.vector.AutoresetMode.SAME_STEP:
                starting = ended
            else:  # NEXT_STEP: a sub-environment that ended resets at its next step, which starts its episode
                starting, resetting = resetting, ended
            if training or episodes_done < nb_episodes:
                for i in np.flatnonzero(starting):
                    self.begin_episode(int(i))


def _aliased_final_observation(env: Any, i: int) -> str:
    return (
        f"Sub-environment {i} ended an episode with a final observation equal to the first observation of its "
        "next episode. With autoreset_mode=SAME_STEP this is what an environment that writes its observations into "
        "one array it reuses gives: the reset overwrites the final observation before the vector environment "
        "hands it back, and a truncated episode would bootstrap from the wrong state. Return a copy from the "
        "environment's step and reset (`observation.copy()`), or create the vector environment with "
        "autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP (gymnasium's default), which is exact either way. "
        f"Received: env={env!r} with env.metadata['autoreset_mode']=AutoresetMode.SAME_STEP"
    )


def _finite_bounds(space: Any) -> tuple[Any, Any]:
    if getattr(space, "low", None) is not None and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        return space.low, space.high
    return None, None


def _observations(observations: Any, processor: Any, n: int) -> np.ndarray:
    """The sub-environments' observations as one array `[N, *obs]`, through the processor, checked."""
    if processor is not None:  # the processor gets copies (rows of one), as in keras-rl
        observations = np.array(observations, copy=True)
        observations = np.stack([np.asarray(processor.process_observation(o)) for o in observations])
    observations = np.array(observations, copy=True)  # the vector env may reuse its buffer
    if observations.shape[:1] != (n,):
        raise ValueError(
            f"A vector environment of {n} sub-environments must return {n} observations. "
            f"Received: observations of shape {observations.shape}"
        )
    return check_rows_finite(observations, lambda i: f"(sub-environment {i})")


def _processed_reward(reward: Any, episode: int, step: int, agent_step: int, env_index: int) -> float:
    """A processor's reward for one sub-environment, as a finite float."""
    try:
        value = float(reward)
    except (TypeError, ValueError):
        return checked_reward(reward, "the processor", f"at step {step} of episode {episode} (agent step {agent_step})")
    return checked_reward(
        value,
        "the processor",
        f"at step {step} of episode {episode} (sub-environment {env_index}, agent step {agent_step})",
    )


def _row_info(infos: dict, i: int) -> dict:
    """Sub-environment `i`'s part of a vector env's info dict (gymnasium keeps `_key` masks beside each key)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not mask[i]:
            continue
        out[key] = _row_info(value, i) if isinstance(value, dict) else value[i]
    return out
