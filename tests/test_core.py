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


# ---------------------------------------------------------------- observations are copied
class InPlaceEnv(CountingEnv):
    """Returns the same observation object at every step and updates it in place, as many
    simulators and robotics wrappers do: obs = [1000 * episode + t, t] (an array, a dict of one
    array, or a tuple of one array)."""

    def __init__(self, kind="array", **kwargs):
        super().__init__(**kwargs)
        self.buffer = np.zeros(self.obs_dim, dtype=np.float32)
        self.kind = kind
        self.observation = {"array": self.buffer, "dict": {"x": self.buffer}, "tuple": (self.buffer,)}[kind]

    def _obs(self):
        self.buffer[:] = super()._obs()
        return self.observation


class KeepingAgent(RecordingAgent):
    """Keeps the observations it is given as they are (no copy), as an agent's memory would."""

    def forward(self, observation):
        self.forwards.append(observation)
        return self.action

    def backward(self, reward, terminal, truncated=False, next_observation=None):
        self.backwards.append((reward, terminal, truncated, next_observation))
        return [float(reward)]


@pytest.mark.parametrize("kind", ["array", "dict", "tuple"])
@pytest.mark.parametrize("start_steps", [0, 3])
def test_observations_updated_in_place_by_the_env_are_kept_as_they_were(kind, start_steps):
    agent = KeepingAgent()
    agent.compile()
    agent.fit(InPlaceEnv(kind, terminate_at=5), nb_steps=20, verbose=0, nb_max_start_steps=start_steps, seed=0)
    unpack = {"array": lambda o: o, "dict": lambda o: o["x"], "tuple": lambda o: o[0]}[kind]
    # Each transition's next observation is one step after the observation it was acted on.
    for observation, (_, _, _, next_observation) in zip(agent.forwards, agent.backwards):
        assert type(observation) is type(next_observation) is type(InPlaceEnv(kind).observation)
        np.testing.assert_array_equal(unpack(next_observation) - unpack(observation), [1.0, 1.0])
    assert len({id(unpack(o)) for o in agent.forwards}) == 20  # each kept observation is its own copy


def test_observations_a_processor_returns_as_views_are_copied():
    class ReusedBuffer(Processor):
        """Writes every observation into one buffer of its own and returns a view of it."""

        def __init__(self):
            self.buffer = np.zeros(2, np.float32)

        def process_observation(self, observation):
            self.buffer[:] = observation
            return self.buffer[:]

    agent = KeepingAgent(processor=ReusedBuffer())
    agent.compile()
    agent.fit(CountingEnv(terminate_at=5), nb_steps=10, verbose=0)
    starts = [o[1] for o in agent.forwards]
    assert starts == [0, 1, 2, 3, 4] * 2


@pytest.mark.parametrize("window_length", [1, 3])
def test_ddpg_stores_right_transitions_with_an_env_that_updates_in_place(models, window_length):
    """keras-rl's test_copy_observations: every stored transition has s1 - s0 == 1 as the env guarantees."""
    from rl.agents import DDPGAgent
    from rl.memory import SequentialMemory

    keras.utils.set_random_seed(0)
    env = InPlaceEnv(terminate_at=5)
    actor, critic, action_in = models((2,), window_length=window_length)
    memory = SequentialMemory(limit=1000, window_length=window_length, seed=0)
    agent = DDPGAgent(1, actor, critic, action_in, memory, nb_steps_warmup_critic=5, nb_steps_warmup_actor=5)
    agent.compile("adam")
    agent.fit(env, nb_steps=20, verbose=0)
    batch = memory.sample(400)
    # The newest observation of each window: state1's is one step after state0's.
    np.testing.assert_array_equal(batch.state1[:, -1] - batch.state0[:, -1], np.ones((400, 2)))
    assert memory.nb_transitions == 20


# ---------------------------------------------------------------- non-finite actions
class ActingAgent(RecordingAgent):
    def __init__(self, action, nan_at=0, models=(), **kwargs):
        super().__init__(**kwargs)
        self.bad_action, self.nan_at, self.models = action, nan_at, list(models)

    def forward(self, observation):
        self.forwards.append(observation)
        return self.bad_action if len(self.forwards) > self.nan_at else np.zeros(1, np.float32)

    @property
    def layers(self):
        return self.models


