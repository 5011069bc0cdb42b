"""fit and test on gymnasium vector environments (rl.vector)."""

import gymnasium as gym
import keras
import numpy as np
import pytest
from agent_builders import build_agent
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from keras import layers

from rl.agents import CEMAgent, DQNAgent
from rl.callbacks import Checkpoint, EvalCallback
from rl.core import Agent
from rl.memory import EpisodeParameterMemory, SequentialMemory
from rl.policy import EpsGreedyQPolicy


class StepEnv(gym.Env):
    """obs = [100 * episode + t, env_id]: within an episode s' - s == [1, 0].

    Terminates when t reaches `terminate_at` (if given); wrap it in a TimeLimit to truncate.
    `env_id` is the reset seed, so sub-environment i of a vector env seeded with 0 has id i.
    """

    def __init__(self, terminate_at=None, nb_actions=1, discrete=False):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        if discrete:
            self.action_space = gym.spaces.Discrete(2)
        else:
            self.action_space = gym.spaces.Box(-2.0, 2.0, shape=(nb_actions,), dtype=np.float32)
        self.terminate_at = terminate_at
        self.env_id, self.episode, self.t = -1, -1, 0

    def _obs(self):
        return np.array([100 * self.episode + self.t, self.env_id], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.env_id = seed
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(np.asarray(action, dtype=np.float32).sum()), terminated, False, {"t": self.t}


def vector_env(mode=AutoresetMode.NEXT_STEP, discrete=False):
    """Sub-env 0 terminates after 3 steps; sub-env 1 is truncated by a time limit after 4."""
    return SyncVectorEnv(
        [
            lambda: StepEnv(terminate_at=3, discrete=discrete),
            lambda: gym.wrappers.TimeLimit(StepEnv(discrete=discrete), max_episode_steps=4),
        ],
        autoreset_mode=mode,
    )


def ddpg(env, **kwargs):
    return build_agent("ddpg", env.envs[0], seed=0, warmup=5, batch_size=4, **kwargs)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_each_sub_env_stores_its_own_episodes(mode):
    env = vector_env(mode)
    agent = ddpg(env)
    history = agent.fit(env, nb_steps=40, verbose=0, seed=0)
    data = agent.memory.to_arrays()
    obs, nxt, terminals = data["observations"], data["next_observations"], data["terminals"]
    assert len(obs) == agent.step  # every counted step is stored, reset steps are not
    # No transition crosses an episode boundary (a reset would jump back to t = 0) or a sub-env.
    np.testing.assert_array_equal(nxt - obs, np.tile([1.0, 0.0], (len(obs), 1)))
    t_next = nxt[:, 0] % 100
    sub_env = obs[:, 1]
    np.testing.assert_array_equal(terminals, (sub_env == 0) & (t_next == 3))
    # Sub-env 1's truncated steps bootstrap from the real final observation (t = 4), not a reset one.
    truncated = (sub_env == 1) & (t_next == 4)
    assert truncated.sum() >= 4 and not terminals[truncated].any()
    assert set(t_next[sub_env == 0]) == {1, 2, 3} and set(t_next[sub_env == 1]) == {1, 2, 3, 4}
    # Per-episode figures per sub-environment.
    h = history.history
    lengths = {0: 3, 1: 4}
    assert set(h["env_index"]) == {0, 1}
    assert all(n == lengths[i] for i, n in zip(h["env_index"], h["nb_episode_steps"]))
    assert h["nb_steps"] == sorted(h["nb_steps"])


def test_nb_steps_counts_environment_steps():
    env = vector_env(AutoresetMode.SAME_STEP)
    agent = ddpg(env)
    agent.fit(env, nb_steps=9, verbose=0, seed=0)
    assert agent.step == 10  # 5 vector steps of 2 sub-envs: the first to reach 9
    agent.fit(env, nb_steps=4, verbose=0, seed=0)
    assert agent.step == 14
    # NEXT_STEP: a reset step is no environment step.
    env = vector_env(AutoresetMode.NEXT_STEP)
    agent = ddpg(env)
    agent.fit(env, nb_steps=7, verbose=0, seed=0)
    assert agent.step == 7  # 2 + 2 + 2, then sub-env 0 only resets at vector step 4: + 1
    assert agent.memory.nb_transitions == 7


def test_gradient_steps_per_vector_step():
    env = vector_env(AutoresetMode.SAME_STEP)
    agent = ddpg(env)
    agent.fit(env, nb_steps=20, verbose=0, seed=0)
    assert agent._updates == 20 - 6  # one per environment step past warm-up (steps 6..19)
    agent = ddpg(env)
    agent.fit(env, nb_steps=20, verbose=0, seed=0, updates_per_vector_step=1)
    assert agent._updates == 7  # one per vector step past warm-up (vector steps 3..9)


def test_seeded_runs_repeat():
    def run():
        env = vector_env(AutoresetMode.NEXT_STEP)
        agent = ddpg(env)
        history = agent.fit(env, nb_steps=30, verbose=0, seed=3)
        return agent.memory.to_arrays()["actions"], history.history["episode_reward"]

    (a1, r1), (a2, r2) = run(), run()
    np.testing.assert_array_equal(a1, a2)
    assert r1 == r2
    # The two sub-environments act apart (own observations, own noise processes).
    assert a1[0, 0] != a1[1, 0]


def test_dqn_runs_and_tests():
    env = vector_env(AutoresetMode.SAME_STEP, discrete=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((1, 2)), layers.Flatten(), layers.Dense(8, activation="relu"), layers.Dense(2)]
    )
    agent = DQNAgent(
        model=model,
        nb_actions=2,
        memory=SequentialMemory(limit=200, seed=0),
        nb_steps_warmup=6,
        batch_size=4,
        policy=EpsGreedyQPolicy(eps=0.5),
        target_model_update=10,
    )
    agent.compile(keras.optimizers.Adam(1e-3))
    history = agent.fit(env, nb_steps=30, verbose=0, seed=0)
    assert agent.step == 30 and agent._updates == 30 - 7
    assert set(agent.memory.to_arrays()["actions"].ravel()) == {0.0, 1.0}
    assert set(history.history["env_index"]) == {0, 1}
    result = agent.test(env, nb_episodes=5, verbose=0)
    assert len(result.history["episode_reward"]) == 5
    assert agent.step == 30  # testing does not count training steps


