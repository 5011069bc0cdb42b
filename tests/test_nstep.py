"""n-step returns: exact targets at termination, truncation and open episodes, windows, and agents using them."""

import numpy as np
import pytest
from test_dqn import make_agent as make_dqn_agent
from test_dqn import make_line_env

from rl.memory import PrioritizedMemory, SequentialMemory

GAMMA = 0.5
A = np.array([0.0], np.float32)


def run_episode(memory, first_obs, rewards, end):
    """Appends one episode of observations `first_obs, first_obs + 1, ...`; `end` in {"terminal", "truncated", None}."""
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        obs = np.array([first_obs + t], np.float32)
        memory.append(obs, A, r, last and end == "terminal", obs + 1, truncated=last and end == "truncated")


def three_episodes(memory_cls=SequentialMemory, **kwargs):
    memory = memory_cls(limit=50, n_step=3, gamma=GAMMA, seed=0, **kwargs)
    run_episode(memory, 10, [1.0, 2.0, 3.0, 4.0], "terminal")  # slots 0-3, final observation 14 in slot 4
    run_episode(memory, 20, [5.0, 6.0], "truncated")  # slots 5-6, final observation 22 in slot 7
    run_episode(memory, 30, [7.0, 8.0], None)  # slots 8-9, still running: observation 32 in slot 10
    return memory


# slot: (n-step reward, steps k, terminated, observation bootstrapped from)
EXPECTED = {
    0: (1 + 0.5 * 2 + 0.25 * 3, 3, False, 13),
    1: (2 + 0.5 * 3 + 0.25 * 4, 3, True, 14),
    2: (3 + 0.5 * 4, 2, True, 14),
    3: (4.0, 1, True, 14),
    5: (5 + 0.5 * 6, 2, False, 22),  # truncated: bootstraps from the real final observation with gamma^2
    6: (6.0, 1, False, 22),
    8: (7 + 0.5 * 8, 2, False, 32),  # the episode goes on: as far as it is stored
    9: (8.0, 1, False, 32),
}


def check(batch_reward, batch_terminal, batch_state1, slots):
    for j, slot in enumerate(slots):
        reward, k, terminated, next_obs = EXPECTED[slot]
        assert batch_reward[j] == pytest.approx(reward)
        # A learner's bootstrap factor gamma * (1 - terminal) is gamma^k, or 0 after a termination.
        assert GAMMA * (1 - batch_terminal[j]) == pytest.approx(0.0 if terminated else GAMMA**k)
        assert batch_state1[j].reshape(-1)[-1] == next_obs


@pytest.mark.parametrize("memory_cls", [SequentialMemory, PrioritizedMemory])
def test_n_step_targets_are_exact(memory_cls):
    memory = three_episodes(memory_cls)
    slots = list(EXPECTED)
    batch = memory.sample(len(slots), batch_idxs=np.array(slots))
    check(batch.reward, batch.terminal, batch.state1, slots)
    np.testing.assert_array_equal(batch.state0[:, 0, 0], [10, 11, 12, 13, 20, 21, 30, 31])
    # Random draws through sample_into agree with the same rules.
    s0, s1 = np.zeros((40, 1, 1), np.float32), np.zeros((40, 1, 1), np.float32)
    rows = np.zeros((40, 3), np.float32)
    memory.sample_into(40, s0, s1, rows)
    slot_of = {10: 0, 11: 1, 12: 2, 13: 3, 20: 5, 21: 6, 30: 8, 31: 9}
    check(rows[:, 1], rows[:, 2], s1, [slot_of[int(v)] for v in s0[:, 0, 0]])


def test_n_step_with_observation_windows():
    memory = three_episodes(window_length=2)
    batch = memory.sample(2, batch_idxs=np.array([0, 5]))
    np.testing.assert_array_equal(batch.state1[:, :, 0], [[12, 13], [21, 22]])
    np.testing.assert_array_equal(batch.state0[:, :, 0], [[0, 10], [0, 20]])  # zero-padded episode starts


def test_n_step_stops_at_the_write_head_after_wrapping():
    memory = SequentialMemory(limit=6, n_step=4, gamma=GAMMA, seed=0)
    run_episode(memory, 0, [1.0] * 9, None)  # one long episode: the ring now holds observations 4-9
    batch = memory.sample(5, batch_idxs=np.arange(5))  # slots from the oldest: observations 4..8
    np.testing.assert_allclose(batch.reward, [1.875, 1.875, 1.75, 1.5, 1.0])
    np.testing.assert_array_equal(batch.state1[:, 0, 0], [8, 9, 9, 9, 9])


def test_default_n_step_is_one_and_config_round_trips():
    memory = SequentialMemory(limit=10)
    assert (memory.n_step, memory.gamma) == (1, None)
    config = SequentialMemory(limit=10, n_step=3, gamma=0.9).get_config()
    assert SequentialMemory.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="Received: n_step=0"):
        SequentialMemory(limit=10, n_step=0)
    unset = SequentialMemory(limit=10, n_step=2)
    run_episode(unset, 0, [1.0, 1.0], "terminal")
    with pytest.raises(ValueError, match="gamma"):
        unset.sample(2)
    with pytest.raises(TypeError, match="n_step=2"):
        unset.sampling_arrays()


def test_agent_sets_the_memory_gamma_and_trains_on_n_step_returns():
    memory = SequentialMemory(limit=500, n_step=3, seed=0)
    agent = make_dqn_agent(memory=memory, gamma=0.9)
    assert memory.gamma == 0.9
    agent.fit(make_line_env(), nb_steps=40, verbose=0, seed=0)
    assert np.isfinite(agent._last_metrics).all()
    with pytest.raises(ValueError, match="memory.gamma=0.5"):
        make_dqn_agent(memory=SequentialMemory(limit=500, n_step=3, gamma=0.5), gamma=0.9)