class StepSpy(CountingEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.actions = []

    def step(self, action):
        self.actions.append(np.array(action, dtype=np.float64))
        return super().step(action)


@pytest.mark.parametrize(
    "action",
    [
        np.array([np.nan], np.float32),
        np.array(np.inf),
        np.float32(np.nan),
        float("-inf"),
        [np.nan],
        (0.5, float("nan")),
        {"a": np.array([np.nan])},
    ],
    ids=["array", "0-d array", "numpy scalar", "float", "list", "tuple", "dict"],
)
def test_a_non_finite_action_is_refused_before_the_env_and_backward_see_it(action):
    agent = ActingAgent(action, nan_at=2)
    agent.compile()
    env = StepSpy()
    with pytest.raises(
        ValueError, match=r"^ActingAgent\.forward returned a non-finite action at step 2 of episode 0 .*action="
    ) as info:
        agent.fit(env, nb_steps=10, verbose=0)
    assert "non-finite weights" not in str(info.value)
    assert len(env.actions) == 2 and np.isfinite(env.actions).all()
    assert len(agent.backwards) == 2
    assert not agent.training and agent.step == 2
    agent.nan_at = 0  # `test` refuses it too
    with pytest.raises(ValueError, match="non-finite action at step 0 of episode 0"):
        agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    assert len(env.actions) == 2


def test_finite_and_integer_actions_pass():
    for action in (np.array([1], np.int64), 1, np.int64(2), [0.5], (0.5,), np.float32(0.5), True):
        agent = ActingAgent(action)
        agent.compile()
        agent.fit(CountingEnv(), nb_steps=2, verbose=0)
        assert agent.step == 2


def test_the_error_names_the_networks_with_non_finite_weights():
    def model(name):
        x = keras.Input((2,))
        return keras.Model(x, keras.layers.Dense(1)(x), name=name)

    good, bad = model("critic"), model("policy")
    bad.set_weights([np.full((2, 1), np.nan, np.float32), np.zeros(1, np.float32)])
    agent = ActingAgent(np.array([np.nan]), models=[good, bad])
    agent.compile()
    with pytest.raises(ValueError, match=r"non-finite action at step 0 .*; non-finite weights in: policy$"):
        agent.fit(CountingEnv(), nb_steps=5, verbose=0)


# ---------------------------------------------------------------- observations of every kind are checked
class KindEnv(CountingEnv):
    """Returns observations of a given Python type; NaN in them at step `nan_at`."""

    def __init__(self, make, nan_at=None, **kwargs):
        super().__init__(**kwargs)
        self.make, self.nan_at = make, nan_at

    def _obs(self):
        value = np.nan if self.t == self.nan_at else float(self.t)
        return self.make(value)


OBSERVATION_KINDS = {
    "list": lambda v: [v, 1.0],
    "tuple": lambda v: (np.array([v]), 1.0),
    "dict": lambda v: {"a": np.array([v, 0.0]), "b": [1.0]},
    "numpy scalar": lambda v: np.float32(v),
    "float": lambda v: v,
    "float64 array": lambda v: np.array([v, 1.0]),
}


@pytest.mark.parametrize("make", OBSERVATION_KINDS.values(), ids=OBSERVATION_KINDS.keys())
def test_non_finite_observations_of_every_kind_are_refused(make):
    def agent():
        keeping = KeepingAgent()
        keeping.compile()
        return keeping

    finite = agent()
    finite.fit(KindEnv(make, terminate_at=3), nb_steps=6, verbose=0)  # fine without NaN
    assert finite.step == 6 and len(finite.forwards) == 6
    refused = agent()
    with pytest.raises(ValueError, match=r"observation with NaN or inf at step 1 of episode 0"):
        refused.fit(KindEnv(make, nan_at=2), nb_steps=6, verbose=0)
    assert len(refused.backwards) == 1  # the step that returned it never reached backward
    with pytest.raises(ValueError, match=r"observation with NaN or inf at step 0 of episode 0"):
        agent().fit(KindEnv(make, nan_at=0), nb_steps=6, verbose=0)  # the reset's observation


# ---------------------------------------------------------------- clear errors for bad env output
class BadEnv(CountingEnv):
    def __init__(self, reward=None, reset_info=None, shape_at=None, **kwargs):
        super().__init__(**kwargs)
        self.bad_reward, self.reset_info, self.shape_at = reward, reset_info, shape_at

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return obs, (info if self.reset_info is None else self.reset_info())

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.bad_reward is not None and self.t == 2:
            reward = self.bad_reward()
        if self.shape_at == self.t:
            obs = np.zeros(3, np.float32)
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize(
    "env, error, words",
    [
        (BadEnv(reward=lambda: np.array([1.0])), ValueError, r"scalar.*shape \(1,\) at step 1 .*reward=array"),
        (BadEnv(reward=lambda: np.ones((2, 2))), ValueError, r"shape \(2, 2\) at step 1 .*reward=array"),
        (BadEnv(reward=lambda: None), TypeError, r"`env.step\(\)` returned a NoneType at step 1 .*reward=None"),
        (BadEnv(reward=lambda: "1.0"), TypeError, r"returned a str .*reward='1.0'"),
        (BadEnv(reward=lambda: 1j), TypeError, r"reward=1j"),
        (BadEnv(reset_info=lambda: "info"), TypeError, r"`info` a dict.*Received: info='info'"),
        (BadEnv(reset_info=lambda: [None]), TypeError, r"Received: info=\[None\]"),
        (OldResetEnv(), TypeError, r"observation alone.*returned array\(\[0\., 0\.\]"),
        (
            BadEnv(shape_at=3),
            ValueError,
            r"shape changed .* first observation had shape \(2,\), the one at step 2 of episode 0 has \(3,\)",
        ),
    ],
    ids=["(1,) reward", "(2, 2) reward", "None reward", "str reward", "complex reward", "str info", "list info",
         "old reset", "shape change"],
)  # fmt: skip
def test_bad_env_output_gets_an_error_naming_the_value(env, error, words):
    with pytest.raises(error, match=words):
        make_agent().fit(env, nb_steps=10, verbose=0)


def test_none_reset_info_is_named():
    with pytest.raises(TypeError, match=r"`env.reset\(\)` must return `\(observation, info\)` with `info` a dict.*"
                       r"Received: info=None"):  # fmt: skip
        make_agent().fit(BadEnv(reset_info=lambda: None), nb_steps=10, verbose=0)


def test_observation_shape_change_at_a_reset_is_named():
    class Grows(CountingEnv):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.obs_dim = 2 + self.episode
            return self._obs(), {}

    with pytest.raises(ValueError, match=r"shape changed .*\(2,\), the one at step 0 of episode 1 has \(3,\)"):
        make_agent().fit(Grows(terminate_at=2), nb_steps=10, verbose=0)


def test_numpy_and_integer_rewards_reach_backward_as_floats():
    for reward in (np.float32(0.5), np.array(0.5), np.int64(2), 3):
        agent = make_agent()
        agent.fit(BadEnv(reward=lambda r=reward: r), nb_steps=3, verbose=0)
        assert all(isinstance(b[0], float) for b in agent.backwards)
        assert agent.backwards[1][0] == float(reward)


def test_a_processor_returning_none_is_named():
    class Forgets(Processor):
        def process_observation(self, observation):
            if observation[1] >= 2:
                return None
            return observation

    with pytest.raises(TypeError, match=r"Forgets\.process_observation returned None at step 1 of episode 0"):
        make_agent(processor=Forgets()).fit(CountingEnv(), nb_steps=10, verbose=0)
    with pytest.raises(TypeError, match=r"Never\.process_observation returned None at step 0 of episode 0"):
        make_agent(processor=type("Never", (Forgets,), {"process_observation": lambda self, o: None})()).fit(
            CountingEnv(), nb_steps=10, verbose=0
        )


def test_a_processor_returning_a_bad_reward_is_named():
    class Wraps(Processor):
        def process_reward(self, reward):
            return [reward]

    with pytest.raises(TypeError, match=r"`Wraps\.process_step\(\)` returned a list .*reward=\[1\.0\]"):
        make_agent(processor=Wraps()).fit(CountingEnv(), nb_steps=10, verbose=0)


def nan_weights(model):
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])


