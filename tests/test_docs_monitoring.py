"""The code samples of docs/monitoring.md run as printed, on a short run.

The blocks run in order in one namespace, as a reader would run them after the training script of
Getting started; they get a small DDPG `agent` and its `env`, and their step counts are scaled down
(20 000 -> 800 training steps, intervals of 5 000 -> 200 and 1 000 -> 100) to keep the test short.
"""

import json
import os
import re

import gymnasium as gym
from test_ddpg import make_agent as make_ddpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "monitoring.md")
SCALE = {"20_000": "800", "5_000": "200", "1_000": "100"}


def python_blocks():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_samples_run_and_produce_what_the_guide_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) == 4
    env = gym.make("Pendulum-v1")
    namespace = {"__name__": "docs_monitoring", "env": env, "agent": make_ddpg(env, warmup=50)}
    for block in blocks:
        for big, small in SCALE.items():
            block = block.replace(big, small)
        exec(compile(block, DOC, "exec"), namespace)

    data = json.loads((tmp_path / "ddpg_log.json").read_text())
    assert data["nb_steps"] == [200, 400, 600, 800]
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert os.listdir(tmp_path / "logs" / "ddpg" / "train")
    # Three fits of 800 steps ran before: agent.step counts on, and evaluations follow it.
    assert namespace["history"].history["eval_step"] == [1800, 2000, 2200, 2400]
    assert (tmp_path / "best" / "ddpg_actor.weights.h5").is_file()
    assert (tmp_path / "best" / "ddpg_critic.weights.h5").is_file()
    assert "[1800, 2000, 2200, 2400]" in capsys.readouterr().out
