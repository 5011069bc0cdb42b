import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import CountingEnv

from rl.callbacks import Callback
from rl.core import Agent, Processor


class RecordingAgent(Agent):
    """Acts with a constant and records what the loop hands it."""

    def __init__(self, action=1.0, interrupt_at=None, **kwargs):
        super().__init__(**kwargs)
        self.action = np.array([action], dtype=np.float32)
        self.interrupt_at = interrupt_at
        self.forwards, self.backwards = [], []

    def compile(self, optimizer=None, metrics=None):
        self.compiled = True

    def forward(self, observation):
        if self.interrupt_at is not None and len(self.forwards) == self.interrupt_at:
            raise KeyboardInterrupt
        self.forwards.append(np.array(observation))
        return self.action

    def backward(self, reward, terminal, truncated=False, next_observation=None):
        self.backwards.append((reward, terminal, truncated, np.array(next_observation)))
        return [float(reward)]

    @property
    def metrics_names(self):
        return ["reward_seen"]

    @property
    def layers(self):
        return []


def make_agent(**kwargs):
    agent = RecordingAgent(**kwargs)
    agent.compile()
    return agent


def test_fit_returns_history_and_counts_steps_across_calls():
    agent = make_agent()
    history = agent.fit(CountingEnv(terminate_at=5), nb_steps=12, verbose=0)
    assert isinstance(history, keras.callbacks.History)
    assert history.history["episode_reward"] == [5.0, 5.0]  # two finished episodes, reward 1 each step
    assert history.history["nb_episode_steps"] == [5, 5]
    assert history.history["nb_steps"] == [5, 10]
    assert agent.step == 12 and type(agent.step) is int
    agent.fit(CountingEnv(terminate_at=5), nb_steps=3, verbose=0)
    assert agent.step == 15


def test_terminated_truncated_and_loop_time_limit_reach_backward():
    agent = make_agent()
    agent.fit(CountingEnv(terminate_at=3), nb_steps=3, verbose=0)
    assert [(b[1], b[2]) for b in agent.backwards] == [(False, False), (False, False), (True, False)]

    agent = make_agent()
    agent.fit(gym.wrappers.TimeLimit(CountingEnv(), max_episode_steps=3), nb_steps=3, verbose=0)
    assert [(b[1], b[2]) for b in agent.backwards] == [(False, False), (False, False), (False, True)]

    agent = make_agent()
    agent.fit(CountingEnv(), nb_steps=6, verbose=0, nb_max_episode_steps=3)
    assert [(b[1], b[2]) for b in agent.backwards][:3] == [(False, False), (False, False), (False, True)]
    # The final observation of a truncated episode is handed over for bootstrapping...
    np.testing.assert_array_equal(agent.backwards[2][3], [3.0, 3.0])
    # ...and the next episode starts from a reset, not from it.
    np.testing.assert_array_equal(agent.forwards[3], [1000.0, 0.0])


def test_action_repetition_sums_rewards_and_steps_env_repeatedly():
    env = CountingEnv(terminate_at=100)
    agent = make_agent(action=0.5)
    agent.fit(env, nb_steps=4, action_repetition=3, verbose=0)
    assert env.t == 12
    assert [b[0] for b in agent.backwards] == [1.5] * 4


def test_actions_are_clipped_to_the_action_space():
    seen = []

    class Spy(CountingEnv):
        def step(self, action):
            seen.append(np.array(action))
            return super().step(action)

    agent = make_agent(action=5.0)
    agent.fit(Spy(), nb_steps=2, verbose=0)
    np.testing.assert_array_equal(seen[0], [2.0])


def test_ctrl_c_stops_cleanly_and_returns_history():
    agent = make_agent(interrupt_at=7)
    history = agent.fit(CountingEnv(terminate_at=3), nb_steps=100, verbose=0)
    assert history.history["nb_episode_steps"] == [3, 3]
    assert agent.step == 7 and not agent.training
    agent.interrupt_at = None
    agent.fit(CountingEnv(terminate_at=3), nb_steps=2, verbose=0)  # still usable
    assert agent.step == 9


def test_test_runs_episodes_without_counting_training_steps():
    agent = make_agent()
    history = agent.test(CountingEnv(terminate_at=4), nb_episodes=3, visualize=False, verbose=0)
    assert history.history["episode_reward"] == [4.0, 4.0, 4.0]
    assert agent.step == 0


def test_start_steps_use_the_policy_before_the_agent_acts():
    calls = []

    def policy(observation):
        calls.append(observation)
        return np.array([0.0], dtype=np.float32)

    agent = make_agent()
    agent.fit(
        CountingEnv(terminate_at=50), nb_steps=5, nb_max_start_steps=10, start_step_policy=policy, verbose=0, seed=3
    )
    nb_start = len(calls)
    assert 0 <= nb_start < 10
    assert agent.forwards[0][1] == nb_start  # the agent's first observation comes after the start steps


