"""What every off-policy agent on the engine promises: seeding, exact resume, no retracing, learning."""

import gymnasium as gym
import numpy as np
import pytest
from agent_builders import build_agent
from conftest import CountingEnv

KINDS = ["ddpg", "td3", "sac"]


def weights(agent):
    return [w for m in agent.models.values() for w in m.get_weights()]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_same_returns_and_weights(kind):
    runs = []
    for _ in range(2):
        env = CountingEnv(terminate_at=20)
        agent = build_agent(kind, env, seed=4)
        history = agent.fit(env, nb_steps=80, verbose=0, seed=4)
        runs.append((history.history["episode_reward"], weights(agent)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    other = build_agent(kind, CountingEnv(terminate_at=20), seed=5)
    other.fit(CountingEnv(terminate_at=20), nb_steps=80, verbose=0, seed=5)
    assert any(not np.array_equal(a, b) for a, b in zip(weights(other), runs[0][1]))


@pytest.mark.parametrize("kind", KINDS)
def test_a_resumed_run_continues_as_the_uninterrupted_one(kind, tmp_path):
    """Checkpoint at an episode boundary, resume in a new agent: the same weights as one straight run.
    The observation is [t] (obs_dim=1), so a fresh environment starts its episodes as the old one did."""
    env = CountingEnv(terminate_at=20, obs_dim=1)
    agent = build_agent(kind, env, seed=3)
    agent.fit(env, nb_steps=80, verbose=0, seed=3)
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    straight = agent.fit(env, nb_steps=60, verbose=0).history["episode_reward"]

    env2 = CountingEnv(terminate_at=20, obs_dim=1)
    resumed = build_agent(kind, env2, seed=99)  # other initial weights: all must come from the checkpoint
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    assert resumed.step == 80
    again = resumed.fit(env2, nb_steps=60, verbose=0).history["episode_reward"]
    np.testing.assert_allclose(again, straight, rtol=1e-5)
    for a, b in zip(weights(resumed), weights(agent)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_is_retraced_after_the_first_steps(kind):
    env = CountingEnv(terminate_at=15)
    agent = build_agent(kind, env, warmup=10)
    agent.fit(env, nb_steps=40, verbose=0)
    agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    traces = agent.trace_count
    # acting while training, the training call (TD3: one per place in its policy-delay cycle), acting in test
    assert traces == (4 if kind == "td3" else 3)
    agent.fit(env, nb_steps=150, verbose=0)
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert agent.trace_count == traces


@pytest.mark.parametrize("kind", KINDS)
def test_learns_to_push_the_action_to_its_bound_on_a_tiny_env(kind):
    """Reward = action in [-2, 2], 10-step episodes: the best return is 20. Observations are [t]."""
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=10)
    agent = build_agent(kind, env, warmup=100, batch_size=32, limit=5000, gamma=0.9, target_model_update=0.01)
    before = np.mean(agent.test(env, nb_episodes=3, visualize=False, verbose=0).history["episode_reward"])
    agent.fit(env, nb_steps=1500, verbose=0, seed=0)
    after = np.mean(agent.test(env, nb_episodes=3, visualize=False, verbose=0).history["episode_reward"])
    # SAC's entropy bonus keeps its mean action a little inside the bound (about 1.8 of 2 here).
    threshold = 17.0 if kind == "sac" else 19.0
    assert before < threshold  # untrained, it does not solve it already
    assert after >= threshold, (before, after)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_weights_by_role(kind, tmp_path):
    env = CountingEnv(terminate_at=10)
    agent = build_agent(kind, env)
    agent.fit(env, nb_steps=40, verbose=0)
    agent.save_weights(tmp_path / "agent_{}.h5f")
    expected = {
        "ddpg": ["actor", "critic"],
        "td3": ["actor", "critic", "critic2"],
        "sac": ["actor", "critic", "critic2"],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"agent_{r}.weights.h5" for r in expected[kind]]
    other = build_agent(kind, env, seed=1)
    other.load_weights(tmp_path / "agent_{}.h5f")
    obs = np.array([3.0, 3.0], np.float32)
    other.check_env(env)  # the action bounds (SAC scales its squashed actions to them)
    agent.reset_states(), other.reset_states()
    np.testing.assert_array_equal(other.forward(obs), agent.forward(obs))
    for target, source in other.targets.items():
        for t, s in zip(other.models[target].get_weights(), other.models[source].get_weights()):
            np.testing.assert_array_equal(t, s)


def _test_mode_actions(agent, observations):
    """The agent's noise-free actions for `observations` `[N, *obs]`, its networks unchanged."""
    agent.training = False
    actions = np.stack([agent.forward(o) for o in observations])
    agent.reset_states()
    return actions


@pytest.mark.parametrize("kind", KINDS)
def test_the_first_nb_steps_random_act_uniformly_then_the_policy_acts(kind):
    """No training (warm-up 1000): the networks stay as built, so the policy's actions are known."""

    def run(seed):
        env = CountingEnv(terminate_at=25, obs_dim=1)
        agent = build_agent(kind, env, seed=seed, warmup=1000, nb_steps_random=40, random_process=None)
        agent.fit(env, nb_steps=60, verbose=0, seed=seed)
        return agent, agent.memory.to_arrays()

    agent, data = run(1)
    assert agent.get_config()["nb_steps_random"] == 40
    drawn, policy = data["actions"][:40, 0], _test_mode_actions(agent, data["observations"])[:, 0]
    assert np.all((drawn >= -2.0) & (drawn <= 2.0))
    assert np.std(drawn) > 0.9  # uniform on [-2, 2]: 1.15
    assert np.all(np.abs(drawn - policy[:40]) > 1e-4)
    if kind != "sac":  # SAC samples its policy while training; DDPG and TD3 act with the actor (no noise here)
        np.testing.assert_allclose(data["actions"][40:, 0], policy[40:], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(run(1)[1]["actions"], data["actions"])  # seeded by fit(seed=...)
    assert not np.array_equal(run(2)[1]["actions"][:40], data["actions"][:40])


def test_random_steps_need_bounds_to_draw_from():
    from rl.core import Processor

    class Doubling(Processor):
        def process_action(self, action):
            return 2.0 * action

    env = CountingEnv(terminate_at=10)
    agent = build_agent("ddpg", env, nb_steps_random=5, processor=Doubling())
    with pytest.raises(ValueError, match="nb_steps_random=5"):
        agent.fit(env, nb_steps=10, verbose=0)
    with pytest.raises(ValueError, match="nb_steps_random=-1"):
        build_agent("ddpg", env, nb_steps_random=-1)


@pytest.mark.parametrize("kind", ["ddpg", "sac"])
def test_a_run_resumed_inside_the_random_steps_continues_as_the_uninterrupted_one(kind, tmp_path):
    env = CountingEnv(terminate_at=20, obs_dim=1)
    agent = build_agent(kind, env, seed=3, nb_steps_random=50)
    agent.fit(env, nb_steps=40, verbose=0, seed=3)
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    straight = agent.fit(env, nb_steps=40, verbose=0)
    env2 = CountingEnv(terminate_at=20, obs_dim=1)
    resumed = build_agent(kind, env2, seed=99, nb_steps_random=50)
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    again = resumed.fit(env2, nb_steps=40, verbose=0)
    np.testing.assert_array_equal(resumed.memory.to_arrays()["actions"], agent.memory.to_arrays()["actions"])
    np.testing.assert_allclose(again.history["episode_reward"], straight.history["episode_reward"], rtol=1e-5)
