"""The public agent protocol the loops use: observe / train_scheduled, begin_run / end_run, np_random."""

import gymnasium as gym
import numpy as np
import pytest
from agent_builders import build_agent


def weights(agent):
    agent.sync_models()
    return [w.copy() for m in agent.layers for w in m.get_weights()]


def test_observe_and_train_scheduled_train_as_backward_and_forward_do():
    """A learner that stores transitions acted elsewhere ends with the weights of the agent that acted."""
    env = gym.make("Pendulum-v1", max_episode_steps=30)
    actor_agent = build_agent("td3", env, seed=3, warmup=10)
    learner = build_agent("td3", env, seed=3, warmup=10)
    actor_agent.begin_run(True, 60)
    learner.begin_run(True, 60)
    obs, _ = env.reset(seed=0)
    for _ in range(60):
        action = actor_agent.forward(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        actor_agent.backward(float(reward), terminated, truncated=truncated, next_observation=next_obs)
        learner.observe(obs, action, float(reward), terminated, truncated=truncated, next_observation=next_obs)
        learner.train_scheduled()
        actor_agent.step += 1
        learner.step += 1
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    actor_agent.forward(obs)  # runs the training the last backward scheduled
    learner.train_scheduled()
    learner.train_scheduled()  # nothing is due: no update
    actor_agent.end_run(True)
    learner.end_run(True)
    assert learner.memory.nb_transitions == actor_agent.memory.nb_transitions == 60
    for a, b in zip(weights(actor_agent), weights(learner)):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(learner.last_metrics[0])  # the critic trained


def test_begin_and_end_run_nest_and_hand_the_outer_run_back():
    env = gym.make("Pendulum-v1")
    agent = build_agent("ddpg", env)
    assert not agent.running
    agent.begin_run(True, 100)
    agent.stop_training = False
    assert agent.running and agent.training
    agent.begin_run(False)  # a test inside fit
    assert agent.training is False
    agent.end_run(False, aborted=True)  # Ctrl-C in the inner run stops the outer one too
    assert agent.running and agent.training and agent.stop_training
    agent.end_run(True)
    assert not agent.running and agent.training is False


def test_np_random_is_the_generator_fit_seeds():
    env = gym.make("Pendulum-v1", max_episode_steps=20)
    agent = build_agent("ddpg", env)
    agent.fit(env, nb_steps=5, verbose=0, seed=7)
    after_seed = agent.np_random.bit_generator.state
    agent.np_random = np.random.default_rng(7)
    agent.fit(env, nb_steps=5, verbose=0, seed=7)
    assert agent.np_random.bit_generator.state == after_seed
    with pytest.raises(TypeError, match=r"`np_random` must be a numpy Generator. Received: np_random=7"):
        agent.np_random = 7


def test_action_bounds_and_input_shapes_are_known_after_check_env():
    env = gym.make("Pendulum-v1")
    agent = build_agent("sac", env)
    assert agent.action_bounds == (None, None) and agent.input_shapes is None
    agent.check_env(env)
    low, high = agent.action_bounds
    np.testing.assert_array_equal(low, [-2.0])
    np.testing.assert_array_equal(high, [2.0])
    assert agent.input_shapes == [(1, 3)]
    before = agent.trace_count
    agent.set_action_bounds(np.array([-1.0], np.float32), np.array([1.0], np.float32))
    agent.test(env, nb_episodes=1, visualize=False, verbose=0, nb_max_episode_steps=3)
    assert agent.trace_count > before
    assert agent.transition_rows.width == 3  # [action, reward, terminal]
