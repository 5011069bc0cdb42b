"""What a hostile user found: full disks, broken env_fn, folders named like checkpoints."""

import errno
import os
from collections import namedtuple

import gymnasium as gym
import numpy as np
import pytest
from agent_builders import build_agent

import rl.util
from rl import distributed

Usage = namedtuple("Usage", "total used free")


def pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=20)


@pytest.fixture
def full_disk(monkeypatch):
    """The disk reports 100 KiB free: too little for any weights file of the agents here."""
    monkeypatch.setattr(rl.util.shutil, "disk_usage", lambda path: Usage(10**9, 10**9, 100 * 1024))


def test_save_weights_on_a_full_disk_raises_oserror_and_keeps_the_old_files(tmp_path, monkeypatch):
    agent = build_agent("ddpg", pendulum())
    path = str(tmp_path / "ddpg.weights.h5")
    agent.save_weights(path)
    before = {p: open(p, "rb").read() for p in agent.weights_paths(path)}
    agent.fit(pendulum(), nb_steps=30, verbose=0)
    monkeypatch.setattr(rl.util.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 100 * 1024))
    with pytest.raises(OSError, match=r"Not enough free disk space to write the weights: about .* MiB needed") as e:
        agent.save_weights(path, overwrite=True)
    assert e.value.errno == errno.ENOSPC
    assert {p: open(p, "rb").read() for p in agent.weights_paths(path)} == before
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in before)


def test_save_checkpoint_on_a_full_disk_raises_oserror_and_keeps_the_previous_one(tmp_path, monkeypatch):
    agent = build_agent("ddpg", pendulum())
    env = pendulum()
    agent.fit(env, nb_steps=30, verbose=0, seed=0)
    agent.save_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(rl.util.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 100 * 1024))
    agent.fit(env, nb_steps=10, verbose=0)
    with pytest.raises(OSError, match=r"Not enough free disk space to write the checkpoint") as e:
        agent.save_checkpoint(tmp_path / "ckpt")
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    fresh = build_agent("ddpg", pendulum(), seed=1)
    fresh.load_checkpoint(tmp_path / "ckpt")
    assert fresh.step == 30
    assert [p for p in os.listdir(tmp_path / "ckpt") if p.endswith(".tmp")] == []


def test_the_free_space_check_needs_the_size_with_a_margin(tmp_path, monkeypatch):
    monkeypatch.setattr(rl.util.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 3 * 2**20))
    rl.util.check_free_space(tmp_path, 2**20, "x", "filepath='x'")  # 1 MiB + 10 % + 1 MiB fits in 3 MiB
    with pytest.raises(OSError, match=r"about 3\.2 MiB needed, 3\.0 MiB free"):
        rl.util.check_free_space(tmp_path, 2 * 2**20, "x", "filepath='x'")


class Broken(Exception):
    pass


def broken_env():
    raise Broken("no simulator licence")


def test_an_env_fn_that_raises_at_construction_raises_its_own_error_before_any_worker():
    agent = build_agent("ddpg", pendulum())
    with pytest.raises(Broken, match="no simulator licence"):
        distributed.fit(agent, broken_env, nb_steps=10, num_workers=2, backend="inprocess", verbose=0)
    assert agent.step == 0 and not agent.running
    assert np.isfinite(agent.actor.get_weights()[0]).all()
