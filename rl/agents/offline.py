"""Offline training: a replay memory's data inside the graph, sampled there, many updates per call.

`OffPolicyAgent.fit_offline` uses this module. The memory's storage is copied once into
TensorFlow variables (`GraphDataset`); one compiled call then runs a `tf.while_loop` whose body
draws each batch with the agent's stateless seed stream (`DeepAgent.seed_stream`, saved in
checkpoints) and hands it to the algorithm's own `train_step(nets, batch, step)`, unchanged.
No environment is involved and no batch crosses from Python to the graph.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.agents.off_policy import GraphBatch, UpdateStep
from rl.callbacks import CallbackList, EvalCallback
from rl.core import Processor
from rl.util import check_int

__all__ = ["GraphDataset", "run_offline"]


class GraphDataset:
    """A replay memory's storage in TensorFlow variables, sampled inside compiled functions.

    `load(memory, input_shape)` copies what `memory.sampling_arrays()` returns; reloading data of
    the same shapes only assigns the variables, so the traced functions stay valid. `version`
    changes when the variables are replaced (the functions reading them must then be traced anew).
    """

    def __init__(self) -> None:
        self.version = 0
        self._vars: dict[str, tf.Variable] | None = None
        self._key: tuple | None = None

    def load(self, memory: Any, input_shape: tuple[int, ...]) -> None:
        """Copies `memory`'s transitions into the variables the compiled sampler reads (once per dataset)."""
        arrays = memory.sampling_arrays()
        obs = arrays["observations"]
        store = obs if obs.dtype.kind == "f" else obs.astype(np.float32)
        key = (store.shape, arrays["rows"].shape, memory.window_length, memory.ignore_episode_boundaries, input_shape)
        values = {
            "observations": store,
            "rows": arrays["rows"],
            "episode_step": arrays["episode_step"].astype(np.int64),
            "indices": arrays["indices"],
        }
        if self._vars is not None and key == self._key:
            for name, value in values.items():
                self._vars[name].assign(value)
            return
        self._vars = {
            name: tf.Variable(value, False, name=f"offline_{name}", shape=[None] if name == "indices" else None)
            for name, value in values.items()
        }
        self._key = key
        self.limit = int(store.shape[0])
        self.window_length = int(memory.window_length)
        self.ignore_episode_boundaries = bool(memory.ignore_episode_boundaries)
        self.input_shape = tuple(input_shape)
        self.version += 1

    def sample(self, seed: tf.Tensor, batch_size: int, action_size: int) -> GraphBatch:
        """In the graph: `batch_size` transitions drawn uniformly (with replacement) with `seed`."""
        v = self._vars
        n = tf.shape(v["indices"], out_type=tf.int64)[0]
        zero = tf.constant(0, tf.int64)
        draw = tf.random.stateless_uniform([batch_size], seed, minval=zero, maxval=n, dtype=tf.int64)
        idx = tf.gather(v["indices"], draw)  # [B] slots
        nxt = (idx + 1) % self.limit  # the next observation's slot
        if self.window_length == 1:
            s0, s1 = tf.gather(v["observations"], idx), tf.gather(v["observations"], nxt)  # [B, *obs]
        else:
            step = tf.gather(v["episode_step"], idx)  # [B]
            s0, s1 = self._windows(idx, step), self._windows(idx + 1, step + 1)  # [B, W, *obs]
        shape = (batch_size,) + self.input_shape
        s0, s1 = (tf.reshape(tf.cast(s, tf.float32), shape) for s in (s0, s1))
        rows = tf.gather(v["rows"], idx)  # [B, A + 2]
        a = action_size
        return GraphBatch(s0, rows[:, :a], rows[:, a], rows[:, a + 1], s1)

    def _windows(self, idx: tf.Tensor, episode_step: tf.Tensor) -> tf.Tensor:
        """As `SequentialMemory._windows`: `[B, W, *obs]`, zeros before the episode's start."""
        offsets = tf.range(-(self.window_length - 1), 1, dtype=tf.int64)  # [W]
        positions = (idx[:, None] + offsets[None, :]) % self.limit  # [B, W]
        states = tf.gather(self._vars["observations"], positions)  # [B, W, *obs]
        if self.ignore_episode_boundaries:
            return states
        inside = tf.cast(-offsets[None, :] <= episode_step[:, None], states.dtype)  # [B, W]
        return states * tf.reshape(inside, tf.concat([tf.shape(inside), tf.ones([tf.rank(states) - 2], tf.int32)], 0))


