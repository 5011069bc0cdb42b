"""examples/ddpg_mujoco.py: a short run of keras-rl's HalfCheetah configuration (MuJoCo comes with the test extra)."""

import math
import sys

import numpy as np
import pytest


def test_ddpg_mujoco_example_runs_a_few_training_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the current folder on warnings
    import ddpg_mujoco

    from rl.processors import WhiteningNormalizerProcessor

    argv = ["--steps", "1050", "--test-episodes", "1", "--test-steps", "20", "--verbose", "0"]
    mean_return = ddpg_mujoco.main(argv + ["--weights", str(tmp_path / "ddpg_{}.h5f")])
    assert math.isfinite(mean_return)
    assert (tmp_path / "ddpg_actor.weights.h5").exists() and (tmp_path / "ddpg_critic.weights.h5").exists()
    processor = ddpg_mujoco.MujocoProcessor()
    assert isinstance(processor, WhiteningNormalizerProcessor)
    np.testing.assert_array_equal(processor.process_action(np.array([-3.0, 0.5, 2.0])), [-1.0, 0.5, 1.0])


def test_ddpg_mujoco_example_names_the_extra_when_mujoco_is_missing(monkeypatch):
    import ddpg_mujoco

    monkeypatch.setitem(sys.modules, "mujoco", None)  # as if MuJoCo were not installed
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[mujoco\]'"):
        ddpg_mujoco.make_env()


def test_ddpg_mujoco_example_random_mode_reports_uniform_actions_returns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import ddpg_mujoco

    argv = ["--mode", "random", "--test-episodes", "2", "--test-steps", "30", "--seed", "3"]
    mean_return = ddpg_mujoco.main(argv)
    # The same protocol twice gives the same returns (seeded first reset and action draws).
    env = ddpg_mujoco.make_env()
    returns = ddpg_mujoco.random_policy_returns(env, nb_episodes=2, nb_max_episode_steps=30, seed=1003)
    assert mean_return == pytest.approx(np.mean(returns))
    # Uniform actions in [-1, 1]^6 cost 0.1 * E[|a|^2] = 0.2 per step on average: the return is below zero.
    assert mean_return < 0.0
    assert not list(tmp_path.glob("*.weights.h5"))  # nothing is trained or saved
