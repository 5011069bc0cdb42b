"""Transitions acted elsewhere: the source behind `rl.distributed.fit`.

Rollout workers (`RolloutWorker`, in this process or as Ray actors) act with a copy of the
agent's acting policy and return `TransitionBatch`es; the learner (`WorkerLearner`) asks them for
steps, stores each batch in the agent's memory through the agent's protocol (`observe`, then
`train_scheduled`), counts steps and episodes, drives the callbacks inside one
`rl.loops.run.Run`, and sends fresh acting weights every `weight_sync_interval` stored steps.
The pool of workers (`InProcessPool` here, a Ray pool in `rl.distributed`) is all that differs
between backends.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rl.callbacks import CallbackList
from rl.loops.run import Run, loggers
from rl.util import warn_at_caller

__all__ = ["InProcessPool", "RolloutWorker", "TransitionBatch", "WorkerLearner"]


# ------------------------------------------------------------------ workers
class TransitionBatch(NamedTuple):
    """Consecutive transitions of one worker, in the order it took them.

    Attributes:
        worker: the worker's index.
        generation: how many times the worker was restarted before it collected this batch.
        continues: whether the first transition continues the episode of the worker's previous
            batch (`False` when it starts a new episode).
        observations: `s_t` (processed), `[n, *obs]`.
        actions: `a_t` as the agent chose them (noise included, clipped), float32 `[n, A]`.
        rewards: `r_t` (processed), float32 `[n]`.
        terminals: whether the episode terminated at `s_{t+1}` (no bootstrap), bool `[n]`.
        truncations: whether it stopped there without terminating (a time limit), bool `[n]`.
        next_observations: `s_{t+1}`, the real final observation at episode ends, `[n, *obs]`.
        weights_version: the version of the weights the actions were taken with.
        seconds: the time the worker spent collecting the batch.
    """

    worker: int
    generation: int
    continues: bool
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    next_observations: np.ndarray
    weights_version: int
    seconds: float

    def __len__(self) -> int:  # the number of transitions (not of fields)
        return int(self.rewards.shape[0])


class RolloutWorker:
    """One environment and one `ActingPolicy`: collects transitions on request.

    The same class runs in the calling process (`backend="inprocess"`) and as a Ray actor (one
    CPU, no GPU). The environment's episode goes on from one `sample` call to the next.

    Args:
        env_fn: a function without arguments that returns a gymnasium environment.
        policy: the acting policy, an `rl.distributed.ActingPolicy` (copied for this worker).
        index: the worker's index in the run.
        seed: the run's seed; the worker's environment, action space, noise and policy samples
            are seeded from `(seed, index, generation)`.
        generation: how many times this worker was restarted. Defaults to `0`.
        nb_max_episode_steps: truncate episodes after this many steps, or `None`. Defaults to
            `None`.

    Raises:
        TypeError: if `env_fn()` does not return a gymnasium environment.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        policy: Any,
        index: int,
        seed: int,
        generation: int = 0,
        nb_max_episode_steps: int | None = None,
    ):
        self.index = index
        self.generation = generation
        self.env = env_fn()
        if not (hasattr(self.env, "reset") and hasattr(self.env, "step")):
            raise TypeError(f"`env_fn` must return a gymnasium environment. Received: env_fn() -> {self.env!r}")
        self.policy = copy.deepcopy(policy)
        seeds = np.random.SeedSequence([seed, index, generation]).generate_state(3)
        self.policy.seed([int(seeds[0]), index])
        self._reset_seed: int | None = int(seeds[1])
        space = getattr(self.env, "action_space", None)
        if space is not None and hasattr(space, "seed"):
            space.seed(int(seeds[2]))
        self.nb_max_episode_steps = nb_max_episode_steps
        self.version = -1
        self._observation: Any = None
        self._episode_step = 0
        self._episode_started_here = True

    def set_weights(self, weights: list[np.ndarray], version: int) -> None:
        """Loads acting weights of the given version."""
        self.policy.set_weights(weights)
        self.version = version

    def _reset(self) -> Any:
        result = self.env.reset(seed=self._reset_seed) if self._reset_seed is not None else self.env.reset()
        self._reset_seed = None
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                "`env.reset()` must return `(observation, info)` as gymnasium environments do. "
                f"Received: {result!r:.200}"
            )
        observation = result[0]
        if self.policy.processor is not None:
            observation = self.policy.processor.process_observation(observation)
        self.policy.reset_states()
        self._episode_step = 0
        return np.array(observation, copy=True)

    def sample(
        self, nb_steps: int, weights: list[np.ndarray] | None = None, version: int = -1, nb_random: int = 0
    ) -> TransitionBatch:
        """Takes `nb_steps` environment steps with exploration and returns them.

        Args:
            nb_steps: number of transitions to collect, >= 1.
            weights: new acting weights to load first, or `None` to keep the current ones.
                Defaults to `None`.
            version: the version of `weights`. Defaults to `-1`.
            nb_random: the first this many of the steps act uniformly at random (the agent's
                `nb_steps_random`, counted over all workers by the learner). Defaults to `0`.

        Returns:
            A `TransitionBatch` of `nb_steps` transitions.

        Raises:
            ValueError: if the policy returns a non-finite action or the environment a
                non-finite reward.
        """
        start = time.perf_counter()
        if weights is not None:
            self.set_weights(weights, version)
        processor, low, high = self.policy.processor, None, None
        space = getattr(self.env, "action_space", None)
        if space is not None and getattr(space, "low", None) is not None:
            if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
                low, high = space.low, space.high
        continues = self._observation is not None
        obs0, actions, rewards, terminals, truncations, obs1 = [], [], [], [], [], []
        for i in range(nb_steps):
            if self._observation is None:
                self._observation = self._reset()
            observation = self._observation
            action = self.policy.act(observation, training=True, at_random=i < nb_random)
            if not np.all(np.isfinite(action)):
                raise ValueError(
                    f"The acting policy returned a non-finite action on worker {self.index}. "
                    f"Received: action={action!r}"
                )
            env_action = processor.process_action(action) if processor is not None else action
            if low is not None:
                env_action = np.minimum(np.maximum(env_action, low), high)
            next_observation, reward, terminated, truncated, info = self.env.step(env_action)
            if processor is not None:
                next_observation, reward, terminated, info = processor.process_step(
                    next_observation, reward, terminated, info
                )
            reward = float(reward)
            if not math.isfinite(reward):
                raise ValueError(
                    f"The environment returned a non-finite reward on worker {self.index}. Received: reward={reward!r}"
                )
            next_observation = np.array(next_observation, copy=True)
            self._episode_step += 1
            if self.nb_max_episode_steps is not None and self._episode_step >= self.nb_max_episode_steps:
                truncated = truncated or not terminated
            obs0.append(observation)
            actions.append(action)
            rewards.append(reward)
            terminals.append(bool(terminated))
            truncations.append(bool(truncated) and not terminated)
            obs1.append(next_observation)
            self._observation = None if (terminated or truncated) else next_observation
        return TransitionBatch(
            worker=self.index,
            generation=self.generation,
            continues=continues,
            observations=np.stack(obs0),
            actions=np.stack(actions).astype(np.float32),
            rewards=np.asarray(rewards, np.float32),
            terminals=np.asarray(terminals, bool),
            truncations=np.asarray(truncations, bool),
            next_observations=np.stack(obs1),
            weights_version=self.version,
            seconds=time.perf_counter() - start,
        )

    def close(self) -> None:
        """Closes the environment."""
        close = getattr(self.env, "close", None)
        if callable(close):
            close()


