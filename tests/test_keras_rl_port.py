"""keras-rl code that ports as written: NAF from `rl.agents.dqn`, keras-rl's `nb_entries`, processors
that keep the observations they get, discrete spaces of one's own; reward precision; what the loggers
and warnings say after a resume, a Ctrl-C or a `visualize=True` without a render mode."""

import inspect
import os
import warnings

import gymnasium as gym
import keras
import numpy as np
import pytest
from conftest import CountingEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from numpy.testing import assert_allclose, assert_array_equal
from test_core import make_agent as make_recording_agent

from rl.agents import CEMAgent, DQNAgent, SARSAAgent
from rl.callbacks import Callback
from rl.core import Processor
from rl.memory import EpisodeParameterMemory, SequentialMemory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------- NAF in rl.agents.dqn
def test_naf_imports_from_keras_rl_path():
    from rl.agents import naf
    from rl.agents.dqn import ContinuousDQNAgent, NAFAgent, NAFLayer

    assert NAFAgent is naf.NAFAgent and ContinuousDQNAgent is naf.NAFAgent
    assert issubclass(NAFLayer, keras.layers.Layer)


def _naf_reference(l_flat, mu, action, mode):
    """keras-rl's reference: A = -0.5 (a - mu)^T P (a - mu), computed one sample at a time."""
    nb_actions = mu.shape[1]
    out = []
    for x, m, a in zip(l_flat, mu, action):
        if mode == "full":
            lower = np.zeros((nb_actions, nb_actions))
            lower[np.tril_indices(nb_actions)] = x
            lower[np.diag_indices(nb_actions)] = np.exp(lower[np.diag_indices(nb_actions)])
            p = lower @ lower.T
        else:
            p = np.diag(x)  # keras-rl's diagonal mode: the raw values
        out.append(-0.5 * (a - m) @ p @ (a - m))
    return np.array(out)


@pytest.mark.parametrize("mode", ["full", "diag"])
@pytest.mark.parametrize("nb_actions", [1, 3])
def test_naf_layer_computes_keras_rl_advantage(mode, nb_actions):
    from rl.agents.dqn import NAFLayer

    rng = np.random.default_rng(nb_actions)
    entries = nb_actions * (nb_actions + 1) // 2 if mode == "full" else nb_actions
    l_flat = rng.random((2, entries)).astype("float32")
    mu = rng.random((2, nb_actions)).astype("float32")
    action = rng.random((2, nb_actions)).astype("float32")
    inputs = [keras.Input((entries,)), keras.Input((nb_actions,)), keras.Input((nb_actions,))]
    model = keras.Model(inputs, NAFLayer(nb_actions, mode=mode)(inputs))
    assert model.output.shape == (None, 1)
    reference = _naf_reference(l_flat, mu, action, mode)
    assert_allclose(model.predict([l_flat, mu, action], verbose=0)[:, 0], reference, rtol=1e-5)
    # keras-rl's older form: the three inputs concatenated into one tensor.
    joined = keras.Input((entries + 2 * nb_actions,))
    concat_model = keras.Model(joined, NAFLayer(nb_actions, mode=mode)(joined))
    out = concat_model.predict(np.concatenate([l_flat, mu, action], axis=1), verbose=0)[:, 0]
    assert_allclose(out, reference, rtol=1e-5)


def test_naf_layer_full_mode_is_the_agents_advantage():
    from rl.agents.dqn import NAFAgent, NAFLayer

    nb_actions = 2
    obs = keras.Input((1, 3))
    flat = keras.layers.Flatten()(obs)
    agent = NAFAgent(
        V_model=keras.Model(obs, keras.layers.Dense(1)(flat)),
        L_model=keras.Model(obs, keras.layers.Dense(3)(flat)),
        mu_model=keras.Model(obs, keras.layers.Dense(nb_actions)(flat)),
        memory=SequentialMemory(limit=100),
    )
    rng = np.random.default_rng(0)
    l_flat, mu, action = (rng.normal(size=(4, n)).astype("float32") for n in (3, nb_actions, nb_actions))
    expected = agent.advantage(l_flat, mu, action).numpy()
    layer = NAFLayer(nb_actions, mode="full")
    assert_allclose(layer([l_flat, mu, action]).numpy()[:, 0], expected, rtol=1e-5)


