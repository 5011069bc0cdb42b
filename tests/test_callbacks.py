import json

import keras
import numpy as np
import pytest
from conftest import CountingEnv
from test_core import make_agent as make_recording_agent

from rl.callbacks import CallbackList, FileLogger, ModelIntervalCheckpoint, TrainEpisodeLogger, TrainIntervalLogger


class WeightsSpy:
    """Records save_weights calls instead of writing files (for a network-free agent)."""

    def __init__(self, agent):
        self.calls = []
        agent.save_weights = lambda filepath, overwrite=False: self.calls.append((filepath, overwrite))


def test_file_logger_writes_per_episode_json(tmp_path):
    path = tmp_path / "log.json"
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=4), nb_steps=12, verbose=0, callbacks=[FileLogger(path, interval=5)])
    data = json.loads(path.read_text())
    assert data["episode"] == [0, 1, 2]
    assert data["episode_reward"] == [4.0, 4.0, 4.0]
    assert data["nb_episode_steps"] == [4, 4, 4]
    assert data["nb_steps"] == [4, 8, 12]
    assert data["reward_seen"] == [1.0, 1.0, 1.0]  # mean of the agent's metric over each episode
    assert len(data["duration"]) == 3


def test_model_interval_checkpoint_formats_step(tmp_path):
    agent = make_recording_agent()
    spy = WeightsSpy(agent)
    agent.fit(
        CountingEnv(terminate_at=100),
        nb_steps=10,
        verbose=0,
        callbacks=[ModelIntervalCheckpoint(str(tmp_path / "w_{step}.h5f"), interval=4)],
    )
    assert spy.calls == [(str(tmp_path / "w_4.h5f"), True), (str(tmp_path / "w_8.h5f"), True)]


def test_interval_logger_prints_summaries(capsys):
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=5), nb_steps=20, verbose=1, log_interval=10)
    out = capsys.readouterr().out
    assert "Training for 20 steps" in out
    assert "Interval 2 (10 steps performed)" in out
    assert "2 episodes - episode_reward: 5.000 [5.000, 5.000]" in out
    assert "reward_seen: 1.000" in out


def test_episode_logger_prints_a_line_per_episode(capsys):
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=5), nb_steps=10, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "episode:" in line]
    assert len(lines) == 2
    assert "episode steps: 5" in lines[0] and "episode reward: 5.000" in lines[0]


def test_test_logger_prints_each_episode(capsys):
    agent = make_recording_agent()
    agent.test(CountingEnv(terminate_at=3), nb_episodes=2, visualize=False)
    out = capsys.readouterr().out
    assert "Episode 1: reward: 3.000, steps: 3" in out and "Episode 2:" in out


def test_callback_list_skips_unused_hooks_and_rejects_non_callbacks():
    cbs = CallbackList([TrainEpisodeLogger(), keras.callbacks.History()])
    assert cbs.wants("on_step_end") and not cbs.wants("on_action_begin")
    with pytest.raises(TypeError, match="callback="):
        CallbackList(["not a callback"])


def test_loggers_validate_interval():
    with pytest.raises(ValueError, match="interval=0"):
        TrainIntervalLogger(interval=0)
    with pytest.raises(ValueError, match="interval=-1"):
        ModelIntervalCheckpoint("w_{step}.h5", interval=-1)
    with pytest.raises(TypeError, match="interval"):
        FileLogger("log.json", interval=np.float64(1.5))


def test_model_interval_checkpoint_with_a_keras_rl_name_saves_both_networks(tmp_path):
    from test_ddpg import make_agent as make_ddpg

    env = CountingEnv(terminate_at=10)
    agent = make_ddpg(env)
    agent.fit(
        env,
        nb_steps=10,
        verbose=0,
        callbacks=[ModelIntervalCheckpoint(str(tmp_path / "ddpg_{}_{step}.h5f"), interval=5)],
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "ddpg_actor_10.weights.h5",
        "ddpg_actor_5.weights.h5",
        "ddpg_critic_10.weights.h5",
        "ddpg_critic_5.weights.h5",
    ]


def test_file_logger_removes_the_temporary_a_killed_write_left(tmp_path):
    path = tmp_path / "log.json"
    (tmp_path / ".log.json.k1ll3d00.tmp.json").write_text('{"episode": [')  # killed mid-write
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=4), nb_steps=8, verbose=0, callbacks=[FileLogger(path, interval=5)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]
    assert json.loads(path.read_text())["episode"] == [0, 1]