def test_ddpg_test_and_checkpoint(tmp_path):
    env = vector_env(AutoresetMode.NEXT_STEP)
    agent = ddpg(env)
    evaluation = EvalCallback(StepEnv(terminate_at=3), eval_interval=6, nb_episodes=1)
    history = agent.fit(env, nb_steps=12, verbose=0, seed=0, callbacks=[Checkpoint(tmp_path, interval=5), evaluation])
    assert (tmp_path / "checkpoint.json").exists()
    assert history.history["eval_step"] == [6, 12]
    result = agent.test(env, nb_episodes=3, verbose=0)
    h = result.history
    assert len(h["episode_reward"]) == 3
    assert all(n == {0: 3, 1: 4}[i] for i, n in zip(h["env_index"], h["nb_episode_steps"]))
    restored = ddpg(env)
    restored.load_checkpoint(tmp_path, env=env)
    assert restored.step == 10
    restored.fit(env, nb_steps=4, verbose=0)
    assert restored.step == 14


def test_clear_errors():
    env = vector_env()
    agent = ddpg(env)
    with pytest.raises(ValueError, match="autoreset_mode=DISABLED"):
        agent.fit(vector_env(AutoresetMode.DISABLED), nb_steps=4, verbose=0)
    with pytest.raises(ValueError, match="nb_max_episode_steps"):
        agent.fit(env, nb_steps=4, verbose=0, nb_max_episode_steps=3)
    with pytest.raises(ValueError, match="updates_per_vector_step=0"):
        agent.fit(env, nb_steps=4, verbose=0, updates_per_vector_step=0)
    with pytest.raises(TypeError, match="vector environments .* only"):
        agent.fit(env.envs[0], nb_steps=4, verbose=0, updates_per_vector_step=2)
    windowed = build_agent("ddpg", env.envs[0], warmup=5, batch_size=4)
    windowed.window_length = 2
    with pytest.raises(ValueError, match="window_length"):
        windowed.fit(env, nb_steps=4, verbose=0)

    class KerasRLAgent(Agent):
        def forward(self, observation):
            return np.zeros(1)

        def backward(self, reward, terminal):
            return []

    with pytest.raises(TypeError, match="KerasRLAgent cannot run on a vector environment.*SyncVectorEnv"):
        keras_rl_agent = KerasRLAgent()
        keras_rl_agent.compiled = True
        keras_rl_agent.fit(env, nb_steps=4, verbose=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1, 2)), layers.Flatten(), layers.Dense(2)])
    cem = CEMAgent(model=model, nb_actions=2, memory=EpisodeParameterMemory(limit=10), nb_steps_warmup=2)
    cem.compile()
    with pytest.raises(TypeError, match="CEMAgent cannot run on a vector environment"):
        cem.test(vector_env(discrete=True), nb_episodes=1, verbose=0)


