"""The `Agent` contract and `Processor`.

`Agent.fit` and `Agent.test` check their arguments and hand the run to `rl.loops` (one
environment: `rl.loops.episode`; a vector environment: `rl.loops.vector`); checkpoints are
written and read by `rl.checkpoint`. This module holds what an agent is: what a subclass
implements, the hooks it may override, and the public methods the loops call (the protocol).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from rl import checkpoint as _checkpoint
from rl.loops import episode as _episode
from rl.loops import vector as _vector
from rl.loops.run import loggers
from rl.util import check_int

__all__ = ["Agent", "Processor"]


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

    def export_metadata(self) -> dict:
        """What an export records about the processor: its class, and the hooks the program serving
        the export applies itself (`process_observation` and `process_action`, where overridden)."""
        hooks = ("process_observation", "process_action")
        caller = [name for name in hooks if getattr(type(self), name) is not getattr(Processor, name)]
        return {"class": type(self).__name__, "caller_applies": caller}

    def export_state_batch(self, batch: Any) -> Any:
        """In the graph, for `Agent.export`: what `process_state_batch` does, with TensorFlow ops.

        `batch` is a float32 tensor `(B, window_length) + obs_shape`; return a tensor or a list of
        tensors, one per network input. Defaults to the batch itself when `process_state_batch` is
        not overridden; a processor that overrides it implements this to be exportable. The
        processor's `process_observation`, `process_reward` and `process_action` are not part of an
        export: the program serving it applies them (the export's metadata lists them).

        Raises:
            NotImplementedError: if `process_state_batch` is overridden and this is not.
        """
        if type(self).process_state_batch is not Processor.process_state_batch:
            raise NotImplementedError(type(self).__name__)
        return batch

    @property
    def metrics(self) -> list[float]:
        """Extra metrics reported with the agent's. Defaults to none."""
        return []

    @property
    def metrics_names(self) -> list[str]:
        """Names of `metrics`."""
        return []


# Hooks that were private before the run loop moved to `rl.loops`: a subclass that still defines an
# old name keeps working (with a DeprecationWarning), and `super()._old_name(...)` still reaches the
# parent's implementation. See `Agent.__init_subclass__`.
RENAMED_HOOKS = {
    "_check_env": "check_env",
    "_plan_run": "plan_run",
    "_on_run_begin": "on_run_begin",
    "_on_run_end": "on_run_end",
    "_end_episode": "abandon_episode",
    "_nonfinite_weights": "nonfinite_weights",
    "_save_checkpoint_files": "save_checkpoint_files",
    "_read_checkpoint_files": "read_checkpoint_files",
    "_apply_checkpoint_files": "apply_checkpoint_files",
    "_load_checkpoint_files": "load_checkpoint_files",
    "_checkpoint_state": "checkpoint_state",
    "_validate_checkpoint_state": "validate_checkpoint_state",
    "_restore_checkpoint_state": "restore_checkpoint_state",
    "_finish_action": "finish_action",
}


def _bridge_renamed_hooks(cls: type, warn: bool) -> None:
    own = cls.__dict__
    for old, new in RENAMED_HOOKS.items():
        if old in own and new not in own:
            if warn:
                warnings.warn(
                    f"{cls.__name__}.{old} is deprecated: name the hook {new} instead (see the guide "
                    "'Writing a new agent').",
                    DeprecationWarning,
                    stacklevel=3,
                )
            setattr(cls, new, own[old])
        elif new in own and old not in own:
            setattr(cls, old, own[new])


class Agent:
    """Base class of all agents: `compile`, `fit`, `test`, checkpoints.

    **What a subclass implements**: `forward(observation) -> action`, `backward(reward, terminal,
    truncated=False, next_observation=None) -> metrics`, `compile`, `layers`, `metrics_names`,
    `save_weights` and `load_weights`. The loops of `rl.loops` do the rest (resets, action
    repetition, time limits, callbacks, logging, Ctrl-C).

    **Hooks a subclass may override** (each has a default):

    - `reset_states()`: at the start of every episode;
    - `check_env(env)`: when a run starts, to refuse an environment that does not fit;
    - `plan_run(end_step)`: before a training run, with the step at which it will end;
    - `on_run_begin(training)` / `on_run_end(training)`: when a run starts, and when it stops
      however it stops (errors and Ctrl-C included);
    - keras-rl's `_on_train_begin()` / `_on_test_begin()`: after the callbacks' `on_train_begin`;
    - `abandon_episode()`: when a run stops in the middle of an episode;
    - `nonfinite_weights()`: names the networks with NaN or inf, for the non-finite-action error;
    - checkpoints: `save_checkpoint_files(folder)`, then `read_checkpoint_files(folder, state)`
      and `apply_checkpoint_files(staged)` (or the one-phase `load_checkpoint_files`).

    **What the loops call** (the protocol, besides `forward`, `backward` and the hooks):
    `begin_run(training, end_step)` / `end_run(training, aborted)` (the run's mode, nested
    runs), `run_started(training)` (keras-rl's hooks), `sync_models()` / `reload_models()` (around
    the hooks of callbacks that may touch weights), `np_random` (the agent's generator),
    `step`, `episode`, `training`, `stop_training`, `processor`. Agents that act for many
    environments at once add `forward_batch` / `backward_batch` (see
    `rl.agents.off_policy.OffPolicyAgent`).

    An agent written for keras-rl, with `backward(self, reward, terminal)`, runs as keras-rl
    ran it: `terminal` is true when the episode ended (a time limit included), and after each
    episode one more `forward(final_observation)` and `backward(0.0, terminal=False)`. A
    processor with `get_state` / `set_state` is saved in checkpoints. Hooks named as before
    (`_check_env`, `_on_run_begin`, `_finish_action`, ...: the names in `RENAMED_HOOKS`) still
    work, with a `DeprecationWarning`.

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
        stop_training: set it (e.g. from a callback) to end the current run after this step.
    """

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _bridge_renamed_hooks(cls, warn=not cls.__module__.startswith("rl."))

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
        self._outer_runs: list[tuple] = []  # the state of the runs this one started inside (innermost last)

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

    # ------------------------------------------------------------------- hooks
    def reset_states(self) -> None:
        """Called at the start of every episode: resets recurrent state and exploration noise."""

    def check_env(self, env: Any) -> None:
        """Called when a run starts: raise a `TypeError` / `ValueError` naming the space if the
        environment does not fit the agent. A vector environment is checked through one
        sub-environment's spaces (`action_space`, `observation_space`)."""

    def abandon_episode(self) -> None:
        """Called when an episode is abandoned without ending (the run stopped in its middle)."""

    def plan_run(self, end_step: int) -> None:
        """Called before a training run starts, with the value of `step` at which it will end.

        For choices that depend on how long the agent trains (`DeepAgent`: XLA or not).
        """

    def on_run_begin(self, training: bool) -> None:
        """Called at the start of a run (training=True for `fit` and `fit_offline`), after the
        environment checks, and again when a run started inside it ends."""

    def on_run_end(self, training: bool) -> None:
        """Called when a run stops, however it stops (also on errors and Ctrl-C)."""

    def _on_train_begin(self) -> None:
        """keras-rl's hook: called when `fit` starts, after the callbacks' `on_train_begin`."""

    def _on_test_begin(self) -> None:
        """keras-rl's hook: called when `test` starts, after the callbacks' `on_train_begin`."""

    def nonfinite_weights(self) -> list[str]:
        """Names the networks whose weights hold NaN or inf, to explain a non-finite action.

        Called only when `forward` returned a non-finite action, after the run has ended (so after
        `on_run_end`: weights kept elsewhere during a run are back in the models). The names are
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

    # ---------------------------------------------------- what the loops call
    @property
    def np_random(self) -> np.random.Generator:
        """The agent's numpy generator: seeded by `fit(seed=...)` and saved in checkpoints.

        Draws the agent's own randomness (random actions, start steps, noise seeds of vector runs).
        """
        return self._rng

    @np_random.setter
    def np_random(self, generator: np.random.Generator) -> None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"`np_random` must be a numpy Generator. Received: np_random={generator!r}")
        self._rng = generator

    @property
    def running(self) -> bool:
        """Whether a run (`fit`, `test`, `fit_offline`, ...) is in progress."""
        return bool(self._outer_runs)

    def sync_models(self) -> None:
        """Brings the models' own variables up to date during a run (for agents that train a copy of
        their weights, as `rl.engine.DeepAgent` does). Defaults to nothing: the models are the state."""

    def reload_models(self) -> None:
        """Takes what code outside the agent wrote into the models' variables during a run back into
        the weights it trains (the counterpart of `sync_models`). Defaults to nothing."""

    def begin_run(self, training: bool, end_step: int | None = None) -> None:
        """Enters a run: plans it, calls `on_run_begin`, sets `training` and clears `stop_training`.

        A run may start inside another (`test` from a callback during `fit`, e.g.
        `rl.callbacks.EvalCallback`): the outer run's mode is kept and handed back by `end_run`.

        Args:
            training: whether the run trains.
            end_step: with `training`, the value of `step` at which the run will end.
        """
        self._outer_runs.append((self.training, self.stop_training))
        if training and end_step is not None:
            self.plan_run(end_step)
        self.on_run_begin(training)
        self.training = training
        self.stop_training = False

    def run_started(self, training: bool) -> None:
        """Called by the run right after the callbacks' `on_train_begin`: keras-rl's hooks."""
        self._on_train_begin() if training else self._on_test_begin()

    def end_run(self, training: bool, aborted: bool = False, reset_states: bool = True) -> None:
        """Leaves the run `begin_run` entered: calls `on_run_end`; a run started inside another
        hands the outer run back its mode and stop flag (Ctrl-C stops it too), calls
        `on_run_begin` for it and, with `reset_states`, starts a fresh episode state for it
        (the nested run's episodes reset it)."""
        outer_training, outer_stop = self._outer_runs.pop()
        self.training = False
        self.on_run_end(training)
        if self._outer_runs:
            self.training, self.stop_training = outer_training, outer_stop or aborted
            self.on_run_begin(outer_training)
            if reset_states:
                self.reset_states()

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
                weights, see `nonfinite_weights`); if an observation holds NaN or inf or changes
                shape during the run, or a reward is not finite or not a scalar.
            TypeError: if the environment does not follow gymnasium's API, or returns (or the
                processor makes) a `None` observation or a reward that is not a number.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `fit()`.")
        nb_steps = check_int("nb_steps", nb_steps, minimum=1)
        log_interval = check_int("log_interval", log_interval, minimum=1)
        options = dict(
            training=True,
            nb_steps=nb_steps,
            nb_episodes=None,
            action_repetition=action_repetition,
            callbacks=loggers(True, verbose, log_interval) + list(callbacks or []),
            nb_max_start_steps=nb_max_start_steps,
            nb_max_episode_steps=nb_max_episode_steps,
            seed=seed,
        )
        if updates_per_vector_step is not None or _vector.is_vector_env(env):
            return _vector.run_vector(self, env, updates_per_vector_step=updates_per_vector_step, **options)
        return _episode.run_episodes(self, env, visualize=visualize, start_step_policy=start_step_policy, **options)

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
        options = dict(
            training=False,
            nb_steps=None,
            nb_episodes=nb_episodes,
            action_repetition=action_repetition,
            callbacks=loggers(False, verbose) + list(callbacks or []),
            nb_max_start_steps=nb_max_start_steps,
            nb_max_episode_steps=nb_max_episode_steps,
            seed=seed,
        )
        if _vector.is_vector_env(env):
            return _vector.run_vector(self, env, **options)
        return _episode.run_episodes(self, env, visualize=visualize, start_step_policy=start_step_policy, **options)

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike, format: str = "saved_model", overwrite: bool = False) -> str:
        """Writes the test-mode policy as a self-contained SavedModel or LiteRT file (see `rl.export`).

        The artifact's serving function takes a float32 batch of observations `[B, *obs_shape]`
        (windows `[B, window_length, *obs_shape]` when `window_length > 1`), as `forward` receives
        them, and returns what `forward` returns in test mode (`action`; value-based agents also
        their Q-values). It needs neither this library nor Python to run: TF Serving, TensorFlow,
        or LiteRT's interpreter.

        Args:
            path: the folder (`"saved_model"`) or file (`"tflite"`) to write.
            format: `"saved_model"` or `"tflite"`. Defaults to `"saved_model"`.
            overwrite: replace what is at `path`. Defaults to `False`.

        Returns:
            `path`.

        Raises:
            ValueError: for an unknown format, an agent not compiled or that has not seen an
                observation yet, a processor whose `process_state_batch` has no
                `export_state_batch`, or a test policy the export cannot express.
            FileExistsError: if `path` exists and `overwrite` is `False`.
            PermissionError: if the folder to write into is read-only (missing folders are created).
        """
        from rl.export import export_policy  # TensorFlow's converters load only when exporting

        return export_policy(self, path, format=format, overwrite=overwrite)

    def serving_policy(self) -> Any:
        """What `export` writes: an `rl.export.ServingPolicy` (the graph function of the test-mode
        policy, its input shape, the models it reads, metadata). Agents that can be exported
        implement it."""
        raise ValueError(f"{type(self).__name__} cannot be exported. Received: agent={self!r}")

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
        return _checkpoint.save(self, dirpath, env)

    def load_checkpoint(self, dirpath: str | os.PathLike, env: Any = None) -> None:
        """Restores a checkpoint written by `save_checkpoint` (the agent must be built and compiled
        the same way). Pass the environment to restore its RNG states as well.

        All or nothing: every file's SHA-256 and every field the base class owns (format, agent
        class, `step`, `episode`, the RNG states) are checked, then the agent reads and checks its
        own files (`read_checkpoint_files`), and only then is anything changed: the agent's state
        first (`apply_checkpoint_files`), then the counters and the RNG states.

        Raises:
            ValueError: naming the file (and the field), if the folder holds no checkpoint, a file
                is missing, damaged or hand-edited, or the checkpoint was written by another kind
                of agent or architecture.
        """
        if not self.compiled:
            raise ValueError("You must call `compile()` before calling `load_checkpoint()`.")
        _checkpoint.load(self, dirpath, env)

    def save_checkpoint_files(self, folder: str) -> dict:
        """Writes the agent's own files into `folder`; returns JSON-compatible extra state (a dict)."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")

    def read_checkpoint_files(self, folder: str, state: dict) -> Any:
        """Reads and checks everything `save_checkpoint_files` wrote, changing nothing.

        The first phase of `load_checkpoint`: read every file of `folder` the agent needs and check
        it against the agent (shapes, counts, configuration), together with `state`, the dict
        `save_checkpoint_files` returned. The files' checksums were verified already.

        Returns:
            Whatever `apply_checkpoint_files` needs to restore the agent. Defaults to
            `(folder, state)`, for agents that only implement `load_checkpoint_files`.

        Raises:
            ValueError: naming the file and the field, if anything does not fit the agent.
        """
        return folder, state

    def apply_checkpoint_files(self, staged: Any) -> None:
        """Restores the agent from what `read_checkpoint_files` returned: the second phase of
        `load_checkpoint`, which must not fail on checked data. Defaults to
        `load_checkpoint_files(folder, state)`."""
        folder, state = staged
        self.load_checkpoint_files(folder, state)

    def load_checkpoint_files(self, folder: str, state: dict) -> None:
        """Restores what `save_checkpoint_files` wrote, in one phase (see `read_checkpoint_files`
        and `apply_checkpoint_files` for a load that changes nothing when it fails)."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints.")


_bridge_renamed_hooks(Agent, warn=False)
