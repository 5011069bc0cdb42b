"""`rl.plot`: learning curves from FileLogger output, the command line, and the optional matplotlib."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from test_ddpg import make_agent as make_ddpg

import rl.plot
from rl.callbacks import EvalCallback, FileLogger
from rl.plot import plot_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ddpg_log(tmp_path_factory):
    """A FileLogger log of a short DDPG run on Pendulum, with warm-up (null metrics) and evaluations."""
    path = tmp_path_factory.mktemp("log") / "ddpg_log.json"
    agent = make_ddpg(gym.make("Pendulum-v1"), warmup=100)
    eval_cb = EvalCallback(
        gym.make("Pendulum-v1"), eval_interval=150, nb_episodes=1, nb_max_episode_steps=10, verbose=0
    )
    agent.fit(
        gym.make("Pendulum-v1"),
        nb_steps=300,
        nb_max_episode_steps=50,
        verbose=0,
        callbacks=[eval_cb, FileLogger(path)],
    )
    return path


def test_command_line_writes_a_png(ddpg_log, tmp_path):
    out = tmp_path / "curve.png"
    result = subprocess.run(
        [sys.executable, "-m", "rl.plot", str(ddpg_log), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"Wrote {out}" in result.stdout
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_command_line_default_output_is_next_to_the_log(ddpg_log, tmp_path):
    log = tmp_path / "run.json"
    log.write_text(ddpg_log.read_text())
    assert rl.plot.main([str(log), "--window", "3"]) == str(tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes()[:8] == PNG_MAGIC


def test_the_figure_shows_returns_rolling_mean_metrics_and_evaluations(ddpg_log):
    data = json.loads(ddpg_log.read_text())
    fig = plot_log(ddpg_log, window=2)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["return", "critic_loss", "actor_loss", "mean_q"]
    assert fig._suptitle.get_text() == "ddpg_log.json"
    raw, rolling = axes[0].lines[:2]
    np.testing.assert_array_equal(raw.get_xdata(), [50, 100, 150, 200, 250, 300])
    np.testing.assert_array_equal(raw.get_ydata(), data["episode_reward"])
    r = data["episode_reward"]
    np.testing.assert_allclose(rolling.get_ydata(), [r[0]] + [(a + b) / 2 for a, b in zip(r, r[1:])])
    eval_line = axes[0].lines[2]
    np.testing.assert_array_equal(eval_line.get_xdata(), [150, 300])
    np.testing.assert_array_equal(eval_line.get_ydata(), data["eval_mean_return"])
    # Warm-up episodes (100 steps) have no critic loss: null in the log, a gap in the curve.
    assert data["critic_loss"][:2] == [None, None]
    assert np.isnan(axes[1].lines[0].get_ydata()[:2]).all()
    assert np.isfinite(axes[1].lines[1].get_ydata()[2:]).all()


def test_rolling_mean_leaves_out_missing_values():
    np.testing.assert_allclose(rl.plot._rolling_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1.0, 1.5, 2.5, 3.5])
    values = np.array([np.nan, 2.0, np.nan, np.nan, 6.0])
    np.testing.assert_allclose(rl.plot._rolling_mean(values, 2), [np.nan, 2.0, 2.0, np.nan, 6.0])


def test_a_log_without_evaluations_or_steps_still_plots():
    fig = plot_log({"episode_reward": [1.0, 2.0, 3.0]})
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "episode"
    assert len(fig.axes[0].lines) == 2


def test_missing_matplotlib_names_the_extra(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # `import` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        plot_log({"episode_reward": [1.0]})


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no `episode_reward` list"):
        plot_log({"loss": [1.0]})
    with pytest.raises(TypeError, match=r"Received: path_or_data=3"):
        plot_log(3)
    with pytest.raises(ValueError, match="does not exist"):
        plot_log(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"`window` must be >= 1. Received: window=0"):
        plot_log({"episode_reward": [1.0]}, window=0)
