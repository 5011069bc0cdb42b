"""TD3's and SAC's own behaviour: TD3 reduces to DDPG, delays and twins; SAC's sampling and entropy."""

import keras
import numpy as np
import pytest
from agent_builders import build_agent, sac_models
from conftest import CountingEnv, small_models

from rl.agents import SACAgent, TD3Agent
from rl.memory import SequentialMemory


def test_td3_without_its_tricks_trains_to_exactly_ddpgs_weights():
    runs = []
    for kind, extra in (("ddpg", {}), ("td3", dict(policy_delay=1, target_policy_noise=0.0, n_critics=1))):
        env = CountingEnv(terminate_at=20)
        agent = build_agent(kind, env, seed=7, target_model_update=0.05, **extra)
        history = agent.fit(env, nb_steps=120, verbose=0, seed=7)
        runs.append((history.history["episode_reward"], [w for m in agent.layers for w in m.get_weights()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_td3_delays_the_actor_and_clones_twin_critics():
    env = CountingEnv(terminate_at=20)
    agent = build_agent("td3", env, warmup=10)
    first = agent.models["critic"].get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(first, agent.models["critic2"].get_weights()))
    assert agent.models["critic2"].count_params() == agent.critic.count_params()
    agent.fit(env, nb_steps=51, verbose=0)  # steps 11..50 schedule 40 updates; the last is still pending
    assert int(agent.critic_optimizer.iterations.numpy()) == 39
    assert int(agent.actor_optimizer.iterations.numpy()) == 19  # every second update
    assert agent.get_config()["policy_delay"] == 2


def test_td3_target_noise_is_seeded_and_changes_the_result():
    results = []
    for noise in (0.2, 0.2, 0.0):
        env = CountingEnv(terminate_at=20)
        agent = build_agent("td3", env, seed=2, target_policy_noise=noise)
        agent.fit(env, nb_steps=60, verbose=0, seed=2)
        results.append(agent.critic.get_weights())
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(results[0], results[2]))


def test_td3_accepts_a_list_of_critics_with_their_own_action_inputs():
    keras.utils.set_random_seed(0)
    actor, critic1, a1 = small_models((2,))
    _, critic2, a2 = small_models((2,), hidden=8)
    agent = TD3Agent(
        1,
        actor,
        [critic1, critic2],
        [a1, a2],
        SequentialMemory(100),
        batch_size=4,
        nb_steps_warmup_critic=5,
        nb_steps_warmup_actor=5,
    )
    agent.compile("adam")
    assert agent.models["critic2"] is critic2 and agent.critic_roles == ["critic", "critic2"]
    env = CountingEnv(terminate_at=10)
    agent.fit(env, nb_steps=20, verbose=0)
    assert agent.step == 20


def _td3(**kwargs):
    keras.utils.set_random_seed(0)
    actor, critic, action_in = small_models((2,))
    args = dict(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=SequentialMemory(100))
    args.update(kwargs)
    return TD3Agent(**args)


def _sac(**kwargs):
    keras.utils.set_random_seed(0)
    actor, critic, action_in = sac_models((2,))
    args = dict(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=SequentialMemory(1000))
    args.update(kwargs)
    return SACAgent(**args)


def _other_critic():
    _, critic, action_in = small_models((2,))
    return critic, action_in


BAD = [
    (_td3, {"policy_delay": 0}, ValueError, "policy_delay=0"),
    (_td3, {"policy_delay": 1.5}, TypeError, "policy_delay=1.5"),
    (_td3, {"target_policy_noise": -0.1}, ValueError, "target_policy_noise=-0.1"),
    (_td3, {"target_noise_clip": -1}, ValueError, "target_noise_clip=-1"),
    (_td3, {"n_critics": 0}, ValueError, "n_critics=0"),
    (_td3, {"critic_action_input": [keras.Input((1,))]}, ValueError, "critic_action_input"),
    (_sac, {"actor": small_models((2,))[0]}, ValueError, r"\(None, 2\)"),
    (_sac, {"ent_coef": "automatic"}, ValueError, "ent_coef='automatic'"),
    (_sac, {"ent_coef": "auto_-1"}, ValueError, "ent_coef='auto_-1'"),
    (_sac, {"ent_coef": 0.0}, ValueError, "ent_coef=0.0"),
    (_sac, {"target_entropy": "high"}, ValueError, "target_entropy='high'"),
    (_sac, {"log_std_bounds": (2.0, -2.0)}, ValueError, "log_std_bounds"),
    (_sac, {"nb_steps_warmup": -1}, ValueError, "nb_steps_warmup=-1"),
    (_sac, {"nb_steps_random": -5}, ValueError, "nb_steps_random=-5"),
    (_td3, {"nb_steps_random": 1.5}, TypeError, "nb_steps_random=1.5"),
]


@pytest.mark.parametrize("make, kwargs, error, words", BAD, ids=[f"{m.__name__}-{list(k)[0]}" for m, k, _, _ in BAD])
def test_bad_arguments_name_the_argument_and_the_value(make, kwargs, error, words):
    with pytest.raises(error, match=words):
        make(**kwargs)


def test_a_critic_list_must_match_its_action_inputs():
    c1, a1 = _other_critic()
    c2, a2 = _other_critic()
    with pytest.raises(ValueError, match="each critic's action input"):
        _td3(critic=[c1, c2], critic_action_input=[a1])
    with pytest.raises(ValueError, match="must be one of the critic2's inputs"):
        _td3(critic=[c1, c2], critic_action_input=[a1, a1])
    with pytest.raises(ValueError, match="n_critics"):
        _td3(critic=[c1, c2], critic_action_input=[a1, a2], n_critics=3)


def test_sac_tests_with_the_mean_and_trains_with_samples_inside_the_bounds():
    env = CountingEnv(terminate_at=10, obs_dim=1)
    agent = build_agent("sac", env)
    agent.check_env(env)
    obs = np.array([1.0], np.float32)
    agent.training = False
    mean_action = agent.forward(obs)
    np.testing.assert_array_equal(agent.forward(obs), mean_action)
    out = agent.actor(obs[None, None]).numpy()[0]
    np.testing.assert_allclose(mean_action, 2.0 * np.tanh(out[:1]), rtol=1e-6)  # tanh(mean) scaled to [-2, 2]
    agent.training = True
    samples = np.array([agent.forward(obs) for _ in range(50)])
    agent.training = False
    assert len(np.unique(samples)) == 50 and np.all(np.abs(samples) <= 2.0)


@pytest.mark.parametrize("ent_coef, learned", [("auto", True), ("auto_0.5", True), (0.2, False)])
def test_sac_entropy_coefficient_is_learned_only_when_auto(ent_coef, learned):
    env = CountingEnv(terminate_at=10, obs_dim=1)
    agent = build_agent("sac", env, ent_coef=ent_coef, warmup=10)
    start = float(np.exp(agent.log_ent_coef.numpy()))
    assert start == pytest.approx({"auto": 1.0, "auto_0.5": 0.5}.get(ent_coef, 0.2), rel=1e-6)
    agent.fit(env, nb_steps=60, verbose=0)
    end = float(np.exp(agent.log_ent_coef.numpy()))
    assert (end != start) is learned
    assert ("entropy" in agent.optimizers) is learned
    assert agent.metrics_names[:4] == ["critic_loss", "actor_loss", "mean_q", "ent_coef"]
