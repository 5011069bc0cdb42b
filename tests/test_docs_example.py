"""The worked example of docs/writing_an_agent.md runs as printed and its agent really learns."""

import os

import gymnasium as gym
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "writing_an_agent.md")
MARKER = "<!-- example: writing_an_agent -->"
MAX_LINES = 60


def example_code():
    """Returns the fenced python block that directly follows the marker."""
    with open(DOC, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines.count(MARKER) == 1, "the example marker must appear exactly once"
    start = lines.index(MARKER) + 1
    assert lines[start].strip() == "```python", "a ```python block must follow the marker directly"
    end = lines.index("```", start + 1)
    return "\n".join(lines[start + 1 : end]) + "\n"


@pytest.fixture(scope="module")
def example():
    """Runs the block once, as a reader would: it trains on FrozenLake and tests the result."""
    namespace = {"__name__": "docs_example"}
    exec(compile(example_code(), DOC, "exec"), namespace)
    return namespace


def test_example_is_short():
    assert len(example_code().splitlines()) < MAX_LINES


def test_example_run_reaches_the_goal_every_test_episode(example):
    rewards = example["history"].history["episode_reward"]
    assert len(rewards) == 5
    assert np.mean(rewards) == 1.0
    assert example["history"].history["nb_episode_steps"] == [6] * 5  # the shortest path
    assert example["agent"].step == 3000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_fit_then_test_reaches_the_goal(example, seed):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = example["QLearningAgent"](env.observation_space.n, env.action_space.n, seed=seed)
    agent.compile()
    agent.fit(env, nb_steps=3000, verbose=0, seed=seed)
    history = agent.test(env, nb_episodes=5, visualize=False, verbose=0, seed=seed)
    assert np.mean(history.history["episode_reward"]) == 1.0


def test_same_seed_gives_the_same_table(example):
    tables = []
    for _ in range(2):
        env = gym.make("FrozenLake-v1", is_slippery=False)
        agent = example["QLearningAgent"](env.observation_space.n, env.action_space.n, seed=7)
        agent.compile()
        agent.fit(env, nb_steps=500, verbose=0, seed=7)
        tables.append(agent.q.copy())
    np.testing.assert_array_equal(tables[0], tables[1])


def test_backward_bootstraps_on_truncation_but_not_on_termination(example):
    agent = example["QLearningAgent"](nb_states=2, nb_actions=1, gamma=0.5, alpha=1.0, seed=0)
    agent.compile()
    agent.training = True
    for terminal, truncated, expected in ((True, False, 1.0), (False, True, 1.0 + 0.5 * 4.0)):
        agent.q[:] = [[0.0], [4.0]]
        agent.forward(0)
        agent.backward(1.0, terminal, truncated=truncated, next_observation=1)
        assert agent.q[0, 0] == expected
    agent.training = False
    assert np.isnan(agent.backward(1.0, False, next_observation=1)[0])  # test(): no learning


def test_weights_round_trip_and_overwrite_rule(example, tmp_path):
    path = str(tmp_path / "q.npy")
    agent = example["agent"]
    agent.save_weights(path)
    with pytest.raises(FileExistsError):
        agent.save_weights(path)
    agent.save_weights(path, overwrite=True)
    other = example["QLearningAgent"](agent.q.shape[0], agent.q.shape[1])
    other.load_weights(path)
    np.testing.assert_array_equal(other.q, agent.q)


DEEP_MARKER = "<!-- example: writing_a_deep_agent -->"


def test_deep_agent_example_learns_and_has_only_its_maths():
    with open(DOC, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines.count(DEEP_MARKER) == 1
    start = lines.index(DEEP_MARKER) + 1
    assert lines[start].strip() == "```python"
    end = lines.index("```", start + 1)
    namespace = {"__name__": "docs_deep_example"}
    exec(compile("\n".join(lines[start + 1 : end]) + "\n", DOC, "exec"), namespace)
    rewards = namespace["history"].history["episode_reward"]
    assert len(rewards) == 3 and min(rewards) >= 19.0, rewards
    agent = namespace["agent"]
    assert agent.metrics_names == ["critic_loss", "actor_loss"]
    assert agent.flat_weights and agent.trace_count == 3
