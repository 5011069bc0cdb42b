"""PrioritizedMemory: the sum tree, priorities, importance weights, persistence, and agents training with it."""

import sys
import types

import keras
import numpy as np
import pytest
from agent_builders import build_agent
from test_dqn import make_agent as make_dqn_agent
from test_dqn import make_line_env

import rl
from rl.agents.off_policy import GraphBatch, OffPolicyAgent
from rl.memory import PrioritizedMemory, SequentialMemory, SumTree

try:
    import numba
except ImportError:
    numba = None


def fill(memory, n, episode=5):
    """`n` one-dimensional transitions, episodes of `episode` steps ending by termination."""
    for t in range(n):
        obs = np.array([t], np.float32)
        end = t % episode == episode - 1
        memory.append(obs, np.array([0.0], np.float32), float(t), end, obs + 1)


def tree_kinds():
    """Both implementations of the sum tree; the compiled one needs numba (in the test extra)."""
    return [False, pytest.param(True, marks=pytest.mark.skipif(numba is None, reason="numba is not installed"))]


@pytest.mark.parametrize("compiled", tree_kinds())
@pytest.mark.parametrize("size", [37, 5000, 40_000])  # searched in the top level only; then 1 and 4 levels down
def test_sum_tree_finds_the_prefix_sums_leaf(size, compiled):
    rng = np.random.default_rng(0)
    tree = SumTree(size, compiled=compiled)  # not a power of two
    assert tree.compiled is compiled
    values = rng.random(size) * (rng.random(size) > 0.3)
    tree.set(np.arange(size), values)
    assert tree.total == pytest.approx(values.sum())
    u = rng.random(1000) * values.sum()
    expected = np.searchsorted(np.cumsum(values), u, side="right")
    np.testing.assert_array_equal(tree.find(u), expected)
    tree.set(np.array([3, 3, 5]), np.array([9.0, 2.0, 0.0]))  # the last write wins on repeats
    values[3], values[5] = 2.0, 0.0
    assert tree.total == pytest.approx(values.sum())
    tree.set_one(7, 4.0)
    values[7] = 4.0
    np.testing.assert_allclose(tree.total, values.sum())
    u = rng.random(1000) * values.sum()
    np.testing.assert_array_equal(tree.find(u), np.searchsorted(np.cumsum(values), u, side="right"))


@pytest.mark.skipif(numba is None, reason="numba is not installed")
def test_compiled_and_numpy_trees_give_the_same_bits():
    # A memory saved where numba is installed must load and sample the same where it is not.
    rng = np.random.default_rng(2)
    trees = [SumTree(70_000, compiled=False), SumTree(70_000, compiled=True)]
    for tree in trees:
        tree.set(np.arange(70_000), rng.random(70_000) if tree is trees[0] else trees[0].leaves.copy())
    for _ in range(30):
        idx, values = rng.integers(0, 70_000, 256), rng.exponential(1.0, 256)
        one, value = int(rng.integers(0, 70_000)), float(rng.random())
        for tree in trees:
            tree.set(idx, values)
            tree.set_one(one, value)
        u = np.sort(rng.random(256)) * trees[0].total
        np.testing.assert_array_equal(trees[1].find(u), trees[0].find(u))
    assert trees[1].total == trees[0].total
    np.testing.assert_array_equal(trees[1].running_sums, trees[0].running_sums)
    np.testing.assert_array_equal(trees[1].nodes, trees[0].nodes)


@pytest.mark.parametrize("compiled", tree_kinds())
def test_sum_tree_refuses_bad_arguments(compiled):
    with pytest.raises(TypeError, match="compiled"):
        SumTree(10, compiled="yes")
    tree = SumTree(10, compiled=compiled)
    tree.set(np.arange(10), np.ones(10))
    for bad in ([3, 10], [-1, 2]):  # past the end; negative
        with pytest.raises(ValueError, match=r"`indices` must lie in \[0, 10\)"):
            tree.set(np.array(bad), np.array([5.0, 5.0]))
    np.testing.assert_array_equal(tree.leaves, np.ones(10))  # nothing written
    assert tree.total == 10.0


def test_compiled_tree_without_numba_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # importing numba fails
    monkeypatch.delitem(sys.modules, "rl._tree_kernels", raising=False)
    monkeypatch.delattr(rl, "_tree_kernels", raising=False)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[numba\]"'):
        SumTree(10, compiled=True)
    assert not SumTree(10).compiled  # the default falls back to numpy


