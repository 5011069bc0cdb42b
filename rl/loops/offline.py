"""A fixed dataset: the source behind `OffPolicyAgent.fit_offline`.

No environment is involved. The agent copies its memory's transitions into the graph once
(`load_dataset`), then each compiled call (`train_offline`) runs many updates, each on a batch
drawn inside the graph. This module checks the data, cuts the run into calls that end where a
log interval or a callback's interval ends, counts the updates in `agent.step`, and keeps the
History: per `log_interval` updates, the metrics' means and `updates_per_second`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from rl.callbacks import EvalCallback
from rl.core import Processor
from rl.loops.run import Run
from rl.memory import TransitionRows
from rl.util import check_int

__all__ = ["run_offline"]


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
    layout = TransitionRows.from_width(rows.shape[1])
    width = layout.action_size
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
    sampled = rows[indices]  # [N, A + 2]
    for values, name in ((layout.action(sampled), "actions"), (layout.reward(sampled), "rewards")):
        if not np.isfinite(values).all():
            raise ValueError(f"The dataset's {name} hold NaN or inf. Received: non-finite {name} in agent.memory")
    low, high = agent.action_bounds
    if low is not None:
        actions = layout.action(sampled)  # [N, A]
        outside = (actions < low) | (actions > high)
        if outside.any():
            k = int(np.argmax(outside.any(axis=1)))
            raise ValueError(
                f"The dataset's actions must lie in the action space [{low.tolist()}, {high.tolist()}]; "
                f"{int(outside.any(axis=1).sum())} do not. Received: actions={actions[k].tolist()} (memory slot "
                f"{int(indices[k])})"
            )
    return obs.shape[1:]


def run_offline(
    agent: Any,
    nb_steps: int,
    *,
    callbacks: list | None = None,
    verbose: int = 1,
    eval_env: Any = None,
    eval_interval: int = 10000,
    nb_eval_episodes: int = 5,
    log_interval: int = 1000,
    updates_per_call: int = 100,
    action_space: Any = None,
) -> keras.callbacks.History:
    """`OffPolicyAgent.fit_offline`'s body: see its docstring for the arguments."""
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
            agent.set_action_bounds(action_space.low.astype(np.float32), action_space.high.astype(np.float32))
    if eval_env is not None:
        if not (callable(getattr(eval_env, "reset", None)) and callable(getattr(eval_env, "step", None))):
            raise TypeError(f"`eval_env` must be a gymnasium environment. Received: eval_env={eval_env!r}")
        agent.check_env(eval_env)  # the action bounds, and the observation shape the networks take
    arrays = memory.sampling_arrays()
    obs_shape = _check_data(agent, arrays, nb_steps)
    space = getattr(eval_env, "observation_space", None)
    if space is not None and getattr(space, "shape", None) is not None and tuple(space.shape) != obs_shape:
        raise ValueError(
            f"The dataset's observations have shape {obs_shape}, the evaluation environment's "
            f"{tuple(space.shape)}. Received: eval_env.observation_space={space!r}"
        )
    agent.prepare_inputs(np.zeros(obs_shape, arrays["observations"].dtype), source="the dataset's observation shape")
    if len(agent.input_shapes) != 1:
        raise ValueError(
            f"fit_offline supports networks with one observation input. Received: {len(agent.input_shapes)} inputs"
        )
    agent.load_dataset()

    callbacks = list(callbacks or [])
    eval_cb = None
    if eval_env is not None:
        eval_cb = EvalCallback(eval_env, eval_interval, nb_eval_episodes, verbose=int(verbose > 0))
    extra = [eval_cb] if eval_cb else []
    # Calls end where a callback acts (every `interval` updates of agent.step), so it sees its steps.
    step_intervals = [
        value
        for cb in callbacks + extra
        for value in (getattr(cb, n, None) for n in ("interval", "eval_interval", "update_freq"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    names = agent.train_metrics_names
    run = Run(
        agent,
        training=True,
        callbacks=callbacks + extra,
        params={"nb_steps": nb_steps},
        end_step=agent.step + nb_steps,
        reset_states=False,
    )
    progress = _Progress(run.history, names, verbose, log_interval, nb_steps)
    nb_transitions = len(arrays["indices"])

    def body() -> None:
        if verbose:
            print(f"Training offline for {nb_steps} updates on {nb_transitions} transitions ...")
        progress.start(0)
        done = 0
        while done < nb_steps and not agent.stop_training:
            n = min(updates_per_call, nb_steps - done, log_interval - done % log_interval)
            n = min([n] + [i - agent.step % i for i in step_intervals])
            k, sums, counts = agent.train_offline(n)
            agent.step += k
            done += k
            progress.add(k, sums, counts)
            if done % log_interval == 0 or done == nb_steps:
                progress.end(agent.step)
                if done < nb_steps:
                    progress.start(done)
            run.callbacks.on_step_end(agent.step - 1, {"metrics": agent.last_metrics, "nb_steps": agent.step})

    return run.execute(body, on_abort=lambda: progress.end(agent.step))


class _Progress:
    """The History rows (one per `log_interval` updates) and the progress display of an offline run."""

    def __init__(self, history: Any, names: list[str], verbose: int, log_interval: int, nb_steps: int):
        self.history, self.names, self.verbose = history, names, verbose
        self.log_interval, self.nb_steps = log_interval, nb_steps
        self.progbar: Any = None
        self.sums, self.counts, self.updates, self.started = np.zeros(len(names)), np.zeros(len(names)), 0, 0.0

    def start(self, done: int) -> None:
        self.sums, self.counts = np.zeros(len(self.names)), np.zeros(len(self.names))
        self.updates, self.started = 0, time.perf_counter()
        if self.verbose == 1:
            self.progbar = keras.utils.Progbar(target=min(self.log_interval, self.nb_steps - done), interval=0.5)

    def add(self, k: int, sums: np.ndarray, counts: np.ndarray) -> None:
        self.sums += sums
        self.counts += counts
        self.updates += k
        if self.progbar is not None:
            self.progbar.update(self.updates)

    def end(self, step: int) -> None:
        n = self.updates
        if not n:
            return
        seconds = max(time.perf_counter() - self.started, 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self.sums / self.counts
        row = {"nb_steps": step, "updates_per_second": n / seconds}
        row.update({name: float(v) if np.isfinite(v) else math.nan for name, v in zip(self.names, means)})
        for key, value in row.items():
            self.history.history.setdefault(key, []).append(value)
        if self.verbose:
            if self.progbar is not None:
                self.progbar.update(n, finalize=True)
            shown = ", ".join(f"{k}: {v:.4g}" for k, v in row.items() if k != "nb_steps")
            print(f"{step} updates: {shown}")