def _offline_function(agent: Any, data: GraphDataset, first: int, body: int, hard_every: int):
    """The compiled offline call: `x = [iterations, hard-copy phase]`; each iteration runs `body`
    updates (update numbers `first, first + 1, ...` modulo the agent's `update_cycle`). Returns
    the sums and the counts of the finite metrics, concatenated."""
    groups = frozenset(agent.warmup)
    b, a, cycle = agent.batch_size, agent.stored_action_size, agent.update_cycle
    nb_metrics = len(agent.base_metrics) + len(agent._metric_fns)

    def copy() -> tf.Tensor:
        agent.copy_targets()
        return tf.constant(0)

    def run(x: tf.Tensor) -> tf.Tensor:
        iterations = tf.cast(x[0], tf.int32)

        def loop(i, sums, counts, phase):
            for j in range(body):
                batch = data.sample(agent.seed_stream.next(), b, a)
                step = UpdateStep(groups, (first + j) % cycle)
                m = agent._metric_vector(agent.train_step(agent.nets, batch, step))  # [M]
                finite = tf.math.is_finite(m)
                sums = sums + tf.where(finite, m, 0.0)
                counts = counts + tf.cast(finite, tf.float32)
                if hard_every:  # a hard target copy after every `hard_every`-th update
                    phase = (phase + 1) % hard_every
                    tf.cond(tf.equal(phase, 0), copy, lambda: tf.constant(0))
            return i + 1, sums, counts, phase

        zeros = tf.zeros([nb_metrics], tf.float32)
        start = (tf.constant(0), zeros, zeros, tf.cast(x[1], tf.int32))
        _, sums, counts, _ = tf.while_loop(lambda i, *_: i < iterations, loop, start, parallel_iterations=1)
        return tf.concat([sums, counts], 0)

    return run


def _check_data(agent: Any, arrays: dict, nb_steps: int) -> np.ndarray:
    """Every check on the memory's data before training (raises naming the array); returns the
    dataset's observation shape."""
    memory = agent.memory
    indices = arrays["indices"]
    if arrays["observations"] is None or len(indices) == 0:
        raise ValueError(
            "fit_offline needs transitions in `agent.memory` to train on, and it holds none that can be sampled. "
            "Fill it first, e.g. `SequentialMemory.from_arrays(...)` or `SequentialMemory.from_minari(...)`. "
            f"Received: memory.nb_transitions={getattr(memory, 'nb_transitions', 0)}"
        )
    if len(indices) < agent.batch_size:
        raise ValueError(
            f"The dataset holds {len(indices)} transitions that can be sampled, fewer than one batch: use a "
            f"batch_size of at most {len(indices)} or more data. Received: batch_size={agent.batch_size}"
        )
    obs, rows = arrays["observations"], arrays["rows"]
    width = rows.shape[1] - 2
    if width != agent.stored_action_size:
        raise ValueError(
            f"The dataset's actions have {width} values each, but the agent takes {agent.stored_action_size} "
            f"(nb_actions={agent.nb_actions}). Received: actions of shape (N, {width}) in agent.memory"
        )
    used = np.unique(np.concatenate([indices, (indices + 1) % len(obs)]))
    if obs.dtype.kind == "f" and not np.isfinite(obs[used]).all():
        raise ValueError(
            "The dataset's observations hold NaN or inf. Received: non-finite observations in agent.memory"
        )
    for column, name in ((slice(0, width), "actions"), (width, "rewards")):
        values = rows[indices, column]
        if not np.isfinite(values).all():
            raise ValueError(f"The dataset's {name} hold NaN or inf. Received: non-finite {name} in agent.memory")
    if agent._low is not None:
        actions = rows[indices, :width]  # [N, A]
        outside = (actions < agent._low) | (actions > agent._high)
        if outside.any():
            k = int(np.argmax(outside.any(axis=1)))
            raise ValueError(
                f"The dataset's actions must lie in the action space [{agent._low.tolist()}, {agent._high.tolist()}]; "
                f"{int(outside.any(axis=1).sum())} do not. Received: actions={actions[k].tolist()} (memory slot "
                f"{int(indices[k])})"
            )
    return obs.shape[1:]


