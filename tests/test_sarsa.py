"""SARSAAgent: keras-rl's signature, the on-policy target r + gamma * Q(s', a'), truncation, training flag,
seeding, checkpoints, weights files, retracing, bad input, and a short seeded learning run."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers
from test_dqn import LineEnv, MetricsRecorder, make_line_env, q_model

from rl.agents import SARSAAgent, SarsaAgent
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy, GreedyQPolicy


def make_agent(seed=0, lr=1e-2, metrics=("mae",), **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("policy", EpsGreedyQPolicy(eps=0.3, seed=seed))
    agent = SARSAAgent(model=q_model((2,)), nb_actions=2, **kwargs)
    agent.compile(keras.optimizers.Adam(learning_rate=lr), metrics=list(metrics))
    return agent


def test_keras_rl_signature_and_defaults():
    keras.utils.set_random_seed(0)
    agent = SARSAAgent(q_model((2,)), 2)
    assert SarsaAgent is SARSAAgent
    assert isinstance(agent.policy, EpsGreedyQPolicy) and isinstance(agent.test_policy, GreedyQPolicy)
    assert (agent.gamma, agent.nb_steps_warmup, agent.train_interval, agent.delta_clip) == (0.99, 10, 1, np.inf)
    agent.compile("adam", metrics=["mae"])
    assert agent.metrics_names == ["loss", "mean_q", "mae"]


class Spy(GreedyQPolicy):
    """Greedy; records the Q-values and actions it saw."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def select_action(self, q_values):
        action = super().select_action(q_values=q_values)
        self.seen.append((np.array(q_values), action, self.agent.training))
        return action


def td_target(y_true, y_pred):
    return y_true


@pytest.mark.parametrize("time_limit, length", [(3, 50), (50, 1)])
def test_target_is_r_plus_gamma_q_of_the_next_action(time_limit, length):
    """The `td_target` metric shows the SARSA target of each update: r + gamma * Q(s', a') or r at a termination.

    With lr=0 the Q-values never change, so each target can be recomputed from what the policy saw.
    """
    policy = Spy()
    agent = make_agent(policy=policy, lr=0.0, metrics=[td_target], gamma=0.9, nb_steps_warmup=0)
    recorder = MetricsRecorder()
    env = make_line_env(length=length, time_limit=time_limit)
    agent.fit(env, nb_steps=7, verbose=0, callbacks=[recorder])
    rewards = [1.0 if length == 1 else -0.01] * 7
    seen = policy.seen
    # step 0 is not trained (step > nb_steps_warmup); step 1's target needs a_2, known at step 2
    if length == 1:  # every step terminates: target = r, trained by the next call (step 2's)
        assert recorder.metrics[2][2] == pytest.approx(rewards[1])
    else:
        # step 1's target r + gamma * Q(s_2, a_2); trained by the call that values s_3 after the truncation
        q_next = seen[2][0][seen[2][1]]
        assert recorder.metrics[2][2] == pytest.approx(rewards[1] + 0.9 * q_next, rel=1e-5)
        # step 2 is truncated: bootstrap from Q(s_3, a') with a' what the policy picks in s_3 (seen[3])
        trunc = seen[3]
        assert recorder.metrics[3][2] == pytest.approx(rewards[2] + 0.9 * trunc[0][trunc[1]], rel=1e-5)
    assert all(t for _, _, t in seen)
    assert len(recorder.metrics) == 7


def test_training_flag_and_test_does_not_train():
    policy, test_policy = Spy(), Spy()
    agent = make_agent(policy=policy, test_policy=test_policy, nb_steps_warmup=2)
    env = make_line_env()
    agent.fit(env, nb_steps=20, verbose=0)
    weights = agent.model.get_weights()
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert test_policy.seen and not any(t for _, _, t in test_policy.seen)
    for a, b in zip(agent.model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_learns_the_line_task():
    agent = make_agent(seed=0, policy=EpsGreedyQPolicy(eps=0.2, seed=0), lr=1e-2, gamma=0.95)
    env = make_line_env(length=4, time_limit=12)
    agent.fit(env, nb_steps=1500, verbose=0, seed=0)
    history = agent.test(env, nb_episodes=3, visualize=False, verbose=0)
    assert history.history["nb_episode_steps"] == [4, 4, 4]  # straight to the right end


def test_same_seed_same_run_and_exact_resume(tmp_path):
    def build():
        return make_agent(seed=2, policy=BoltzmannQPolicy(seed=2), nb_steps_warmup=3)

    runs = []
    for _ in range(2):
        agent, env = build(), make_line_env()
        agent.fit(env, nb_steps=20, verbose=0, seed=2)
        runs.append(agent.model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)

    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    history = agent.fit(env, nb_steps=25, verbose=0)
    resumed, env2 = build(), make_line_env()
    resumed.load_checkpoint(tmp_path / "ckpt", env=env2)
    history2 = resumed.fit(env2, nb_steps=25, verbose=0)
    assert history2.history["episode_reward"] == history.history["episode_reward"]
    for a, b in zip(resumed.model.get_weights(), agent.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_traces_weights_files_and_bad_input(tmp_path):
    agent = make_agent(nb_steps_warmup=2)
    env = make_line_env(length=1)  # episodes of one step: terminations leave two updates for one call
    agent.fit(env, nb_steps=10, verbose=0)
    agent.fit(make_line_env(), nb_steps=20, verbose=0)
    agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    traces = agent.trace_count
    agent.fit(make_line_env(), nb_steps=40, verbose=0)
    agent.fit(env, nb_steps=10, verbose=0)
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert agent.trace_count == traces

    agent.save_weights(str(tmp_path / "sarsa_{}_weights.h5f"))
    assert (tmp_path / "sarsa_model_weights.weights.h5").exists()
    other = make_agent(seed=1)
    other.load_weights(str(tmp_path / "sarsa_{}_weights.h5f"))
    for a, b in zip(other.model.get_weights(), agent.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ValueError, match="nb_actions=3"):
        SARSAAgent(q_model((2,)), nb_actions=3)
    with pytest.raises(ValueError, match="gamma=-0.1"):
        SARSAAgent(q_model((2,)), 2, gamma=-0.1)
    with pytest.raises(TypeError, match="train_interval=1.5"):
        SARSAAgent(q_model((2,)), 2, train_interval=1.5)
    with pytest.raises(TypeError, match="Discrete"):
        agent.fit(gym.make("Pendulum-v1"), nb_steps=2, verbose=0)
    wide = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    bad = SARSAAgent(wide, 2)
    bad.compile("adam")
    with pytest.raises(ValueError, match="input shape"):
        bad.fit(LineEnv(), nb_steps=2, verbose=0)


@pytest.mark.slow
def test_full_sarsa_example(tmp_path):
    import sarsa_cartpole
    from dqn_cartpole import main

    mean_return = main(["--verbose", "0", "--weights", str(tmp_path / "w.h5f")], make=sarsa_cartpole.make_agent)
    assert mean_return >= 120  # seeds 0, 1, 2 reach 142.4, 170.3, see docs/dqn.md
