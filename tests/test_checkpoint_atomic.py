"""A failed `load_checkpoint` leaves the agent's networks, optimizers and noise exactly as they were.

The base class and the memory check everything they own before anything changes (see
test_checkpoint.py). The agent's own files (networks, optimizers, memory, noise) are read and
checked by the engine before anything is applied.
"""

import json

import pytest
from checkpoint_helpers import (  # noqa: F401  (fixtures)
    CHECKPOINT_FILES,
    agent_snapshot,
    assert_differ,
    assert_same,
    ckpt_fixture,
    core_snapshot,
    flip_byte,
    put,
    rewrite_state,
    saved_fixture,
    subfolder,
    trained_agent,
)


def assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, words, error=ValueError):
    before = core_snapshot(agent, env), agent_snapshot(agent)
    assert_differ(before[1], saved[2])  # B's networks differ from A's: "unchanged" means something
    with pytest.raises(error, match=words):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before[0])
    assert_same(agent_snapshot(agent), before[1])


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_a_damaged_file_changes_no_network(saved, ckpt, name):
    flip_byte(subfolder(ckpt) / name)
    agent, env = trained_agent()
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, name.replace(".", r"\."))


@pytest.mark.parametrize(
    "edit, words",
    [(put("step", -1), "`step`"), (put("rng.state.inc", "x"), "`rng`"), (put("env_rng.env", 3), "`env_rng.env`")],
    ids=["bad step", "bad rng", "bad env rng"],
)
def test_a_bad_counter_or_rng_state_changes_no_network(saved, ckpt, edit, words):
    rewrite_state(ckpt, edit)
    agent, env = trained_agent()
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, words)


def test_a_memory_of_another_limit_changes_no_network(saved, ckpt):
    agent, env = trained_agent(limit=200)
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, r"limit=100")


def test_optimizer_state_of_another_optimizer_changes_no_network(saved, ckpt):
    agent, env = trained_agent(optimizer="sgd")
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, r"optimizer")


def test_a_critic_of_another_architecture_changes_no_network(saved, ckpt):
    agent, env = trained_agent(critic_hidden=32)
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, r"critic")


def test_a_bad_noise_state_changes_nothing(saved, ckpt):
    rewrite_state(ckpt, put("agent_state.random_process.rng", "garbage"))
    agent, env = trained_agent()
    assert_load_fails_and_changes_nothing(agent, env, ckpt, saved, r"random_process")


def test_the_snapshots_see_a_successful_load(saved, ckpt):
    agent, env = trained_agent()
    agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), saved[1])
    assert_same(agent_snapshot(agent), saved[2])
    assert json.loads((ckpt / "checkpoint.json").read_text())["latest"].startswith("step-000000000030-")