@pytest.mark.parametrize("diverged", ["actor", "critic"])
def test_ddpg_with_non_finite_weights_is_stopped_before_storing_a_nan_action(models, diverged):
    from rl.agents import DDPGAgent
    from rl.memory import SequentialMemory

    keras.utils.set_random_seed(0)
    actor, critic, action_in = models((2,))
    memory = SequentialMemory(limit=100, seed=0)
    agent = DDPGAgent(1, actor, critic, action_in, memory, nb_steps_warmup_critic=5, nb_steps_warmup_actor=5)
    agent.compile("adam")
    nan_weights(actor if diverged == "actor" else critic)
    env = StepSpy(terminate_at=50)
    # A NaN critic makes the first training step (run with the action of step 7) write NaN into the actor.
    step, names = (0, "actor") if diverged == "actor" else (7, "actor, critic")
    with pytest.raises(
        ValueError,
        match=rf"^DDPGAgent\.forward returned a non-finite action at step {step} of episode 0 .*"
        rf"Received: action=array\(\[nan\].*; non-finite weights in: {names}$",
    ):
        agent.fit(env, nb_steps=20, verbose=0)
    assert len(env.actions) == step and np.isfinite(env.actions).all()
    assert memory.nb_transitions == step
    if step:
        assert np.isfinite(memory.sample(32).action).all()
