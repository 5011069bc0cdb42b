"""`Run`: the lifecycle every run shares, owned once.

A source of experience (`rl.loops.episode`, `vector`, `offline`, `workers`) builds a `Run`
and hands it the body that gathers experience; the run does the rest, in this order:

1. the callbacks get the agent, the environment and the run's parameters; a `History` is added;
2. `agent.begin_run(training, end_step)`: the agent plans the run and enters its mode (a run
   started inside another keeps the outer one's state);
3. the callbacks' `on_train_begin`, then `agent.run_started(training)` (keras-rl's hooks);
4. the body; Ctrl-C (`KeyboardInterrupt`, from the keyboard or raised by a callback) ends it
   cleanly, and a non-finite action (`rl.loops.guards.NonFiniteAction`) ends it to be reported;
5. however the body ended: the source's `cleanup` (e.g. the agent abandons an open episode),
   then `agent.end_run(training, aborted)`;
6. a non-finite action is raised as a `ValueError` naming the networks with non-finite weights;
   otherwise the callbacks' `on_train_end({"did_abort": ...})`, and the History is returned (and
   kept as `agent.history`). After Ctrl-C, `did_abort` is `True`, and the loggers' last line
   says that the run stopped early, at which step of how many (not the "done" of a finished
   run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from rl.callbacks import CallbackList, TestLogger, TrainEpisodeLogger, TrainIntervalLogger
from rl.loops.guards import NonFiniteAction

__all__ = ["Run", "loggers"]


def loggers(training: bool, verbose: int, log_interval: int = 10000) -> list:
    """The progress display of a run: for training, `verbose=1` a `TrainIntervalLogger` (a progress
    bar per `log_interval` steps) and `verbose>=2` a `TrainEpisodeLogger` (a line per episode);
    for testing, `verbose>=1` a `TestLogger`; nothing with `verbose=0`."""
    if not training:
        return [TestLogger()] if verbose >= 1 else []
    if verbose == 1:
        return [TrainIntervalLogger(interval=log_interval)]
    if verbose > 1:
        return [TrainEpisodeLogger()]
    return []


class Run:
    """One run of an agent: the callbacks, the History, the agent's run hooks, Ctrl-C.

    Args:
        agent: an `rl.core.Agent`.
        training: whether the run trains (`fit`, `fit_offline`) or tests.
        callbacks: the run's callbacks, loggers included (a `History` is added last).
        params: the callbacks' `params` (e.g. `{"nb_steps": n}`).
        env: the environment the callbacks see (`Callback.env`), or `None`.
        end_step: with `training`, the value of `agent.step` at which the run ends.
        method: the agent's acting method, named in the non-finite-action error.
        reset_states: whether a run nested in another resets the agent's episode state when it
            ends (runs that play episodes do). Defaults to `True`.

    Attributes:
        callbacks: the `rl.callbacks.CallbackList`.
        history: the run's `keras.callbacks.History`.
        aborted: whether Ctrl-C ended the run.
    """

    def __init__(
        self,
        agent: Any,
        *,
        training: bool,
        callbacks: list,
        params: dict,
        env: Any = None,
        end_step: int | None = None,
        method: str = "forward",
        reset_states: bool = True,
    ):
        self.agent = agent
        self.training = training
        self.end_step = end_step
        self.method = method
        self.reset_states = reset_states
        self.history = keras.callbacks.History()
        self.callbacks = CallbackList(list(callbacks) + [self.history])
        self.callbacks.set_model(agent)
        if env is not None:
            self.callbacks.set_env(env)
        self.callbacks.set_params(params)
        # Callbacks that may read or set weights see the live ones, and what they set is trained on.
        self.callbacks.guard_weights(agent.sync_models, agent.reload_models)
        self.aborted = False

    def wants(self, hook: str) -> bool:
        """Whether any callback overrides `hook` (so a source may skip building its logs)."""
        return self.callbacks.wants(hook)

    def execute(
        self,
        body: Callable[[], None],
        cleanup: Callable[[], None] | None = None,
        on_abort: Callable[[], None] | None = None,
    ) -> keras.callbacks.History:
        """Runs `body` inside the run's lifecycle (see the module's docstring) and returns the History.

        Args:
            body: gathers the experience; returns when the run is done.
            cleanup: called however `body` ended, before the agent leaves the run. Defaults to
                `None`.
            on_abort: called when Ctrl-C ended `body`, before `cleanup`. Defaults to `None`.

        Raises:
            ValueError: if the agent returned a non-finite action.
        """
        agent, training = self.agent, self.training
        agent.begin_run(training, self.end_step)
        bad_action: NonFiniteAction | None = None
        try:
            self.callbacks.on_train_begin()
            agent.run_started(training)
            body()
        except KeyboardInterrupt:
            self.aborted = True
            if on_abort is not None:
                on_abort()
        except NonFiniteAction as e:
            bad_action = e  # raised below, once the run has ended and the weights are back in the models
        finally:
            try:
                if cleanup is not None:
                    cleanup()
            finally:
                agent.end_run(training, self.aborted, self.reset_states)
        if bad_action is not None:
            message = f"{type(agent).__name__}.{self.method} {bad_action}"
            names = agent.nonfinite_weights()
            if names:
                message += f"; non-finite weights in: {', '.join(names)}"
            raise ValueError(message)
        self.callbacks.on_train_end({"did_abort": self.aborted})
        agent.history = self.history
        return self.history