# ------------------------------------------------------------------ pools


# ------------------------------------------------------------------ the in-process pool
class InProcessPool:
    """Workers in the calling process; a request runs when its result is waited for.

    Args:
        make_worker: `make_worker(index, generation) -> RolloutWorker`.
        num_workers: the number of workers.
    """

    def __init__(self, make_worker: Callable[[int, int], RolloutWorker], num_workers: int):
        self.make_worker = make_worker
        self.generation = [0] * num_workers
        self.workers: list[RolloutWorker | None] = [make_worker(i, 0) for i in range(num_workers)]
        self.pending: list[tuple[int, int, Any, int, int]] = []

    def put_weights(self, weights: list[np.ndarray]) -> Any:
        """Returns what `submit` hands the workers for these acting weights (here, the arrays themselves)."""
        return weights

    def submit(self, index: int, nb_steps: int, weights: Any, version: int, nb_random: int) -> None:
        """Asks worker `index` for `nb_steps` steps (the first `nb_random` at random), with new weights or `None`."""
        self.pending.append((index, nb_steps, weights, version, nb_random))

    def wait(self, all_pending: bool) -> list[tuple[int, Any]]:
        """Runs the oldest request (or all of them): `[(worker index, TransitionBatch or the exception it raised)]`."""
        requests = self.pending if all_pending else self.pending[:1]
        self.pending = self.pending[len(requests) :]
        out = []
        for index, nb_steps, weights, version, nb_random in requests:
            try:
                out.append((index, self.workers[index].sample(nb_steps, weights, version, nb_random)))
            except Exception as e:  # noqa: BLE001 - a failing environment is a worker fault
                out.append((index, e))
        return out

    def restart(self, index: int) -> None:
        """Replaces worker `index` with a fresh one of the next generation (its environment closed)."""
        self.generation[index] += 1
        old, self.workers[index] = self.workers[index], None
        try:
            old.close()
        except Exception:  # noqa: BLE001 - a broken environment may not close
            pass
        self.workers[index] = self.make_worker(index, self.generation[index])

    def close(self) -> None:
        """Closes every worker's environment."""
        for worker in self.workers:
            try:
                worker.close()
            except Exception:  # noqa: BLE001
                pass