def test_naf_layer_refuses_bad_arguments_and_shapes_naming_them():
    from rl.agents.dqn import NAFLayer

    with pytest.raises(ValueError, match=r"`mode` must be one of \('full', 'diag'\). Received: mode='tri'"):
        NAFLayer(2, mode="tri")
    with pytest.raises(ValueError, match=r"`nb_actions` must be >= 1. Received: nb_actions=0"):
        NAFLayer(0)
    inputs = [keras.Input((2,)), keras.Input((2,)), keras.Input((2,))]  # 'full' with 2 actions needs 3 entries
    with pytest.raises(ValueError, match=r"\(None, 3\), \(None, 2\) and \(None, 2\). Received: input shapes"):
        NAFLayer(2)(inputs)
    layer = NAFLayer(3, mode="diag", name="naf")
    clone = NAFLayer.from_config(layer.get_config())
    assert (clone.nb_actions, clone.mode, clone.name) == (3, "diag", "naf")


# ------------------------------------------------------------ SequentialMemory.nb_entries
@pytest.mark.parametrize("training", [True, False])
def test_nb_entries_counts_appended_observations_as_keras_rl(training):
    rng = np.random.default_rng(0)
    obs = rng.random((3, 3, 4))
    memory = SequentialMemory(3, window_length=2)
    assert memory.nb_entries == 0
    memory.append(obs[0], 0, 0.0, True, training=training)  # terminal: obs[1] is the episode's final observation
    assert memory.nb_entries == (1 if training else 0)
    assert memory.nb_transitions == 0  # its transition waits for the next observation
    memory.append(obs[1], 0, 0.0, False, training=training)
    assert memory.nb_entries == (2 if training else 0)
    assert memory.nb_transitions == (1 if training else 0)
    memory.append(obs[2], 0, 0.0, False, training=training)  # the first observation of the next episode
    assert memory.nb_entries == (3 if training else 0)
    assert memory.nb_transitions == (1 if training else 0)


def test_nb_entries_stays_within_limit_and_sampling_the_waiting_position_redraws():
    memory = SequentialMemory(4, window_length=1, seed=0)
    for k in range(10):
        memory.append(np.array([float(k)]), 0, 1.0, False)
        assert memory.nb_entries == min(k + 1, 4)
    memory.end_episode()
    memory.append(np.array([100.0]), 0, 1.0, False)  # a new episode's first observation, waiting
    assert memory.nb_entries == 4  # keras-rl's ring buffer of 4 observations
    small = SequentialMemory(10, window_length=1, seed=0)
    for k in range(3):
        small.append(np.array([float(k)]), 0, 1.0, False)
    small.end_episode()
    small.append(np.array([100.0]), 0, 1.0, False)
    assert (small.nb_entries, small.nb_transitions) == (4, 2)
    # Positions 2 (the end of the abandoned episode) and 3 (the observation whose transition waits)
    # start no transition: others are drawn in their place.
    exp = small.sample(4, batch_idxs=[0, 1, 2, 3])
    assert [float(e.state0[-1][0]) for e in exp[:2]] == [0.0, 1.0]
    assert {float(e.state0[-1][0]) for e in exp[2:]} <= {0.0, 1.0}
    with pytest.raises(ValueError, match=r"integers in \[0, nb_entries=4\). Received: batch_idxs=\[0, 1, 4\]"):
        small.sample(3, batch_idxs=[0, 1, 4])


def test_nb_entries_with_next_observations_counts_the_slots():
    memory = SequentialMemory(10)
    memory.append(np.zeros(2), [0.0], 1.0, False, np.ones(2))
    assert (memory.nb_entries, memory.nb_transitions) == (2, 1)  # s_0 and s_1
    memory.append(np.ones(2), [0.0], 1.0, True, np.full(2, 2.0))
    assert (memory.nb_entries, memory.nb_transitions) == (3, 2)