def test_compiled_tree_that_fails_to_load_falls_back_with_a_warning(monkeypatch):
    def no_cache(**_):
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setitem(sys.modules, "numba", types.SimpleNamespace(njit=no_cache))
    monkeypatch.delitem(sys.modules, "rl._tree_kernels", raising=False)
    monkeypatch.delattr(rl, "_tree_kernels", raising=False)
    with pytest.warns(UserWarning, match="runs in numpy.*no locator"):
        tree = SumTree(10)
    assert not tree.compiled
    with pytest.raises(ImportError, match="no locator"):
        SumTree(10, compiled=True)


def test_sum_tree_single_leaf_updates_match_a_rebuild_exactly():
    # A memory saved and loaded rebuilds its tree from the leaves: the sums it searches must be the
    # same bits as those of the tree that was updated one leaf at a time, or a resumed run would draw
    # different transitions.
    rng = np.random.default_rng(1)
    tree = SumTree(300_000)
    tree.set(np.arange(300_000), rng.random(300_000))
    for i in rng.integers(0, 300_000, 50):
        tree.set_one(int(i), float(rng.random()))
    top = tree.nodes[1 << tree.top : 2 << tree.top]  # read straight after single updates: brought up to date
    np.testing.assert_array_equal(tree.running_sums, np.concatenate(([0.0], np.cumsum(top))))
    u = rng.random(256) * tree.total
    found, total = tree.find(u), tree.total
    other = SumTree(300_000)
    other.leaves[:] = tree.leaves
    other.rebuild()
    assert other.total == total
    np.testing.assert_array_equal(other.running_sums, tree.running_sums)
    np.testing.assert_array_equal(other.nodes, tree.nodes)
    np.testing.assert_array_equal(other.find(u), found)


def test_sampling_frequencies_follow_the_priorities():
    memory = PrioritizedMemory(limit=20, alpha=0.5, seed=0)
    fill(memory, 8, episode=100)
    slots = np.arange(8)
    td = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 1.0, 4.0, 0.25])
    memory.update_priorities(slots, td)
    counts = np.zeros(20)
    for _ in range(4000):
        memory.sample(16)
        np.add.at(counts, memory.last_indices, 1)
    expected = (td + memory.epsilon) ** 0.5
    expected /= expected.sum()
    freq = counts[:8] / counts.sum()
    assert counts[8:].sum() == 0  # the final observation's slot starts no transition
    np.testing.assert_allclose(freq, expected, atol=0.01)


def test_new_transitions_get_the_largest_priority_and_updates_set_priorities():
    memory = PrioritizedMemory(limit=50, alpha=0.7, epsilon=0.01, seed=0)
    fill(memory, 4, episode=100)
    np.testing.assert_allclose(memory.priorities[:4], 1.0)
    memory.update_priorities(np.array([1, 2]), np.array([-3.0, 0.5]))
    np.testing.assert_allclose(memory.priorities[[1, 2]], [3.01, 0.51])
    np.testing.assert_allclose(memory.tree.leaves[1], 3.01**0.7)
    assert memory.max_priority == pytest.approx(3.01)
    obs = np.array([4.0], np.float32)  # the episode's next transition, from the observation in slot 4
    memory.append(obs, np.array([0.0], np.float32), 0.0, False, obs + 1)
    assert memory.priorities[4] == pytest.approx(3.01)
    assert memory.priorities[5] == 0  # the newest observation starts no transition yet
    with pytest.raises(ValueError, match="finite"):
        memory.update_priorities(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="indices"):
        memory.update_priorities(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError, match="Received: alpha=-1"):
        PrioritizedMemory(limit=10, alpha=-1)


def test_overwritten_slots_lose_their_priority():
    memory = PrioritizedMemory(limit=6, seed=0)
    fill(memory, 3, episode=3)  # slots 0..2 and the final observation in 3
    memory.update_priorities(np.array([0, 1, 2]), np.array([5.0, 5.0, 5.0]))
    fill(memory, 2, episode=100)  # slots 4, 5, then wraps: slot 0 is overwritten by the next observation
    assert memory.priorities[0] == 0
    assert memory.tree.total == pytest.approx(memory.tree.leaves.sum())


def test_importance_weights_and_beta_annealing():
    memory = PrioritizedMemory(limit=30, alpha=1.0, beta=0.4, beta_steps=10, seed=1)
    fill(memory, 10, episode=100)
    memory.update_priorities(np.arange(10), np.arange(1.0, 11.0))
    for k in range(12):
        assert memory.current_beta == pytest.approx(min(1.0, 0.4 + 0.6 * k / 10))
        beta = memory.current_beta
        memory.sample(8)
        p = memory.priorities[memory.last_indices]
        n, total = memory.nb_transitions, memory.tree.total
        w = (n * p / total) ** -beta
        np.testing.assert_allclose(memory.last_weights, w / w.max(), rtol=1e-5)
    assert memory.nb_batches == 12
    memory.sample(2, batch_idxs=np.array([0, 10]))  # slot 10 is a final observation: replaced by a draw
    assert memory.nb_batches == 13
    assert memory.last_indices[0] == 0 and memory.last_indices[1] != 10


