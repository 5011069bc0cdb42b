"""Checkpoints written by an earlier version (format 2, tests/fixtures) load and resume."""

import json
import os
import shutil
import sys

import gymnasium as gym
import numpy as np
import pytest
from checkpoint_helpers import small_agent
from conftest import CountingEnv

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
sys.path.insert(0, FIXTURES)

from make_checkpoints import small_dqn  # noqa: E402


def load_fixture(name, agent, env, tmp_path):
    folder = tmp_path / name
    shutil.copytree(os.path.join(FIXTURES, name), folder)
    agent.load_checkpoint(folder, env=env)
    with open(os.path.join(FIXTURES, f"{name}.json")) as f:
        return json.load(f)


@pytest.mark.parametrize(
    "name, make, make_env, nb_actions",
    [
        ("checkpoint_v2_ddpg", lambda: small_agent(seed=5, limit=100), lambda: CountingEnv(terminate_at=7), 1),
        ("checkpoint_v2_dqn", lambda: small_dqn(seed=5), lambda: gym.make("CartPole-v1", max_episode_steps=20), 2),
    ],
)
def test_a_format_2_checkpoint_loads_and_resumes(name, make, make_env, nb_actions, tmp_path):
    agent, env = make(), make_env()
    env.reset(seed=0)
    want = load_fixture(name, agent, env, tmp_path)
    assert (agent.step, agent.episode) == (want["step"], want["episode"])
    assert agent.memory.nb_transitions == want["nb_transitions"]
    for model in agent.layers:
        for got, saved in zip(model.get_weights(), want["weights"][model.name]):
            np.testing.assert_array_equal(got, np.asarray(saved, np.float32))
    history = agent.fit(env, nb_steps=12, verbose=0)
    assert agent.step == want["step"] + 12
    assert agent.memory.nb_transitions > want["nb_transitions"]
    assert all(np.isfinite(w).all() for m in agent.layers for w in m.get_weights())
    assert history.history["nb_steps"][-1] <= agent.step
    agent.save_checkpoint(tmp_path / "again", env=env)
    again = make()
    again.load_checkpoint(tmp_path / "again")
    assert again.step == agent.step
