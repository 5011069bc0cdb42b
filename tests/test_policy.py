"""rl.policy: keras-rl's policies, seeded, with their states for checkpoints."""

import json

import numpy as np
import pytest

from rl.policy import (
    BoltzmannGumbelQPolicy,
    BoltzmannQPolicy,
    EpsGreedyQPolicy,
    GreedyQPolicy,
    LinearAnnealedPolicy,
    MaxBoltzmannQPolicy,
    Policy,
    SoftmaxPolicy,
)


class FakeAgent:
    def __init__(self, training=True, step=0):
        self.training = training
        self.step = step


Q = np.array([0.0, 1.0, 3.0, 1.0], np.float32)


def frequencies(policy, n=4000, q=Q):
    counts = np.bincount([policy.select_action(q_values=q) for _ in range(n)], minlength=len(q))
    return counts / n


def test_greedy_picks_the_largest_q_value():
    assert GreedyQPolicy().select_action(q_values=Q) == 2
    assert GreedyQPolicy().select_action(q_values=[5.0, 5.0]) == 0  # the first on ties


def test_eps_greedy_frequencies_follow_eps():
    f = frequencies(EpsGreedyQPolicy(eps=0.4, seed=0))
    # greedy with probability 0.6 plus a uniform draw (0.4 / 4 per action)
    np.testing.assert_allclose(f, [0.1, 0.1, 0.7, 0.1], atol=0.03)
    assert set(frequencies(EpsGreedyQPolicy(eps=0.0, seed=0), n=200)) == {0.0, 1.0}


def test_boltzmann_frequencies_are_the_softmax_of_q_over_tau():
    tau = 2.0
    p = np.exp(Q / tau) / np.exp(Q / tau).sum()
    np.testing.assert_allclose(frequencies(BoltzmannQPolicy(tau=tau, seed=1)), p, atol=0.03)


def test_boltzmann_clip_bounds_q_over_tau_and_handles_huge_values():
    policy = BoltzmannQPolicy(tau=1.0, clip=(-1.0, 1.0), seed=0)
    # clip(q) = [-1, 1]: probabilities e^-1 : e^1
    p = np.exp([-1.0, 1.0]) / np.exp([-1.0, 1.0]).sum()
    np.testing.assert_allclose(frequencies(policy, q=np.array([-1e6, 1e6])), p, atol=0.03)
    assert BoltzmannQPolicy(seed=0).select_action(q_values=np.array([1e30, -1e30])) == 0  # no overflow


def test_max_boltzmann_mixes_greedy_and_boltzmann():
    eps = 0.5
    soft = np.exp(Q) / np.exp(Q).sum()
    expected = eps * soft + (1 - eps) * np.eye(4)[2]
    np.testing.assert_allclose(frequencies(MaxBoltzmannQPolicy(eps=eps, seed=2)), expected, atol=0.03)