def test_seed_makes_env_resets_repeatable():
    class RandomStart(CountingEnv):
        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed)
            obs[1] = self.np_random.uniform()
            return obs, info

    starts = []
    for _ in range(2):
        agent = make_agent()
        agent.fit(RandomStart(terminate_at=2), nb_steps=6, verbose=0, seed=11)
        starts.append([f[1] for f in agent.forwards[::2]])
    assert starts[0] == starts[1]


def test_callbacks_get_episode_step_and_action_hooks_and_keras_callbacks_work():
    events = []

    class Spy(Callback):
        def on_episode_begin(self, episode, logs=None):
            events.append(("episode_begin", episode))

        def on_episode_end(self, episode, logs=None):
            events.append(("episode_end", episode, logs["episode_reward"]))

        def on_step_end(self, step, logs=None):
            events.append(("step_end", step, logs["reward"], list(logs["metrics"])))

        def on_action_begin(self, action, logs=None):
            events.append(("action",))

    class KerasSpy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch))
            if epoch == 1:
                self.model.stop_training = True

    agent = make_agent()
    agent.fit(CountingEnv(terminate_at=2), nb_steps=100, callbacks=[Spy(), KerasSpy()], verbose=0)
    assert events[:5] == [
        ("episode_begin", 0),
        ("action",),
        ("step_end", 0, 1.0, [1.0]),
        ("action",),
        ("step_end", 1, 1.0, [1.0]),
    ]
    assert ("episode_end", 0, 2.0) in events and ("epoch_end", 1) in events
    assert agent.step == 4  # EarlyStopping-style stop_training ends fit


def test_processor_hooks_are_applied():
    class Scale(Processor):
        def process_observation(self, observation):
            return observation * 2

        def process_reward(self, reward):
            return reward * 10

        def process_action(self, action):
            return action * 0.5

    agent = make_agent(processor=Scale())
    env = CountingEnv(terminate_at=10)
    agent.fit(env, nb_steps=2, verbose=0)
    np.testing.assert_array_equal(agent.forwards[1], [2.0, 2.0])
    assert agent.backwards[0][0] == 5.0  # action 1.0 -> 0.5 -> reward 0.5 * 10


class OldGymEnv(CountingEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, info


class OldResetEnv(CountingEnv):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0]


class NanEnv(CountingEnv):
    def __init__(self, where):
        super().__init__()
        self.where = where

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.t == 3:
            if self.where == "reward":
                reward = float("nan")
            else:
                obs[0] = np.inf
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize(
    "env, error, words",
    [
        (OldGymEnv(), TypeError, "length 4"),
        (OldResetEnv(), TypeError, r"\(observation, info\)"),
        (NanEnv("reward"), ValueError, "non-finite reward at step 2"),
        (NanEnv("observation"), ValueError, "NaN or inf at step 2"),
        ("CartPole-v1", TypeError, "env"),
    ],
)
def test_bad_environments_get_clear_errors(env, error, words):
    with pytest.raises(error, match=words):
        make_agent().fit(env, nb_steps=10, verbose=0)


def test_fit_and_test_need_compile_and_valid_arguments():
    agent = RecordingAgent()
    with pytest.raises(ValueError, match="compile"):
        agent.fit(CountingEnv(), nb_steps=10, verbose=0)
    with pytest.raises(ValueError, match="compile"):
        agent.test(CountingEnv(), verbose=0)
    agent.compile()
    with pytest.raises(ValueError, match="nb_steps"):
        agent.fit(CountingEnv(), nb_steps=0)
    with pytest.raises(TypeError, match="nb_steps"):
        agent.fit(CountingEnv(), nb_steps=10.5)
    with pytest.raises(ValueError, match="action_repetition"):
        agent.fit(CountingEnv(), nb_steps=10, action_repetition=0)
    with pytest.raises(ValueError, match="nb_episodes"):
        agent.test(CountingEnv(), nb_episodes=0)
    with pytest.raises(TypeError, match="processor"):
        RecordingAgent(processor="scale")


def test_visualize_without_render_mode_warns_and_rgb_frames_are_collected():
    agent = make_agent()
    with pytest.warns(UserWarning, match="render_mode"):
        agent.test(CountingEnv(terminate_at=2), nb_episodes=1, visualize=True, verbose=0)
    from rl.callbacks import Visualizer

    vis = Visualizer()
    agent.test(
        CountingEnv(terminate_at=3, render_mode="rgb_array"), nb_episodes=1, visualize=False, callbacks=[vis], verbose=0
    )
    assert len(vis.frames) == 3