def run_offline(
    agent: Any,
    nb_steps: int,
    callbacks: list | None,
    verbose: int,
    eval_env: Any,
    eval_interval: int,
    nb_eval_episodes: int,
    log_interval: int,
    updates_per_call: int,
    action_space: Any,
) -> keras.callbacks.History:
    """`OffPolicyAgent.fit_offline`'s body (see its docstring)."""
    if not agent.compiled:
        raise ValueError("You must call `compile()` before calling `fit_offline()`.")
    nb_steps = check_int("nb_steps", nb_steps, minimum=1)
    log_interval = check_int("log_interval", log_interval, minimum=1)
    eval_interval = check_int("eval_interval", eval_interval, minimum=1)
    nb_eval_episodes = check_int("nb_eval_episodes", nb_eval_episodes, minimum=1)
    updates_per_call = check_int("updates_per_call", updates_per_call, minimum=1)
    verbose = check_int("verbose", verbose, minimum=0)
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"`callbacks` must be a list. Received: callbacks={callbacks!r}")
    memory = agent.memory
    if not callable(getattr(memory, "sampling_arrays", None)):
        raise TypeError(
            "fit_offline samples inside the compiled step and needs a memory with `sampling_arrays()`, such as "
            f"rl.memory.SequentialMemory. Received: memory={memory!r}"
        )
    if memory.window_length != agent.window_length:
        raise ValueError(
            f"The memory's window_length must be the one the agent was built with ({agent.window_length}). "
            f"Received: memory.window_length={memory.window_length}"
        )
    processor = agent.processor
    if processor is not None and type(processor).process_state_batch is not Processor.process_state_batch:
        raise ValueError(
            "fit_offline samples its batches inside the compiled step, where a Processor's process_state_batch "
            "cannot run: store processed observations in the memory and use a processor without "
            f"process_state_batch. Received: processor={processor!r}"
        )
    if action_space is not None:
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (agent.nb_actions,):
            raise ValueError(
                f"`action_space` must be a gymnasium.spaces.Box of shape ({agent.nb_actions},). "
                f"Received: action_space={action_space!r}"
            )
        if np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)):
            agent._set_action_bounds(action_space.low.astype(np.float32), action_space.high.astype(np.float32))
    if eval_env is not None:
        if not (callable(getattr(eval_env, "reset", None)) and callable(getattr(eval_env, "step", None))):
            raise TypeError(f"`eval_env` must be a gymnasium environment. Received: eval_env={eval_env!r}")
        agent._check_env(eval_env)  # the action bounds, and the observation shape the networks take
    arrays = memory.sampling_arrays()
    obs_shape = _check_data(agent, arrays, nb_steps)
    space = getattr(eval_env, "observation_space", None)
    if space is not None and getattr(space, "shape", None) is not None and tuple(space.shape) != obs_shape:
        raise ValueError(
            f"The dataset's observations have shape {obs_shape}, the evaluation environment's "
            f"{tuple(space.shape)}. Received: eval_env.observation_space={space!r}"
        )
    agent._setup_inputs(np.zeros(obs_shape, arrays["observations"].dtype), source="the dataset's observation shape")
    if len(agent._input_shapes) != 1:
        raise ValueError(
            f"fit_offline supports networks with one observation input. Received: {len(agent._input_shapes)} inputs"
        )
    data = getattr(agent, "_offline_data", None)
    if data is None:
        data = agent._offline_data = GraphDataset()
    data.load(memory, agent._input_shapes[0])

    callbacks = list(callbacks or [])
    eval_cb = None
    if eval_env is not None:
        eval_cb = EvalCallback(eval_env, eval_interval, nb_eval_episodes, verbose=int(verbose > 0))
    history = keras.callbacks.History()
    cbs = CallbackList(callbacks + ([eval_cb] if eval_cb else []) + [history])
    cbs.set_model(agent)
    cbs.set_params({"nb_steps": nb_steps})
    # Calls end where a callback acts (every `interval` updates of agent.step), so it sees its steps.
    step_intervals = [
        value
        for cb in callbacks + ([eval_cb] if eval_cb else [])
        for value in (getattr(cb, n, None) for n in ("interval", "eval_interval", "update_freq"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    hard_every = int(agent.target_model_update) if agent.target_model_update >= 1 else 0
    cycle = agent.update_cycle
    names = list(agent.base_metrics) + list(agent._metric_names)

    nested, outer = agent._running, (agent.training, agent.stop_training)
    agent._plan_run(agent.step + nb_steps)
    agent._on_run_begin(True)
    agent._running, agent.training, agent.stop_training = True, True, False
    did_abort = False
    done = 0
    interval = {"sums": np.zeros(len(names)), "counts": np.zeros(len(names)), "updates": 0, "start": 0.0}
    progbar = None

    def start_interval() -> None:
        nonlocal progbar
        interval.update(sums=np.zeros(len(names)), counts=np.zeros(len(names)), updates=0, start=time.perf_counter())
        if verbose == 1:
            progbar = keras.utils.Progbar(target=min(log_interval, nb_steps - done), interval=0.5)

    def end_interval() -> None:
        n = interval["updates"]
        if not n:
            return
        seconds = max(time.perf_counter() - interval["start"], 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = interval["sums"] / interval["counts"]
        row = {"nb_steps": agent.step, "updates_per_second": n / seconds}
        row.update({name: float(v) if np.isfinite(v) else math.nan for name, v in zip(names, means)})
        for key, value in row.items():
            history.history.setdefault(key, []).append(value)
        if verbose:
            if progbar is not None:
                progbar.update(n, finalize=True)
            shown = ", ".join(f"{k}: {v:.4g}" for k, v in row.items() if k != "nb_steps")
            print(f"{agent.step} updates: {shown}")

    try:
        cbs.on_train_begin()
        if verbose:
            print(f"Training offline for {nb_steps} updates on {len(arrays['indices'])} transitions ...")
        start_interval()
        while done < nb_steps and not agent.stop_training:
            n = min(updates_per_call, nb_steps - done, log_interval - done % log_interval)
            n = min([n] + [i - agent.step % i for i in step_intervals])
            first = agent._updates % cycle
            if first:
                body, iterations = min(n, cycle - first), 1  # back in phase with the update cycle
            elif n >= cycle:
                body, iterations = cycle, n // cycle
            else:
                body, iterations = n, 1
            k = body * iterations
            x = np.array([iterations, agent._updates % hard_every if hard_every else 0], np.float32)
            options = (data.version, first, body, hard_every)
            out = agent.call_compiled(
                "offline", options, lambda f=first, b=body: _offline_function(agent, data, f, b, hard_every), x
            )
            agent._updates += k
            agent.step += k
            done += k
            sums, counts = out[: len(names)], out[len(names) :]
            interval["sums"] += sums
            interval["counts"] += counts
            interval["updates"] += k
            with np.errstate(invalid="ignore", divide="ignore"):
                agent._last_metrics = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
            if progbar is not None:
                progbar.update(interval["updates"])
            if done % log_interval == 0 or done == nb_steps:
                end_interval()
                if done < nb_steps:
                    start_interval()
            cbs.on_step_end(agent.step - 1, {"metrics": agent._last_metrics, "nb_steps": agent.step})
    except KeyboardInterrupt:
        did_abort = True
        end_interval()
    finally:
        agent.training = False
        agent._on_run_end(True)
        agent._running = nested
        if nested:
            agent.training, agent.stop_training = outer[0], outer[1] or did_abort
            agent._on_run_begin(outer[0])
    cbs.on_train_end({"did_abort": did_abort})
    agent.history = history
    return history