# ------------------------------------------------------------------- reward precision
def test_rewards_read_back_from_memory_as_float32():
    memory = SequentialMemory(10, seed=0)
    memory.append(np.zeros(1), 0, 0.4, False)
    memory.append(np.ones(1), 0, 0.0, True)
    memory.append(np.full(1, 2.0), 0, 0.0, False)
    exp = memory.sample(1, batch_idxs=[0])[0]
    assert exp.reward == float(np.float32(0.4)) == 0.4000000059604645  # float32, by decision
    assert exp.reward != 0.4 and exp.reward == pytest.approx(0.4)
    batch = memory.sample_experiences(1, batch_idxs=[0])
    assert batch[0].reward == exp.reward
    five = SequentialMemory(10, seed=0)
    five.append(np.zeros(1), [0.0], 0.4, False, np.ones(1))
    sampled = five.sample(2)
    assert sampled.reward.dtype == np.float32 and sampled.reward[0] == np.float32(0.4)


# --------------------------------------------------------------- processors get copies
class InPlaceEnv(gym.Env):
    """Writes every observation into the same array (as some simulators do): obs = [t]."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)

    def __init__(self, terminate_at=4):
        self.terminate_at = terminate_at
        self.buffer = np.zeros(1, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.buffer[0] = 0.0
        return self.buffer, {}

    def step(self, action):
        self.t += 1
        self.buffer[0] = self.t
        return self.buffer, 1.0, self.t >= self.terminate_at, False, {}


class KeepingProcessor(Processor):
    """Keeps every observation it receives, with the values it had then."""

    def __init__(self, scale=1.0):
        self.kept = []
        self.scale = scale

    def process_observation(self, observation):
        self.kept.append((observation, np.array(observation, copy=True)))
        return observation * self.scale if self.scale != 1.0 else observation


def assert_kept_unchanged(processor, expected):
    assert len(processor.kept) == len(expected)
    for (received, values), value in zip(processor.kept, expected):
        assert_array_equal(values, [value])
        assert_array_equal(received, values)  # not changed since it was received


@pytest.mark.parametrize("method", ["fit", "test"])
def test_processor_keeps_what_it_gets_from_an_env_that_writes_in_place(method):
    processor = KeepingProcessor()
    agent = make_recording_agent(processor=processor)
    if method == "fit":
        agent.fit(InPlaceEnv(terminate_at=4), nb_steps=8, verbose=0)
    else:
        agent.test(InPlaceEnv(terminate_at=4), nb_episodes=2, verbose=0, visualize=False)
    assert_kept_unchanged(processor, [0, 1, 2, 3, 4] * 2)  # reset, then 4 steps, per episode
    assert_array_equal(np.concatenate(agent.forwards), [0, 1, 2, 3] * 2)


def test_processor_keeps_what_it_gets_from_a_vector_env_that_writes_in_place():
    from agent_builders import build_agent

    # copy=False: the vector environment hands back the one array it rewrites at every step.
    env = SyncVectorEnv([lambda: InPlaceEnv(terminate_at=3)] * 2, copy=False, autoreset_mode=AutoresetMode.NEXT_STEP)
    processor = KeepingProcessor(scale=2.0)
    agent = build_agent("ddpg", InPlaceEnv(), warmup=1000, processor=processor)
    agent.fit(env, nb_steps=12, verbose=0, seed=0)
    # Each sub-environment: reset (0), steps 1..3, then the reset step (0) that starts its next episode.
    assert_kept_unchanged(processor, [0, 0] + [1, 1, 2, 2, 3, 3, 0, 0] + [1, 1, 2, 2, 3, 3])
    data = agent.memory.to_arrays()
    assert_array_equal(data["next_observations"] - data["observations"], np.full((12, 1), 2.0))


# ---------------------------------------------------------- discrete spaces by duck typing
class KerasRlDiscrete:
    """A discrete space as keras-rl's tests wrote them: not a gymnasium space."""

    def __init__(self, n):
        self.n = n

    def sample(self, seed=None):
        return int(np.random.default_rng(seed).integers(self.n))

    def contains(self, x):
        return 0 <= x < self.n

    def __repr__(self):
        return f"Discrete({self.n})"