@pytest.mark.slow
def test_vectorized_ddpg_learns_pendulum(tmp_path):
    """The example on 4 sub-environments: 20 000 environment steps in all, seeded."""
    from ddpg_pendulum import main as pendulum_main

    argv = ["--envs", "4", "--seed", "0", "--verbose", "0", "--weights", str(tmp_path / "w_{}.h5f")]
    mean_return = pendulum_main(argv)
    assert mean_return >= -200.0


def test_rows_before_nb_steps_random_act_at_random():
    """Rows are the environment steps step, ..., step + n - 1: those before nb_steps_random draw uniformly."""
    env = vector_env(AutoresetMode.SAME_STEP)
    agent = ddpg(env, nb_steps_random=7, random_process=None)
    agent.warmup = {group: 1000 for group in agent.warmup}  # no training: the actor stays as built
    agent.fit(env, nb_steps=12, verbose=0, seed=0)
    data = agent.memory.to_arrays()
    agent.training = False
    policy = agent.forward_batch(data["observations"])[:, 0]
    drawn = np.abs(data["actions"][:, 0] - policy) > 1e-4
    assert drawn.tolist() == [True] * 7 + [False] * 5


class InPlaceEnv(StepEnv):
    """StepEnv that returns one array it rewrites at every step and reset, as some simulators do."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.buffer = np.zeros(2, np.float32)

    def _obs(self):
        self.buffer[:] = super()._obs()
        return self.buffer


def in_place_vector_env(mode, vectorization="sync"):
    fns = [
        lambda: InPlaceEnv(terminate_at=3),
        lambda: gym.wrappers.TimeLimit(InPlaceEnv(), max_episode_steps=4),
    ]
    if vectorization == "sync":
        return SyncVectorEnv(fns, autoreset_mode=mode)
    return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="fork")


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_same_step_with_an_env_that_reuses_its_observation_array_is_refused(vectorization):
    env = in_place_vector_env(AutoresetMode.SAME_STEP, vectorization)
    agent = build_agent("ddpg", StepEnv(), seed=0, warmup=5, batch_size=4)
    try:
        with pytest.raises(ValueError, match=r"Sub-environment 0 ended an episode with a final observation equal"):
            agent.fit(env, nb_steps=40, verbose=0, seed=0)
    finally:
        env.close()
    assert agent.step == 4  # two vector steps of two sub-environments; the refused one was not stored


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_next_step_with_an_env_that_reuses_its_observation_array_is_exact(vectorization):
    env = in_place_vector_env(AutoresetMode.NEXT_STEP, vectorization)
    agent = build_agent("ddpg", StepEnv(), seed=0, warmup=5, batch_size=4)
    try:
        agent.fit(env, nb_steps=40, verbose=0, seed=0)
    finally:
        env.close()
    data = agent.memory.to_arrays()
    steps = data["next_observations"] - data["observations"]
    assert len(steps) == agent.step >= 40
    np.testing.assert_array_equal(steps, np.tile([1.0, 0.0], (len(steps), 1)))