def test_softmax_policy_draws_from_given_probabilities():
    policy = SoftmaxPolicy(seed=0)
    draws = [policy.select_action(nb_actions=3, probs=[0.2, 0.0, 0.8]) for _ in range(3000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 3000, [0.2, 0.0, 0.8], atol=0.03)
    with pytest.raises(ValueError, match="probs"):
        policy.select_action(nb_actions=3, probs=[0.5, 0.6, 0.1])


def test_boltzmann_gumbel_counts_actions_and_needs_training():
    policy = BoltzmannGumbelQPolicy(C=1.0, seed=0)
    agent = FakeAgent(training=True, step=0)
    policy._set_agent(agent)
    policy.select_action(q_values=Q)
    assert policy.action_counts.sum() == 4 + 1  # starts at one per action
    for step in range(1, 50):
        agent.step = step
        policy.select_action(q_values=Q)
    assert policy.action_counts.sum() == 4 + 50
    assert policy.action_counts[2] > 25  # the best action dominates
    agent.step = 0
    policy.select_action(q_values=Q)  # a new run: the counts start again
    assert policy.action_counts.sum() == 5
    agent.training = False
    with pytest.raises(ValueError, match="training only"):
        policy.select_action(q_values=Q)


def test_linear_annealed_values_and_metrics():
    inner = EpsGreedyQPolicy(seed=0)
    policy = LinearAnnealedPolicy(inner, attr="eps", value_max=1.0, value_min=0.1, value_test=0.05, nb_steps=100)
    agent = FakeAgent(training=True, step=0)
    policy._set_agent(agent)
    assert inner.agent is agent
    assert policy.metrics_names == ["mean_eps"]
    for step, value in ((0, 1.0), (50, 0.55), (100, 0.1), (1000, 0.1)):
        agent.step = step
        policy.select_action(q_values=Q)
        assert inner.eps == pytest.approx(value)
        assert policy.metrics == [pytest.approx(value)]
    agent.training = False
    policy.select_action(q_values=Q)
    assert inner.eps == pytest.approx(0.05)
    with pytest.raises(ValueError, match="attr='epsilon'"):
        LinearAnnealedPolicy(inner, attr="epsilon", value_max=1, value_min=0, value_test=0, nb_steps=10)
    with pytest.raises(ValueError, match="agent"):
        LinearAnnealedPolicy(EpsGreedyQPolicy(), "eps", 1.0, 0.1, 0.0, 10).select_action(q_values=Q)


def test_same_seed_same_draws_and_state_round_trip():
    a, b = BoltzmannQPolicy(seed=7), BoltzmannQPolicy(seed=7)
    assert [a.select_action(q_values=Q) for _ in range(50)] == [b.select_action(q_values=Q) for _ in range(50)]
    state = json.loads(json.dumps(a.get_state()))  # JSON-compatible, as checkpoints store it
    expected = [a.select_action(q_values=Q) for _ in range(50)]
    c = BoltzmannQPolicy(seed=99)
    c.set_state(state)
    assert [c.select_action(q_values=Q) for _ in range(50)] == expected
    with pytest.raises(ValueError, match="rng"):
        c.set_state({"nope": 1})


def test_global_numpy_seed_makes_unseeded_policies_repeatable():
    np.random.seed(3)
    a = EpsGreedyQPolicy(eps=0.5)
    np.random.seed(3)
    b = EpsGreedyQPolicy(eps=0.5)
    assert [a.select_action(q_values=Q) for _ in range(30)] == [b.select_action(q_values=Q) for _ in range(30)]


def test_gumbel_state_keeps_the_counts():
    policy = BoltzmannGumbelQPolicy(seed=0)
    policy._set_agent(FakeAgent(step=0))
    policy.select_action(q_values=Q)
    clone = BoltzmannGumbelQPolicy(seed=1)
    clone.set_state(json.loads(json.dumps(policy.get_state())))
    np.testing.assert_array_equal(clone.action_counts, policy.action_counts)


def test_configs():
    assert EpsGreedyQPolicy(eps=0.3).get_config() == {"eps": 0.3}
    assert BoltzmannQPolicy(tau=2.0).get_config() == {"tau": 2.0, "clip": [-500.0, 500.0]}
    assert MaxBoltzmannQPolicy().get_config() == {"eps": 0.1, "tau": 1.0, "clip": [-500.0, 500.0]}
    assert BoltzmannGumbelQPolicy(C=2.0).get_config() == {"C": 2.0}
    config = LinearAnnealedPolicy(EpsGreedyQPolicy(), "eps", 1.0, 0.1, 0.05, 10).get_config()
    assert config["inner_policy"] == {"class_name": "EpsGreedyQPolicy", "config": {"eps": 0.1}}
    assert Policy().metrics_names == [] and Policy().metrics == []


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: EpsGreedyQPolicy(eps=1.5), "eps=1.5"),
        (lambda: BoltzmannQPolicy(tau=0.0), "tau=0.0"),
        (lambda: BoltzmannQPolicy(clip=(1.0, -1.0)), "clip"),
        (lambda: BoltzmannGumbelQPolicy(C=-1.0), "C=-1.0"),
        (lambda: LinearAnnealedPolicy("eps-greedy", "eps", 1, 0, 0, 10), "inner_policy"),
        (lambda: LinearAnnealedPolicy(EpsGreedyQPolicy(), "eps", 1, 0, 0, 0), "nb_steps=0"),
        (lambda: EpsGreedyQPolicy(seed=-1), "seed=-1"),
    ],
)
def test_bad_arguments_name_the_value(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_bad_q_values_are_refused():
    with pytest.raises(ValueError, match="q_values"):
        GreedyQPolicy().select_action(q_values=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="q_values"):
        EpsGreedyQPolicy().select_action(q_values=[])


def test_boltzmann_with_many_actions():
    q = np.linspace(0.0, 3.0, 40)
    p = np.exp(q) / np.exp(q).sum()
    np.testing.assert_allclose(frequencies(BoltzmannQPolicy(seed=4), n=6000, q=q), p, atol=0.02)
