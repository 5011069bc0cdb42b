"""Smoke test of benchmarks/mujoco.py: CSV rows, resuming a finished or a killed run, the plot.

Tiny settings (`--tiny`: [32, 32] networks, 100 random start steps; short evaluation episodes), so
the whole file takes well under a minute on two cores.
"""

import csv
import glob
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("mujoco", reason="the MuJoCo benchmark needs mujoco (the `mujoco` / `test` extras)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "mujoco.py")
TINY = ["--algo", "td3", "--env", "HalfCheetah-v5", "--eval-every", "300", "--eval-episodes", "1", "--tiny"]
TINY += ["--eval-episode-steps", "100"]


@pytest.fixture(scope="module")
def bench():
    # Loaded by its path, under another name: benchmarks/ is not put on sys.path (where this file
    # would hide the real `mujoco` package).
    spec = importlib.util.spec_from_file_location("mujoco_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def csv_steps(out):
    with open(os.path.join(out, "progress.csv"), newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def checkpoint_step(out):
    with open(os.path.join(out, "ckpt", "checkpoint.json")) as f:
        latest = json.load(f)["latest"]
    with open(os.path.join(out, "ckpt", latest, "state.json")) as f:
        return json.load(f)["step"]


def test_rows_and_resume_after_a_finished_run_and_after_a_crash(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working folder
    out = str(tmp_path / "run")
    rows = bench.main(TINY + ["--steps", "300", "--out", out])
    assert capsys.readouterr().out.startswith("machine: ")
    assert [int(r["step"]) for r in rows] == [300]
    assert checkpoint_step(out) == 300

    # The same command with more steps continues from the checkpoint.
    rows = bench.main(TINY + ["--steps", "600", "--out", out])
    assert "resumed at step 300" in capsys.readouterr().out
    assert csv_steps(out) == [300, 600]
    assert checkpoint_step(out) == 600
    for row in rows:
        assert math.isfinite(float(row["mean_return"])) and math.isfinite(float(row["std_return"]))
        assert float(row["steps_per_s"]) > 0 and float(row["wall_s"]) > 0
    assert float(rows[1]["wall_s"]) > float(rows[0]["wall_s"])  # summed over the two sessions

    # Killed after the row of step 900 was written and before its checkpoint: the resumed run drops
    # that row, trains 600 -> 900 again and writes each step once.
    from rl.agents import TD3Agent

    save = TD3Agent.save_checkpoint

    def dies_at_900(self, dirpath, env=None):
        if self.step == 900:
            raise RuntimeError("killed")
        return save(self, dirpath, env=env)

    monkeypatch.setattr(TD3Agent, "save_checkpoint", dies_at_900)
    with pytest.raises(RuntimeError, match="killed"):
        bench.main(TINY + ["--steps", "1200", "--out", out])
    assert csv_steps(out) == [300, 600, 900] and checkpoint_step(out) == 600
    monkeypatch.setattr(TD3Agent, "save_checkpoint", save)
    bench.main(TINY + ["--steps", "1200", "--out", out])
    assert csv_steps(out) == [300, 600, 900, 1200]
    assert checkpoint_step(out) == 1200

    # Other settings in the same folder are refused; --plot draws the CSV.
    with pytest.raises(SystemExit, match="other settings"):
        bench.main(TINY + ["--steps", "1200", "--seed", "1", "--out", out])
    pytest.importorskip("matplotlib")
    image = str(tmp_path / "curve.png")
    bench.main(["--plot", os.path.join(out, "progress.csv"), "--plot-out", image])
    assert os.path.getsize(image) > 0


def test_a_run_killed_at_any_moment_resumes(bench, tmp_path, monkeypatch):
    """A real SIGKILL of the script's process while it trains, then the same command again."""
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "killed")
    cmd = [sys.executable, SCRIPT, *TINY, "--steps", "100000", "--out", out]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(os.path.join(out, "ckpt", "step-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the benchmark exited before its first checkpoint"
            time.sleep(0.2)
        time.sleep(0.5)  # somewhere in the next interval (or saving, or evaluating)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    step = checkpoint_step(out)
    assert step > 0 and step % 300 == 0
    rows = bench.main(TINY + ["--steps", str(step + 300), "--out", out])
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(300, step + 301, 300))
    assert checkpoint_step(out) == step + 300


def test_another_model_file_is_used_recorded_and_kept_on_resume(bench, tmp_path):
    # Walker2d-v5 with v4's model (its feet have frictions 0.9 and 1.9; v5's both 1.9).
    env = bench.make_env("Walker2d-v5", xml_file="walker2d.xml")
    feet = ("foot_geom", "foot_left_geom")
    assert [float(env.unwrapped.model.geom(name).friction[0]) for name in feet] == pytest.approx([0.9, 1.9])
    v5 = bench.make_env("Walker2d-v5")
    assert [float(v5.unwrapped.model.geom(name).friction[0]) for name in feet] == pytest.approx([1.9, 1.9])
    out = str(tmp_path / "walker-v4-model")
    args = ["--algo", "td3", "--env", "Walker2d-v5", "--eval-every", "150", "--eval-episodes", "1", "--tiny"]
    args += ["--eval-episode-steps", "50", "--steps", "150", "--out", out]
    bench.main(args + ["--xml-file", "walker2d.xml"])
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["xml_file"] == "walker2d.xml"
    with pytest.raises(SystemExit, match="other settings .*xml_file"):
        bench.main(args)  # the same folder without the model file is another run
    with open(os.path.join(out, "config.json")) as f:
        saved = f.read()
    with pytest.raises(SystemExit) as refused:
        bench.main(args + ["--xml-file", "no_such_model.xml"])  # refused before anything is written
    assert refused.value.code == 2
    with open(os.path.join(out, "config.json")) as f:
        assert f.read() == saved