class KerasRlEnv(gym.Env):
    """keras-rl's test environment shape: a Box observation and a discrete space of its own."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)

    def __init__(self, space=None):
        self.action_space = KerasRlDiscrete(2) if space is None else space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert action in (0, 1)
        self.t += 1
        return np.full(3, 0.1 * self.t, np.float32), 1.0, self.t >= 5, False, {}


def q_model(outputs=2, window=1):
    return keras.Sequential([keras.Input((window, 3)), keras.layers.Flatten(), keras.layers.Dense(outputs)])


def test_dqn_runs_on_a_discrete_space_of_its_own():
    keras.utils.set_random_seed(0)
    agent = DQNAgent(model=q_model(), nb_actions=2, memory=SequentialMemory(100), nb_steps_warmup=5, batch_size=4)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    history = agent.fit(KerasRlEnv(), nb_steps=10, verbose=0)
    assert history.history["nb_episode_steps"] == [5, 5] and agent.step == 10


def test_sarsa_and_cem_accept_a_discrete_space_of_their_own():
    env = KerasRlEnv()
    sarsa = SARSAAgent(model=q_model(), nb_actions=2)
    sarsa.check_env(env)
    cem = CEMAgent(model=q_model(), nb_actions=2, memory=EpisodeParameterMemory(limit=10, window_length=1))
    cem.check_env(env)
    with pytest.raises(ValueError, match=r"n=3 and no shape.*Received: env.action_space=Discrete\(2\) of type "):
        CEMAgent(model=q_model(3), nb_actions=3, memory=EpisodeParameterMemory(10, window_length=1)).check_env(env)


class ShapedSpace(KerasRlDiscrete):
    shape = (2,)  # n values at once (like MultiBinary): not one discrete action


@pytest.mark.parametrize(
    "space",
    [ShapedSpace(2), KerasRlDiscrete(2.0), gym.spaces.MultiBinary(2), gym.spaces.Box(0.0, 1.0, shape=(2,))],
)
def test_spaces_without_an_integer_n_and_no_shape_are_refused_naming_their_class(space):
    agent = DQNAgent(model=q_model(), nb_actions=2, memory=SequentialMemory(100))
    cls = type(space)
    with pytest.raises(TypeError) as info:
        agent.check_env(KerasRlEnv(space))
    message = str(info.value)
    assert "DQNAgent needs a discrete action space: a gymnasium.spaces.Discrete, or a space with an integer" in message
    assert message.endswith(f"Received: env.action_space={space!r} of type {cls.__module__}.{cls.__qualname__}")


def test_a_discrete_space_of_another_size_is_refused_with_its_class():
    agent = DQNAgent(model=q_model(3), nb_actions=3, memory=SequentialMemory(100))
    with pytest.raises(ValueError, match=r"must be Discrete\(3\).*Received: env.action_space=Discrete\(2\) of type "):
        agent.check_env(KerasRlEnv())
    agent.check_env(KerasRlEnv(KerasRlDiscrete(np.int64(3))))  # a numpy integer `n` is an integer


# ------------------------------------------------------------- progress after a resume
def test_episode_logger_counts_from_where_the_run_resumed(capsys):
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=3), nb_steps=6, verbose=0)  # as if restored at step 6
    capsys.readouterr()
    agent.fit(CountingEnv(terminate_at=2), nb_steps=4, verbose=2)
    out = capsys.readouterr().out
    assert "Training for 4 steps (from step 6) ..." in out
    progress = [line.split(":")[0].strip() for line in out.splitlines() if "episode:" in line]
    assert progress == ["2/4", "4/4"]
    assert out.splitlines()[-1].startswith("done, took ")


def test_interval_logger_counts_intervals_from_where_the_run_resumed(capsys):
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=3), nb_steps=6, verbose=0)
    capsys.readouterr()
    agent.fit(CountingEnv(terminate_at=2), nb_steps=8, verbose=1, log_interval=4)
    out = capsys.readouterr().out
    assert "Training for 8 steps (from step 6) ..." in out
    assert "Interval 1 (6 steps performed)" in out and "Interval 2 (10 steps performed)" in out
    assert "Interval 3" not in out
    assert "4/4" in out and "6/4" not in out and "14/8" not in out


def test_a_run_from_step_zero_says_nothing_about_resuming(capsys):
    make_recording_agent().fit(CountingEnv(terminate_at=2), nb_steps=2, verbose=2)
    out = capsys.readouterr().out
    assert "Training for 2 steps ..." in out and "from step" not in out


# ------------------------------------------------------------------ Ctrl-C stops early
class InterruptAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C does) after training step `step` (or after `episodes` test episodes)."""

    def __init__(self, step=None, episodes=None):
        super().__init__()
        self.step, self.episodes = step, episodes

    def on_step_end(self, step, logs=None):
        if self.step is not None and self.model.step == self.step:
            raise KeyboardInterrupt

    def on_episode_end(self, episode, logs=None):
        if self.episodes is not None and episode + 1 == self.episodes:
            raise KeyboardInterrupt