# ------------------------------------------------------------------ the learner
def last_line(error: BaseException) -> str:
    """The error's type and the last line of its message (Ray's errors carry the remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


class _Episode:
    __slots__ = ("number", "reward", "steps")

    def __init__(self, number: int):
        self.number, self.reward, self.steps = number, 0.0, 0


class WorkerLearner:
    """The learner's side of one `rl.distributed.fit` call: requests, storage, training, weight broadcasts.

    Args:
        agent: a compiled off-policy agent (it learns through `observe` and `train_scheduled`).
        pool: the workers (`InProcessPool`, or `rl.distributed`'s Ray pool): `put_weights`,
            `submit`, `wait`, `restart`, `generation`.
        env: the environment the callbacks see.
        nb_steps: steps to store and train on.
        steps_per_sample: steps per request to a worker.
        weight_sync_interval: stored steps between weight broadcasts.
        max_worker_restarts: worker restarts allowed before the last failure is raised.
    """

    def __init__(
        self,
        agent: Any,
        pool: Any,
        env: Any,
        nb_steps: int,
        steps_per_sample: int,
        weight_sync_interval: int,
        max_worker_restarts: int,
    ):
        self.agent, self.pool, self.env = agent, pool, env
        self.nb_steps = nb_steps
        self.steps_per_sample = steps_per_sample
        self.weight_sync_interval = weight_sync_interval
        self.restarts_left = max_worker_restarts
        self.num_workers = len(pool.generation)
        self.version = 0
        self.weights: Any = None
        self.worker_version = [-1] * self.num_workers
        self.outstanding = [0] * self.num_workers  # steps asked for and not yet returned, per worker
        self.unstored = 0  # steps returned and not yet stored
        self.episodes: list[_Episode | None] = [None] * self.num_workers
        self.memory_owner: tuple[int, int] | None = None  # (worker, generation) of the memory's open episode
        self.since_sync = 0
        self.produced = [False] * self.num_workers  # whether each worker returned a batch since its (re)start

    # ------------------------------------------------------------ requests
    def _publish(self) -> None:
        self.version += 1
        self.agent.sync_models()  # the current weights, wherever training keeps them
        self.weights = self.pool.put_weights(self.agent.policy_models()[0].get_weights())
        self.since_sync = 0

    def _remaining(self) -> int:
        return self.end_step - self.agent.step - sum(self.outstanding) - self.unstored

    def _request(self, index: int) -> bool:
        n = min(self.steps_per_sample, self._remaining())
        if n <= 0:
            return False
        fresh = self.worker_version[index] != self.version
        # Steps are numbered in the order they are asked for: those before nb_steps_random act at random.
        first = self.agent.step + sum(self.outstanding) + self.unstored
        nb_random = min(n, max(0, self.agent.nb_steps_random - first))
        self.pool.submit(index, n, self.weights if fresh else None, self.version, nb_random)
        self.worker_version[index] = self.version
        self.outstanding[index] += n
        return True

    def _failed(self, index: int, error: BaseException) -> None:
        failure = f"worker {index}: {last_line(error)}"
        if self.restarts_left <= 0:
            raise RuntimeError(
                f"Rollout workers failed more often than max_worker_restarts allows. Last failure: {failure}"
            ) from error
        if not self.produced[index] and self.pool.generation[index] > 0:
            raise RuntimeError(
                "A restarted rollout worker failed again before returning any transition (a restart does not help: "
                f"check env_fn and the environment). Last failure: {failure}"
            ) from error
        self.restarts_left -= 1
        warn_at_caller(f"Rollout worker {index} failed and is restarted ({last_line(error)})")
        self.outstanding[index] = 0
        self.worker_version[index] = -1
        self.produced[index] = False
        self.episodes[index] = None  # its open episode is abandoned
        self.pool.restart(index)

    # ------------------------------------------------------------ storing and training
    def _store(self, batch: TransitionBatch, cbs: CallbackList, step_logs: bool) -> None:
        agent, memory = self.agent, self.agent.memory
        index = batch.worker
        self.produced[index] = True
        owner = (index, batch.generation)
        if self.memory_owner != owner or not batch.continues:
            if hasattr(memory, "end_episode"):
                memory.end_episode()  # the memory's open episode belongs to another worker (or ended)
        if not batch.continues:
            self.episodes[index] = None
        self.memory_owner = owner
        for t in range(len(batch)):
            if agent.step >= self.end_step or agent.stop_training:
                break
            episode = self.episodes[index]
            if episode is None:
                episode = self.episodes[index] = _Episode(agent.episode)
                agent.episode += 1
                cbs.on_episode_begin(episode.number)
                agent.reset_states()
            observation, next_observation = batch.observations[t], batch.next_observations[t]
            reward, terminal, truncated = float(batch.rewards[t]), bool(batch.terminals[t]), bool(batch.truncations[t])
            metrics = agent.observe(
                observation, batch.actions[t], reward, terminal, truncated=truncated, next_observation=next_observation
            )
            agent.train_scheduled()
            agent.step += 1
            self.since_sync += 1
            episode.reward += reward
            episode.steps += 1
            if step_logs:
                cbs.on_step_end(
                    episode.steps - 1,
                    {
                        "action": batch.actions[t],
                        "observation": next_observation,
                        "reward": reward,
                        "metrics": metrics,
                        "episode": episode.number,
                        "info": {},
                        "worker": index,
                    },
                )
            if terminal or truncated:
                self.episodes[index] = None
                cbs.on_episode_end(
                    episode.number,
                    {"episode_reward": episode.reward, "nb_episode_steps": episode.steps, "nb_steps": agent.step},
                )
        if self.since_sync >= self.weight_sync_interval:
            self._publish()

    # ------------------------------------------------------------ the run
    def run(self, callbacks: list | None, verbose: int, log_interval: int, synchronous: bool) -> Any:
        """Trains `nb_steps` steps from the workers' transitions; returns the History."""
        agent = self.agent
        self.end_step = agent.step + self.nb_steps
        run = Run(
            agent,
            training=True,
            callbacks=loggers(True, verbose, log_interval) + list(callbacks or []),
            params={"nb_steps": self.nb_steps},
            env=self.env,
            end_step=self.end_step,
        )
        step_logs = run.wants("on_step_end")
        cbs = run.callbacks

        def body() -> None:
            if hasattr(agent.memory, "end_episode"):
                agent.memory.end_episode()
            self._publish()
            if synchronous:
                while agent.step < self.end_step and not agent.stop_training:
                    asked = [i for i in range(self.num_workers) if self._request(i)]
                    results = dict(self.pool.wait(all_pending=True))
                    for index in asked:  # in worker order, whatever order they finished in
                        result = results[index]
                        if isinstance(result, BaseException):
                            self._failed(index, result)
                        else:
                            self.outstanding[index] -= len(result)
                            self._store(result, cbs, step_logs)
            else:
                for index in range(self.num_workers):
                    self._request(index)
                while agent.step < self.end_step and not agent.stop_training:
                    for index, result in self.pool.wait(all_pending=False):
                        if isinstance(result, BaseException):
                            self._failed(index, result)
                            continue
                        # The worker's next request goes out first: it collects while this batch is stored.
                        self.outstanding[index] -= len(result)
                        self.unstored = len(result)
                        if not agent.stop_training:
                            self._request(index)
                        self._store(result, cbs, step_logs)
                        self.unstored = 0
                    for index in range(self.num_workers):  # restarted or idle workers get work again
                        if self.outstanding[index] == 0 and agent.step < self.end_step:
                            self._request(index)

        def cleanup() -> None:
            if hasattr(agent.memory, "end_episode"):
                agent.memory.end_episode()

        return run.execute(body, cleanup=cleanup)
