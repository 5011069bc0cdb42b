"""Callbacks see the live weights during a run, and weights they set are what training goes on from."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from agent_builders import build_agent

from rl import distributed
from rl.callbacks import Callback
from rl.memory import SequentialMemory


class SetsWeights(Callback):
    """At agent step `at`, sets every actor weight to `value`; records the actor's weights after."""

    def __init__(self, at, value=0.25):
        self.at, self.value, self.seen = at, value, {}

    def on_step_end(self, step, logs=None):
        agent = self.model
        if agent.step == self.at:
            agent.actor.set_weights([np.full_like(w, self.value) for w in agent.actor.get_weights()])
        if agent.step in (self.at, self.at + 1):  # right after setting, and one step later
            self.seen[agent.step] = [w.copy() for w in agent.actor.get_weights()]


class ReadsWeights(Callback):
    def __init__(self):
        self.seen = {}

    def on_step_end(self, step, logs=None):
        self.seen[self.model.step] = np.concatenate([w.ravel() for w in self.model.actor.get_weights()])


def pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=50)


def run(kind, agent, callbacks, steps=60):
    if kind == "env":
        return agent.fit(pendulum(), nb_steps=steps, verbose=0, seed=0, callbacks=callbacks)
    if kind == "vector":
        env = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=50)
        return agent.fit(env, nb_steps=steps, verbose=0, seed=0, callbacks=callbacks)
    if kind == "workers":
        return distributed.fit(
            agent,
            pendulum,
            nb_steps=steps,
            num_workers=2,
            seed=0,
            backend="inprocess",
            steps_per_sample=10,
            verbose=0,
            callbacks=callbacks,
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["env", "vector", "workers"])
def test_weights_a_callback_sets_during_fit_are_trained_on(kind):
    agent = build_agent("ddpg", pendulum(), warmup=10)
    assert agent.flat_weights  # the layout that keeps a training copy of the weights
    setter = SetsWeights(at=40)
    run(kind, agent, [setter])
    set_at = setter.seen[40]
    assert all(np.all(w == 0.25) for w in set_at)  # the callback reads back what it set
    after = setter.seen[41]
    # One more step trained from the weights set, not from the ones training held before.
    assert max(float(np.max(np.abs(w - 0.25))) for w in after) < 0.05
    baseline = build_agent("ddpg", pendulum(), warmup=10)
    run(kind, baseline, [])
    final, untouched = agent.actor.get_weights(), baseline.actor.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(final, untouched))


def test_a_callback_reads_the_weights_training_changes():
    agent = build_agent("ddpg", pendulum(), warmup=10)
    reader = ReadsWeights()
    run("env", agent, [reader], steps=100)
    assert not np.array_equal(reader.seen[30], reader.seen[100])
    agent.sync_models()
    np.testing.assert_array_equal(reader.seen[100], np.concatenate([w.ravel() for w in agent.actor.get_weights()]))


def test_a_callback_that_only_reads_leaves_training_bit_identical():
    a = build_agent("td3", pendulum(), warmup=10)
    b = build_agent("td3", pendulum(), warmup=10)
    run("env", a, [ReadsWeights()], steps=80)
    run("env", b, [], steps=80)
    for x, y in zip(a.actor.get_weights() + a.critic.get_weights(), b.actor.get_weights() + b.critic.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_weights_a_callback_sets_during_fit_offline_are_trained_on():
    rng = np.random.default_rng(0)
    n = 500
    memory = SequentialMemory.from_arrays(
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.uniform(-2, 2, size=(n, 1)).astype(np.float32),
        rng.normal(size=n),
        np.zeros(n, bool),
        np.arange(n) % 50 == 49,
        limit=n,
    )
    agent = build_agent("ddpg", pendulum(), warmup=0)
    agent.memory = memory

    class SetAtUpdate(Callback):
        interval = 20  # fit_offline ends its calls at multiples of a callback's `interval`

        def on_step_end(self, step, logs=None):
            if self.model.step == 20:
                self.model.critic.set_weights([np.zeros_like(w) for w in self.model.critic.get_weights()])

    keras.utils.set_random_seed(1)
    agent.fit_offline(40, callbacks=[SetAtUpdate()], verbose=0, updates_per_call=20)
    # 20 Adam updates (learning rate 1e-3) from zeros: every weight stays within about 0.02 of 0.
    assert max(float(np.max(np.abs(w))) for w in agent.critic.get_weights()) < 0.05


def test_library_loggers_declare_they_do_not_touch_weights():
    from rl import callbacks

    for name in ("TrainIntervalLogger", "TrainEpisodeLogger", "TestLogger", "FileLogger", "Visualizer"):
        assert getattr(callbacks, name).touches_weights is False, name
    assert callbacks.Callback.touches_weights is True
