"""Offline training, the part of `OffPolicyAgent` that learns from a fixed dataset.

`OfflineTraining` holds `fit_offline` (the run itself is `rl.loops.offline.run_offline`),
`load_dataset` (the memory's transitions into TensorFlow variables, `rl.engine.dataset.GraphDataset`)
and `train_offline` (one compiled call of many updates, each on a batch drawn inside the graph).
The old names of this module stay importable: `GraphDataset`, `run_offline`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rl.engine.batch import UpdateStep
from rl.engine.dataset import GraphDataset
from rl.loops.offline import run_offline

__all__ = ["GraphDataset", "OfflineTraining", "run_offline"]


class OfflineTraining:
    """What `rl.agents.off_policy.OffPolicyAgent` adds for training from a fixed dataset.

    A mixin of `OffPolicyAgent`: it reads the agent's memory, networks, optimizers and update
    settings, and keeps the dataset in the graph between calls.
    """

    _dataset: GraphDataset | None = None  # fit_offline's data in the graph, once loaded

    def fit_offline(
        self,
        nb_steps: int,
        callbacks: list | None = None,
        verbose: int = 1,
        eval_env: Any = None,
        eval_interval: int = 10000,
        nb_eval_episodes: int = 5,
        log_interval: int = 1000,
        *,
        updates_per_call: int = 100,
        action_space: gym.spaces.Box | None = None,
    ) -> keras.callbacks.History:
        """Trains `nb_steps` gradient updates on the transitions in `agent.memory`, with no environment.

        Fill the memory from a dataset first (`SequentialMemory.from_arrays`, `.from_minari`), or
        give the agent a `rl.memory.MixedMemory` whose offline part holds it (and whose online
        part is still empty: the updates draw from the offline part). Each update is the
        algorithm's own `train_step` on a batch of `batch_size` transitions drawn uniformly from
        the memory. The data is copied into TensorFlow variables once per
        call, and the batches are drawn inside the compiled function with the agent's seed stream
        (`seed_stream`, saved in checkpoints), so one compiled call runs up to `updates_per_call`
        updates. Every optimizer group trains from the first update (the warm-up settings count
        environment steps and do not apply). Updates count in `agent.step` like environment steps
        do in `fit`, so `rl.callbacks.Checkpoint`, `EvalCallback` and `ModelIntervalCheckpoint`
        work by update; a call also ends at every multiple of a callback's `interval` (or
        `eval_interval`), where the callbacks' `on_step_end` runs with `logs["metrics"]`, the
        call's mean metrics. `agent.load_checkpoint(dirpath)` then
        `fit_offline(total - agent.step)` resumes a run exactly. Ctrl-C stops after the current
        call and returns the History.

        `fit` afterwards fine-tunes online: the same networks, optimizers and memory, and
        `agent.step` goes on from the updates (the warm-up arguments and `nb_steps_random`
        compare with it, so updates past them leave no warm-up for the online run). With a
        `MixedMemory`, the new steps go to its online part and each batch is drawn from both
        parts in its `ratio`; `TD3BCAgent.bc_weight = 0` drops the behaviour-cloning term.

        Args:
            nb_steps: number of gradient updates, >= 1.
            callbacks: `rl.callbacks.Callback`s or Keras callbacks. Defaults to `None`.
            verbose: `0` silent, `1` a progress bar and one line per `log_interval` updates,
                `2` the lines only. Defaults to `1`.
            eval_env: an environment to evaluate the policy on without noise every
                `eval_interval` updates (`rl.callbacks.EvalCallback`), or `None`. Its action
                space also gives the action bounds. Defaults to `None`.
            eval_interval: updates between evaluations, >= 1. Defaults to `10000`.
            nb_eval_episodes: episodes per evaluation, >= 1. Defaults to `5`.
            log_interval: updates per History entry (and printed line), >= 1. Defaults to `1000`.
            updates_per_call: most updates run by one compiled call, >= 1. Defaults to `100`.
            action_space: a bounded `gymnasium.spaces.Box` giving the action bounds when no
                `eval_env` does (the dataset's actions are checked against them, and algorithms
                that clip target actions use them), or `None`. Defaults to `None`.

        Returns:
            A `keras.callbacks.History` whose `history` holds, per `log_interval` updates,
            `nb_steps` (the value of `agent.step` at its end), `updates_per_second` and the mean of
            each metric of `metrics_names` (NaN where none was computed); with `eval_env`, per
            evaluation, `eval_step`, `eval_mean_return`, `eval_std_return` and
            `best_mean_return`.

        Raises:
            ValueError: before any update, if the agent is not compiled, an argument is out of
                range, the memory holds no transition or fewer than `batch_size`, the dataset's
                actions do not have `nb_actions` values or lie outside the known action bounds,
                a value is NaN or inf, the observations do not fit the networks' input or the
                evaluation environment, or the processor has a `process_state_batch`.
            TypeError: if the memory cannot be sampled in the graph (it needs
                `sampling_arrays()`, as `SequentialMemory` has; a `MixedMemory` whose online part
                holds transitions has none to give), or an argument has the wrong type.

        Example:

        ```python
        agent.memory = SequentialMemory.from_arrays(obs, actions, rewards, terminals, truncations)
        history = agent.fit_offline(20_000, eval_env=gym.make("Pendulum-v1"), eval_interval=5000)
        history.history["critic_loss"], history.history["eval_mean_return"]
        ```
        """
        return run_offline(
            self,
            nb_steps,
            callbacks=callbacks,
            verbose=verbose,
            eval_env=eval_env,
            eval_interval=eval_interval,
            nb_eval_episodes=nb_eval_episodes,
            log_interval=log_interval,
            updates_per_call=updates_per_call,
            action_space=action_space,
        )

    def load_dataset(self) -> None:
        """Copies the transitions of `memory` into the graph for `train_offline` (once per dataset).

        Reloading data of the same shapes only assigns the variables, so the traced functions
        stay valid. The memory needs `sampling_arrays()` (as `SequentialMemory` has); `fit_offline`
        checks the data first.
        """
        if self._dataset is None:
            self._dataset = GraphDataset()
        self._dataset.load(self.memory, self._input_shapes[0])

    def train_offline(self, max_updates: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Runs up to `max_updates` gradient updates in one compiled call, each on a batch drawn
        inside the graph from the data `load_dataset` copied (with `seed_stream`).

        Every optimizer group trains (no warm-up); hard target copies happen every
        `target_model_update` updates, counted over all calls. A call may run fewer updates than
        asked, to get back in phase with `update_cycle` (e.g. TD3's policy delay). `step` is left
        to the caller.

        Args:
            max_updates: the most updates to run, >= 1.

        Returns:
            `(updates run, metric sums, metric counts)`: per name of `train_metrics_names`, the
            sum of the finite values over the updates and their number.
        """
        data, cycle = self._dataset, self.update_cycle
        hard_every = int(self.target_model_update) if self.target_model_update >= 1 else 0
        first = self._updates % cycle
        if first:
            body, iterations = min(max_updates, cycle - first), 1  # back in phase with the update cycle
        elif max_updates >= cycle:
            body, iterations = cycle, max_updates // cycle
        else:
            body, iterations = max_updates, 1
        k = body * iterations
        x = np.array([iterations, self._updates % hard_every if hard_every else 0], np.float32)
        options = (data.version, first, body, hard_every)
        out = self.call_compiled(
            "offline", options, lambda f=first, b=body: self._offline_function(data, f, b, hard_every), x
        )
        self._updates += k
        m = len(self.train_metrics_names)
        sums, counts = out[:m], out[m:]
        with np.errstate(invalid="ignore", divide="ignore"):
            self._last_metrics = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
        return k, sums, counts

    def _offline_function(self, data: GraphDataset, first: int, body: int, hard_every: int):
        """The compiled offline call: `x = [iterations, hard-copy phase]`; each iteration runs `body`
        updates (update numbers `first, first + 1, ...` modulo `update_cycle`). Returns the sums
        and the counts of the finite metrics, concatenated."""
        groups = frozenset(self.warmup)
        b, a, cycle = self.batch_size, self.stored_action_size, self.update_cycle
        nb_metrics = len(self.train_metrics_names)

        def copy() -> tf.Tensor:
            self.copy_targets()
            return tf.constant(0)

        def run(x: tf.Tensor) -> tf.Tensor:
            iterations = tf.cast(x[0], tf.int32)

            def loop(i, sums, counts, phase):
                for j in range(body):
                    batch = data.sample(self.seed_stream.next(), b, a)
                    step = UpdateStep(groups, (first + j) % cycle)
                    m = self._metric_vector(self.train_step(self.nets, batch, step))  # [M]
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