@pytest.mark.parametrize("td_error", [1e200, float(np.finfo(np.float64).max)])
def test_huge_finite_td_errors_keep_the_tree_and_the_weights_finite(td_error):
    memory = PrioritizedMemory(limit=10, alpha=2.0, beta=0.4, seed=0)
    fill(memory, 3, episode=100)  # transitions in slots 0..2, the next observation in slot 3
    memory.update_priorities(np.array([0]), np.array([td_error]))  # td_error ** 2 overflows float64
    assert np.isfinite(memory.tree.total) and memory.tree.total == pytest.approx(memory.priority_cap)
    assert memory.tree.leaves[0] == memory.priority_cap == np.finfo(np.float64).max / 20
    assert np.isfinite(memory.priorities).all()
    memory.sample(3, batch_idxs=np.array([0, 1, 2]))  # the huge priority beside two of 1
    weights = memory.last_weights
    assert np.isfinite(weights).all() and (weights > 0).all()
    np.testing.assert_array_equal(weights, np.array([np.finfo(np.float32).tiny, 1.0, 1.0], np.float32))
    for _ in range(3):
        memory.sample(3)
        assert np.isfinite(memory.last_weights).all() and (memory.last_weights > 0).all()
    # The next transition gets the largest priority seen, clipped as well.
    obs = np.array([3.0], np.float32)
    memory.append(obs, np.array([0.0], np.float32), 0.0, False, obs + 1)
    assert memory.tree.leaves[3] == memory.priority_cap
    # Every transition at the cap: the total still fits in float64.
    full = PrioritizedMemory(limit=10, alpha=2.0, seed=0)
    fill(full, 9, episode=100)  # 9 transitions and the newest observation: every slot in use
    full.update_priorities(np.arange(9), np.full(9, td_error))
    assert np.isfinite(full.tree.total) and full.tree.total == pytest.approx(9 * full.priority_cap)
    full.sample(8)
    assert np.isfinite(full.last_weights).all() and (full.last_weights > 0).all()


def test_ordinary_td_errors_give_the_same_priorities_and_weights_as_the_formulas():
    """The cap and the weights' floor leave ordinary values bit for bit as they were."""
    rng = np.random.default_rng(0)
    for alpha, scale in ((0.6, 1.0), (1.0, 1e6), (2.0, 1e10)):
        memory = PrioritizedMemory(limit=64, alpha=alpha, beta=0.4, beta_steps=10, epsilon=1e-6, seed=0)
        fill(memory, 40)
        for _ in range(5):
            beta = memory.current_beta
            memory.sample(16)
            p = memory.tree.leaves[memory.last_indices]
            expected = ((p * (1.0 / p.min())) ** -beta).astype(np.float32)
            np.testing.assert_array_equal(memory.last_weights, expected)
            td = rng.normal(size=16) * scale
            memory.update_priorities(memory.last_indices, td)
            last = {int(i): e for i, e in zip(memory.last_indices, td)}  # the last write wins on repeats
            keys = np.array(list(last))
            np.testing.assert_array_equal(
                memory.tree.leaves[keys], (np.abs(np.array(list(last.values()))) + 1e-6) ** alpha
            )


def test_loaded_priorities_above_the_cap_are_clipped(tmp_path):
    memory = PrioritizedMemory(limit=10, alpha=1.0, seed=0)
    fill(memory, 4, episode=100)
    memory.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["priority_leaves"] = np.where(arrays["priority_leaves"] > 0, 1e308, 0.0)  # finite; their sum is not
    np.savez(tmp_path / "huge.npz", **arrays)
    memory.load(tmp_path / "huge.npz")
    assert np.isfinite(memory.tree.total) and memory.tree.total == pytest.approx(4 * memory.priority_cap)


def test_save_load_round_trip_keeps_the_tree(tmp_path):
    memory = PrioritizedMemory(limit=40, alpha=0.6, seed=3)
    fill(memory, 25)
    memory.update_priorities(np.arange(10), np.linspace(0.1, 3.0, 10))
    memory.sample(4)
    memory.save(tmp_path / "m.npz")
    other = PrioritizedMemory(limit=40, alpha=0.6, seed=99)
    other.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(other.tree.nodes, memory.tree.nodes)
    assert (other.max_priority, other.nb_batches) == (memory.max_priority, memory.nb_batches)
    a, b = memory.sample(16), other.sample(16)
    np.testing.assert_array_equal(memory.last_indices, other.last_indices)
    np.testing.assert_array_equal(a.state0, b.state0)
    # A plain memory's file loads with the maximum priority for each transition.
    plain = SequentialMemory(limit=40, seed=0)
    fill(plain, 12)
    plain.save(tmp_path / "plain.npz")
    other.load(tmp_path / "plain.npz")
    np.testing.assert_allclose(other.priorities, plain._valid.astype(float))


