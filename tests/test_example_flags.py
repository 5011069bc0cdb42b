"""The Pendulum example's monitoring and rendering flags."""

import json
import sys

import pytest
from ddpg_pendulum import main as pendulum_main


def test_log_and_eval_interval_write_a_file_logger_log(tmp_path, capsys):
    log = tmp_path / "log.json"
    argv = ["--steps", "400", "--test-episodes", "1", "--verbose", "0", "--weights", str(tmp_path / "w_{}.h5f")]
    pendulum_main(argv + ["--log", str(log), "--eval-interval", "200"])
    data = json.loads(log.read_text())
    assert data["nb_steps"] == [200, 400]
    assert len(data["episode_reward"]) == 2
    assert data["eval_step"] == [200, 400]
    assert len(data["eval_mean_return"]) == 2
    assert "Step 400: eval mean return" in capsys.readouterr().out


def test_render_without_pygame_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if pygame were not installed
    with pytest.raises(SystemExit) as info:
        pendulum_main(["--render"])
    assert info.value.code == 2
    assert "pip install -e '.[render]'" in capsys.readouterr().err
