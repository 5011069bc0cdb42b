"""Checkpoints: exact resume in a fresh process, surviving SIGKILL, and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from checkpoint_worker import build

from rl.callbacks import Callback

WORKER = os.path.join(os.path.dirname(__file__), "checkpoint_worker.py")


def run_worker(*args, timeout=300):
    subprocess.run([sys.executable, WORKER, *args], check=True, timeout=timeout)


@pytest.mark.parametrize("pack_max", [None, 20])
def test_resume_in_a_fresh_process_matches_an_uninterrupted_run(tmp_path, pack_max):
    """`pack_max=20`: the kernels keep their own variables, as a large network's do."""
    d = str(tmp_path)
    extra = [] if pack_max is None else ["--pack-max", str(pack_max)]
    run_worker("straight", "--dir", d, *extra)  # 4 000 steps in one go
    run_worker("first", "--dir", d, *extra)  # 2 000 steps, then a checkpoint
    run_worker("resume", "--dir", d, *extra)  # a new process loads it and trains 2 000 more
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert len(a.files) == len(b.files) == 16  # 4 networks x 2 Dense layers x (kernel, bias)
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    index = tmp_path / "ckpt" / "checkpoint.json"
    proc = subprocess.Popen([sys.executable, WORKER, "forever", "--dir", str(tmp_path)])
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if index.exists() and json.loads(index.read_text())["latest"] >= "step-000000001000":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no checkpoint past step 1000 appeared")
        time.sleep(0.37)  # land somewhere in the middle of training, maybe of a save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    env, agent = build()
    agent.load_checkpoint(tmp_path / "ckpt", env=env)
    assert agent.step >= 1000 and agent.step % 250 == 0
    assert agent.memory.nb_transitions == agent.step  # every step stored, none lost or doubled
    assert agent.episode == -(-agent.step // 200)  # Pendulum episodes are 200 steps
    start = agent.step
    history = agent.fit(env, nb_steps=300, verbose=0)
    assert agent.step == start + 300
    assert all(np.isfinite(history.history["episode_reward"]))


def test_ctrl_c_returns_history_and_leaves_the_agent_usable(tmp_path):
    class Interrupt(Callback):
        def on_step_end(self, step, logs=None):
            if self.model.step == 450:
                raise KeyboardInterrupt

    env, agent = build()
    history = agent.fit(env, nb_steps=2000, verbose=0, callbacks=[Interrupt()], seed=0)
    assert agent.step == 450 and not agent.training
    assert history.history["nb_steps"] == [200, 400]
    test = agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    assert np.isfinite(test.history["episode_reward"][0])
    agent.fit(env, nb_steps=100, verbose=0)
    assert agent.step == 550
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    assert (tmp_path / "ckpt" / "checkpoint.json").exists()