def test_weighted_mean_and_td_errors_helpers():
    x = np.array([1.0, 2.0, 3.0], np.float32)
    plain = GraphBatch(None, None, None, None, None)
    weighted = plain._replace(weight=np.array([1.0, 0.0, 0.5], np.float32))
    assert float(OffPolicyAgent.weighted_mean(x, plain)) == pytest.approx(2.0)
    assert float(OffPolicyAgent.weighted_mean(x, weighted)) == pytest.approx(2.5 / 3)
    assert OffPolicyAgent.td_errors(plain, x) == {}
    np.testing.assert_allclose(OffPolicyAgent.td_errors(weighted, -x)["td_error"], x)


def test_dqn_trains_with_prioritized_memory_and_updates_the_priorities():
    memory = PrioritizedMemory(limit=500, alpha=0.6, beta_steps=100, seed=0)
    agent = make_dqn_agent(memory=memory)
    agent.fit(make_line_env(), nb_steps=60, verbose=0, seed=0)
    # One batch per update after the 10 warm-up steps, except the last scheduled one (it runs with the next forward).
    assert memory.nb_batches == agent._updates - (agent._scheduled is not None) > 40
    assert memory.max_priority != 1.0
    p = memory.priorities[memory._valid]
    assert len(np.unique(p)) > 10  # set from each transition's own TD error
    assert np.isfinite(agent._last_metrics).all()


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac"])
def test_actor_critic_agents_train_with_prioritized_memory(kind, counting_env):
    env = counting_env()
    agent = build_agent(kind, env, warmup=10, gradient_steps=2)
    agent.memory = memory = PrioritizedMemory(limit=1000, seed=0)
    agent.fit(env, nb_steps=30, verbose=0, seed=0)
    assert memory.nb_batches == agent._updates - 2 * (agent._scheduled is not None) > 30
    assert memory.max_priority != 1.0
    assert len(np.unique(memory.priorities[memory._valid])) > 5


def test_naf_trains_with_prioritized_n_step_memory():
    from test_naf import TargetEnv
    from test_naf import make_agent as make_naf_agent

    memory = PrioritizedMemory(limit=1000, n_step=2, seed=0)
    agent = make_naf_agent(memory=memory, nb_steps_warmup=10)
    assert memory.gamma == agent.gamma
    agent.fit(TargetEnv(), nb_steps=40, verbose=0, seed=0)
    assert memory.nb_batches == agent._updates - (agent._scheduled is not None) > 20
    assert len(np.unique(memory.priorities[memory._valid])) > 5


def test_dqn_learns_cartpole_with_prioritized_replay():
    """keras-rl's CartPole configuration with prioritized replay, 3000 steps (threshold in the test)."""
    from dqn_cartpole import make_agent as make_cartpole_agent
    from dqn_cartpole import make_env

    keras.utils.set_random_seed(0)
    env = make_env()
    agent = make_cartpole_agent(env, seed=0)
    agent.memory = PrioritizedMemory(limit=50_000, alpha=0.6, beta=0.4, beta_steps=3000, seed=0)
    agent.fit(env, nb_steps=3000, verbose=0, seed=0)
    history = agent.test(make_env(), nb_episodes=5, visualize=False, verbose=0, seed=1000)
    assert np.mean(history.history["episode_reward"]) >= 150


def test_agent_checkpoint_keeps_the_priorities_and_resumes_identically(tmp_path):
    env = make_line_env()
    memory = PrioritizedMemory(limit=500, beta_steps=100, seed=0)
    agent = make_dqn_agent(memory=memory)
    agent.fit(env, nb_steps=30, verbose=0, seed=0)
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    saved = (memory.tree.nodes.copy(), memory.nb_batches, memory.max_priority)
    agent.fit(env, nb_steps=20, verbose=0, seed=1)

    other_env = make_line_env()
    other = make_dqn_agent(memory=PrioritizedMemory(limit=500, beta_steps=100, seed=5))
    other.load_checkpoint(tmp_path / "ckpt", env=other_env)
    np.testing.assert_array_equal(other.memory.tree.nodes, saved[0])
    assert (other.memory.nb_batches, other.memory.max_priority) == saved[1:]
    other.fit(other_env, nb_steps=20, verbose=0, seed=1)
    np.testing.assert_array_equal(other.memory.tree.nodes, memory.tree.nodes)
    assert other.memory.nb_batches == memory.nb_batches