@pytest.mark.parametrize("verbose", [1, 2])
def test_ctrl_c_says_training_stopped_early_and_where(capsys, verbose):
    agent = make_recording_agent()
    agent.fit(CountingEnv(terminate_at=3), nb_steps=5, verbose=0)
    capsys.readouterr()
    history = agent.fit(CountingEnv(terminate_at=3), nb_steps=10, verbose=verbose, callbacks=[InterruptAt(step=9)])
    out = capsys.readouterr().out
    assert agent.step == 9 and history.history["nb_episode_steps"] == [3]
    last = out.splitlines()[-1]
    assert last.startswith("Training stopped early (KeyboardInterrupt) at step 4 of 10 (agent step 9), took ")
    assert "done, took" not in out


def test_ctrl_c_during_test_says_how_many_episodes_ran(capsys):
    agent = make_recording_agent()
    agent.test(CountingEnv(terminate_at=2), nb_episodes=5, visualize=False, callbacks=[InterruptAt(episodes=2)])
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "Testing stopped early (KeyboardInterrupt) after 2 of 5 episodes"


def test_a_finished_test_prints_no_stop_line(capsys):
    make_recording_agent().test(CountingEnv(terminate_at=2), nb_episodes=2, visualize=False)
    assert "stopped early" not in capsys.readouterr().out


# ------------------------------------------------------- warnings point at the caller
def render_mode_warnings(records):
    return [r for r in records if issubclass(r.category, UserWarning) and "render_mode" in str(r.message)]


def test_visualize_warning_points_at_the_callers_line():
    agent = make_recording_agent()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        agent.test(CountingEnv(terminate_at=2), nb_episodes=1, verbose=0, visualize=True)
    found = render_mode_warnings(records)
    assert len(found) == 1
    assert "visualize=True, but the environment was made without a render_mode" in str(found[0].message)
    assert (found[0].filename, found[0].lineno) == (__file__, line)


class NestedVisualTest(Callback):
    """Runs a test with `visualize=True` inside a training run, after its first step."""

    def on_step_end(self, step, logs=None):
        if self.model.step == 1:
            self.line = inspect.currentframe().f_lineno + 1
            self.model.test(CountingEnv(terminate_at=2), nb_episodes=1, verbose=0, visualize=True)


def test_visualize_warning_of_a_nested_run_points_at_the_line_that_started_it():
    agent = make_recording_agent()
    nested = NestedVisualTest()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        agent.fit(CountingEnv(terminate_at=2), nb_steps=2, verbose=0, callbacks=[nested])
    found = render_mode_warnings(records)
    assert [(r.filename, r.lineno) for r in found] == [(__file__, nested.line)]


def test_start_steps_warning_points_at_the_callers_line():
    agent = make_recording_agent()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        agent.fit(CountingEnv(terminate_at=1), nb_steps=20, verbose=0, nb_max_start_steps=5, seed=0)
    found = [r for r in records if "ended during the random start steps" in str(r.message)]
    assert found and {(r.filename, r.lineno) for r in found} == {(__file__, line)}


# ----------------------------------------------------------------------------- the guides
def read_doc(name):
    with open(os.path.join(ROOT, "docs", name), encoding="utf-8") as f:
        return f.read()


def test_migration_page_lists_the_numpy_integer_layer_size_first():
    rows = [line for line in read_doc("migration.md").splitlines() if line.startswith("| `")]
    assert "Dense(nb_actions)" in rows[0] and "int(env.action_space.n)" in rows[0]
    assert "Received an invalid value for `units`" in rows[0]
    assert isinstance(gym.spaces.Discrete(2).n, np.integer)  # why the page needs the row
    with pytest.raises(ValueError, match=r"Received an invalid value for `units`.*Received: units=2"):
        keras.layers.Dense(gym.spaces.Discrete(2).n)


def test_troubleshooting_page_opens_with_the_layer_size_and_explains_quiet_tensorflow():
    page = read_doc("troubleshooting.md")
    sections = [line for line in page.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Keras refuses `Dense(env.action_space.n)`"
    assert "## Quiet TensorFlow" in sections
    assert 'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")' in page
    assert "#quiet-tensorflow" in read_doc("getting_started.md")
