"""`rl.callbacks.TensorBoard`: the event files it writes, read back; Keras' own callback is refused clearly."""

import glob
import os

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CountingEnv
from test_core import RecordingAgent
from test_ddpg import make_agent as make_ddpg

from rl.callbacks import EvalCallback, TensorBoard


def read_scalars(folder):
    """{tag: [(step, value), ...]} from the event files in `folder`."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


class WarmUpAgent(RecordingAgent):
    """Its one metric is NaN for the first 4 steps (a warm-up), then the step count."""

    def backward(self, reward, terminal, truncated=False, next_observation=None):
        super().backward(reward, terminal, truncated, next_observation)
        return [np.nan if self.step < 4 else float(self.step + 1)]  # the loop counts this step after backward


def test_episode_and_interval_scalars(tmp_path):
    agent = WarmUpAgent()
    agent.compile()
    agent.fit(CountingEnv(terminate_at=5), nb_steps=14, verbose=0, callbacks=[TensorBoard(tmp_path, update_freq=4)])
    scalars = read_scalars(tmp_path / "train")
    assert scalars["episode_reward"] == [(5, 5.0), (10, 5.0)]
    assert scalars["nb_episode_steps"] == [(5, 5.0), (10, 5.0)]
    # Means over each 4 steps, NaN left out: steps 1-4 have none (not written), 5-8 -> 6.5,
    # 9-12 -> 10.5, and the 2 steps left at the end (13-14) -> 13.5.
    assert scalars["reward_seen"] == [(8, 6.5), (12, 10.5), (14, 13.5)]
    assert [step for step, _ in scalars["steps_per_second"]] == [4, 8, 12, 14]
    assert all(v > 0 for _, v in scalars["steps_per_second"])


def test_per_episode_updates_and_test_runs(tmp_path):
    agent = WarmUpAgent()
    agent.compile()
    tb = TensorBoard(tmp_path, write_steps_per_second=False)
    agent.fit(CountingEnv(terminate_at=5), nb_steps=10, verbose=0, callbacks=[tb])
    scalars = read_scalars(tmp_path / "train")
    assert scalars["reward_seen"] == [(5, 5.0), (10, 8.0)]  # episode 1: only step 5 is finite; episode 2: 6-10
    assert "steps_per_second" not in scalars
    agent.test(CountingEnv(terminate_at=3), nb_episodes=2, visualize=False, verbose=0, callbacks=[tb])
    assert read_scalars(tmp_path / "test") == {
        "episode_reward": [(0, 3.0), (1, 3.0)],
        "nb_episode_steps": [(0, 3.0), (1, 3.0)],
    }


def test_ddpg_run_writes_what_history_holds(tmp_path):
    env = gym.make("Pendulum-v1")
    agent = make_ddpg(env, warmup=50)
    eval_cb = EvalCallback(
        gym.make("Pendulum-v1"), eval_interval=200, nb_episodes=1, nb_max_episode_steps=20, verbose=0
    )
    history = agent.fit(
        env, nb_steps=400, nb_max_episode_steps=100, verbose=0, callbacks=[TensorBoard(tmp_path / "logs"), eval_cb]
    )
    scalars = read_scalars(tmp_path / "logs" / "train")
    h = history.history
    assert [s for s, _ in scalars["episode_reward"]] == h["nb_steps"] == [100, 200, 300, 400]
    np.testing.assert_allclose([v for _, v in scalars["episode_reward"]], h["episode_reward"], rtol=1e-6)
    assert [v for _, v in scalars["nb_episode_steps"]] == h["nb_episode_steps"]
    for name in agent.metrics_names:  # warm-up's NaN left out: every episode has finite steps here
        assert [s for s, _ in scalars[name]] == [100, 200, 300, 400]
        assert all(np.isfinite(v) for _, v in scalars[name])
    assert [s for s, _ in scalars["eval_mean_return"]] == h["eval_step"] == [200, 400]
    np.testing.assert_allclose([v for _, v in scalars["eval_mean_return"]], h["eval_mean_return"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["best_mean_return"]], h["best_mean_return"], rtol=1e-6)


def test_tensorboard_reads_them_as_scalars(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    agent = RecordingAgent()
    agent.compile()
    agent.fit(CountingEnv(terminate_at=5), nb_steps=10, verbose=0, callbacks=[TensorBoard(tmp_path)])
    acc = event_accumulator.EventAccumulator(str(tmp_path / "train"))
    acc.Reload()
    assert {"episode_reward", "nb_episode_steps", "reward_seen", "steps_per_second"} <= set(
        acc.PluginTagToContent("scalars")
    )
    assert [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("episode_reward")] == [5.0, 5.0]


@pytest.mark.parametrize("run", ["fit", "test"])
def test_keras_tensorboard_is_refused_with_a_pointer(tmp_path, run):
    agent = RecordingAgent()
    agent.compile()
    callback = keras.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq=100)
    with pytest.raises(TypeError, match=r"keras.callbacks.TensorBoard cannot serve an RL agent") as info:
        if run == "fit":
            agent.fit(CountingEnv(), nb_steps=5, verbose=0, callbacks=[callback])
        else:
            agent.test(CountingEnv(terminate_at=2), visualize=False, verbose=0, callbacks=[callback])
    assert f"rl.callbacks.TensorBoard(log_dir={str(tmp_path)!r}, update_freq=100)" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"log_dir": 3}, TypeError, r"`log_dir` must be a path. Received: log_dir=3"),
        ({"update_freq": 0}, ValueError, r"`update_freq` must be >= 1. Received: update_freq=0"),
        ({"update_freq": "weekly"}, ValueError, r"Received: update_freq='weekly'"),
        ({"update_freq": 2.0}, TypeError, r"`update_freq` must be an integer"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        TensorBoard(**kwargs)


def test_keras_style_arguments():
    assert TensorBoard(update_freq="epoch").update_freq == "episode"
    assert TensorBoard(update_freq="batch").update_freq == 1
    assert TensorBoard().log_dir == "logs"
