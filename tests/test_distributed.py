"""rl.distributed: rollout workers feeding the agent as learner, in this process and on a local Ray cluster."""

import functools
import inspect
import os
import pickle
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from agent_builders import build_agent

import rl.distributed as rd
from rl.callbacks import Callback, Checkpoint


class TickEnv(gym.Env):
    """obs = [base + t, t]: `base` is drawn at each reset from the environment's generator (seeded per
    worker), so transitions of two workers or episodes cannot be mistaken for one another.

    The reward is the action. Episodes terminate at `terminate_at` (if given) and are truncated by
    `time_limit` (if given). Each fault `(kind, marker, at)` happens to the first environment that
    reaches step `at` and takes the marker file (the learner's environment never steps): "exit"
    kills its process, "raise" raises, "block" waits (up to 60 s) until the file `marker +
    ".release"` exists (an environment that blocked takes no other fault).
    """

    def __init__(self, terminate_at=None, time_limit=None, faults=()):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
        self.terminate_at, self.time_limit = terminate_at, time_limit
        self.base = 0.0
        self.faults, self.slow = faults, False
        self.t = 0

    def _obs(self):
        return np.array([self.base + self.t, self.t], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.base = float(self.np_random.integers(1, 2**16)) / 2**12  # exact in float32, as is base + t
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        for kind, marker, at in self.faults:
            if self.t == at and not self.slow and _take(marker):
                if kind == "exit":
                    os._exit(1)
                if kind == "raise":
                    raise RuntimeError("the simulator crashed")
                self.slow = True
                deadline = time.monotonic() + 60.0
                while not os.path.exists(marker + ".release") and time.monotonic() < deadline:
                    time.sleep(0.01)
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        truncated = self.time_limit is not None and self.t >= self.time_limit and not terminated
        return self._obs(), float(np.asarray(action).ravel()[0]), terminated, truncated, {}


def _take(marker):
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def env_fn(**kwargs):
    return functools.partial(TickEnv, **kwargs)


def check_memory(agent, n):
    """The memory holds `n` transitions, each from one environment's step t to its step t + 1."""
    memory = agent.memory
    assert memory.nb_transitions == n
    batch = memory.sample(256)
    s0, s1 = batch.state0[:, 0], batch.state1[:, 0]  # [B, 2]
    np.testing.assert_array_equal(s1 - s0, np.ones_like(s0))


class StepLog(Callback):
    def __init__(self):
        super().__init__()
        self.workers, self.steps = [], []

    def on_step_end(self, step, logs=None):
        self.workers.append(logs["worker"])
        self.steps.append(self.model.step)


# ------------------------------------------------------------------ in this process
def test_inprocess_fit_stores_every_step_once_and_reports_episodes():
    agent = build_agent("ddpg", TickEnv())
    log = StepLog()
    history = rd.fit(
        agent, env_fn(time_limit=7), nb_steps=60, num_workers=3, steps_per_sample=5, weight_sync_interval=10,
        backend="inprocess", seed=0, verbose=0, callbacks=[log],
    )  # fmt: skip
    assert agent.step == 60
    check_memory(agent, 60)
    assert log.steps == list(range(1, 61))
    assert sorted(set(log.workers)) == [0, 1, 2] and log.workers[:15] == [0] * 5 + [1] * 5 + [2] * 5
    # 3 workers x 20 steps: 2 full episodes of 7 each (the third is still running when the run stops)
    assert history.history["nb_episode_steps"] == [7] * 6
    assert len(history.history["episode_reward"]) == 6 and agent.episode == 9
    assert history.history["nb_steps"][-1] <= 60


def test_inprocess_runs_are_reproducible_and_nb_steps_adds_up():
    def run(seed):
        agent = build_agent("td3", TickEnv())
        history = rd.fit(
            agent, env_fn(time_limit=9), nb_steps=50, num_workers=2, steps_per_sample=4, weight_sync_interval=8,
            backend="inprocess", seed=seed, verbose=0,
        )  # fmt: skip
        return agent, history

    a, ha = run(3)
    b, hb = run(3)
    c, _ = run(4)
    assert ha.history == hb.history
    for wa, wb in zip(a.actor.get_weights(), b.actor.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not all(np.array_equal(x, y) for x, y in zip(a.actor.get_weights(), c.actor.get_weights()))
    rd.fit(a, env_fn(time_limit=9), nb_steps=13, num_workers=2, backend="inprocess", seed=5, verbose=0)
    assert a.step == 63 and a.memory.nb_transitions == 63


def test_worker_keeps_terminal_and_truncated_apart_with_real_final_observations():
    agent = build_agent("ddpg", TickEnv())
    agent.check_env(TickEnv())
    worker = rd.RolloutWorker(functools.partial(TickEnv, terminate_at=3), rd.ActingPolicy(agent), 0, seed=1,
                              nb_max_episode_steps=5)  # fmt: skip
    batch = worker.sample(4)
    assert not batch.continues and len(batch) == 4
    np.testing.assert_array_equal(batch.terminals, [False, False, True, False])
    np.testing.assert_array_equal(batch.truncations, [False] * 4)
    np.testing.assert_array_equal(batch.next_observations[:, 1], [1, 2, 3, 1])  # t=3 is kept, not the reset
    np.testing.assert_array_equal(batch.observations[:, 1], [0, 1, 2, 0])
    assert np.all(np.abs(batch.actions) <= 2.0) and batch.actions.dtype == np.float32

    worker = rd.RolloutWorker(functools.partial(TickEnv, time_limit=50), rd.ActingPolicy(agent), 1, seed=1,
                              nb_max_episode_steps=2)  # fmt: skip
    first, second = worker.sample(3), worker.sample(2)
    np.testing.assert_array_equal(first.truncations, [False, True, False])
    np.testing.assert_array_equal(first.terminals, [False] * 3)
    assert second.continues
    np.testing.assert_array_equal(second.observations[0], first.next_observations[-1])
    np.testing.assert_array_equal(second.truncations, [True, False])


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac"])
def test_acting_policy_acts_as_the_agent(kind):
    env = TickEnv()
    agent = build_agent(kind, env, warmup=0)
    agent.check_env(env)
    policy = pickle.loads(pickle.dumps(rd.ActingPolicy(agent)))  # what a Ray worker receives
    obs = np.array([3.0, 1.0], np.float32)
    # Without exploration: the agent's own test-time action (DDPG/TD3: the actor; SAC: the squashed mean).
    np.testing.assert_allclose(policy.act(obs, training=False), agent.forward(obs), rtol=1e-5, atol=1e-6)
    policy.seed([7, 0])
    a1 = policy.act(obs)
    policy.seed([7, 0])
    a2 = policy.act(obs)
    np.testing.assert_array_equal(a1, a2)  # seeded exploration
    assert not np.allclose(a1, policy.act(obs, training=False))  # exploration changes the action
    assert np.all(np.abs(a1) <= 2.0)
    new = [w + 0.5 for w in agent.actor.get_weights()]
    agent.actor.set_weights(new)
    policy.set_weights(new)
    np.testing.assert_allclose(policy.act(obs, training=False), agent.forward(obs), rtol=1e-5, atol=1e-6)


def test_steps_before_nb_steps_random_act_at_random_on_every_worker():
    """Steps are numbered over all workers in the order they are asked for; the first nb_steps_random
    draw uniformly within the bounds, the rest act with the policy."""
    agent = build_agent("ddpg", TickEnv(), nb_steps_random=12, random_process=None)
    agent.warmup = {group: 1000 for group in agent.warmup}  # no training: the actor stays as built
    rd.fit(agent, env_fn(time_limit=7), nb_steps=30, num_workers=2, steps_per_sample=5, backend="inprocess", seed=0,
           verbose=0)  # fmt: skip
    data = agent.memory.to_arrays()
    np.testing.assert_array_equal(data["actions"][:, 0], data["rewards"])  # TickEnv's reward is the action
    agent.training = False
    policy = np.stack([agent.forward(obs) for obs in data["observations"]])[:, 0]
    drawn = np.abs(data["actions"][:, 0] - policy) > 1e-4
    assert drawn.tolist() == [True] * 12 + [False] * 18
    assert np.all(np.abs(data["actions"]) <= 2.0) and np.ptp(data["actions"][:12]) > 1.0


def test_nb_steps_random_without_bounds_is_refused_before_any_worker_starts():
    from rl.core import Processor

    class Doubling(Processor):
        def process_action(self, action):
            return 2.0 * action

    agent = build_agent("ddpg", TickEnv(), nb_steps_random=5, processor=Doubling())
    with pytest.raises(ValueError, match="nb_steps_random=5"):
        rd.fit(agent, env_fn(), nb_steps=10, num_workers=1, backend="inprocess", verbose=0)
    assert agent.step == 0


def test_inprocess_worker_whose_env_raises_is_restarted(tmp_path):
    agent = build_agent("ddpg", TickEnv())
    fn = env_fn(time_limit=6, faults=[("raise", str(tmp_path / "raised"), 4)])
    with pytest.warns(UserWarning, match="worker 0 failed and is restarted.*the simulator crashed"):
        rd.fit(agent, fn, nb_steps=40, num_workers=2, steps_per_sample=5, backend="inprocess", seed=0, verbose=0)
    assert agent.step == 40
    check_memory(agent, 40)


def test_worker_failing_again_after_its_restart_stops_the_run():
    agent = build_agent("ddpg", TickEnv())

    class Broken(TickEnv):
        def step(self, action):
            raise RuntimeError("broken simulator")

    with pytest.raises(RuntimeError, match="failed again before returning any transition.*broken simulator"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rd.fit(agent, Broken, nb_steps=10, num_workers=1, backend="inprocess", verbose=0)
    with pytest.raises(RuntimeError, match="more often than max_worker_restarts"):
        rd.fit(agent, Broken, nb_steps=10, num_workers=1, backend="inprocess", verbose=0, max_worker_restarts=0)


def test_killed_learner_resumes_from_its_checkpoint(tmp_path):
    class Kill(Callback):
        def on_step_end(self, step, logs=None):
            if self.model.step == 57:
                raise SystemExit("learner killed")

    agent = build_agent("ddpg", TickEnv())
    fn = env_fn(time_limit=8)
    ckpt = Checkpoint(tmp_path / "ckpt", interval=25)
    with pytest.raises(SystemExit):
        rd.fit(agent, fn, nb_steps=80, num_workers=2, steps_per_sample=5, backend="inprocess", seed=0, verbose=0,
               callbacks=[ckpt, Kill()])  # fmt: skip
    resumed = build_agent("ddpg", TickEnv())
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.step == 50 and resumed.memory.nb_transitions == 50
    rd.fit(resumed, fn, nb_steps=80 - resumed.step, num_workers=2, steps_per_sample=5, backend="inprocess", seed=1,
           verbose=0, callbacks=[ckpt])  # fmt: skip
    assert resumed.step == 80
    check_memory(resumed, 80)


def test_argument_errors(tmp_path, monkeypatch):
    agent = build_agent("ddpg", TickEnv())
    fn = env_fn()
    with pytest.raises(TypeError, match="off-policy agent.*Received: agent=3"):
        rd.fit(3, fn, 10)
    with pytest.raises(ValueError, match=r"Received: nb_steps=0"):
        rd.fit(agent, fn, 0, backend="inprocess")
    with pytest.raises(ValueError, match=r"Received: num_workers=0"):
        rd.fit(agent, fn, 10, num_workers=0, backend="inprocess")
    with pytest.raises(ValueError, match=r"Received: backend='threads'"):
        rd.fit(agent, fn, 10, backend="threads")
    with pytest.raises(TypeError, match="env_fn.*Received: env_fn=<test_distributed.TickEnv"):
        rd.fit(agent, TickEnv(), 10, backend="inprocess")
    from test_dqn import make_agent as make_dqn

    with pytest.raises(TypeError, match="DQNAgent turns its networks' output into actions with a policy of its own"):
        rd.fit(make_dqn(compile=False), fn, 10, backend="inprocess")
    uncompiled = build_agent("ddpg", TickEnv())
    uncompiled.compiled = False
    with pytest.raises(ValueError, match="compile"):
        rd.fit(uncompiled, fn, 10, backend="inprocess")
    windowed = build_agent("ddpg", TickEnv())
    windowed.window_length = 2
    with pytest.raises(ValueError, match="window_length=1. Received: window_length=2"):
        rd.fit(windowed, fn, 10, backend="inprocess")
    with pytest.raises(ValueError, match="HOST:PORT.*Received: address='localhost'"):
        rd.fit(agent, fn, 10, address="localhost")
    with pytest.raises(ConnectionError, match="No Ray cluster answers at 127.0.0.1:1.*ray start --head"):
        rd.fit(agent, fn, 10, address="127.0.0.1:1")
    lock_holder = functools.partial(TickEnv, faults=open(tmp_path / "f", "w"))  # an open file cannot be pickled
    with pytest.raises(TypeError, match="`env_fn` must be picklable"):
        rd.fit(agent, lock_holder, 10)
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'):
        rd.fit(agent, fn, 10)
    assert agent.step == 0


# ------------------------------------------------------------------ on a local Ray cluster
@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")  # in the `test` extra: installed wherever the suite runs
    # The workers unpickle this module's environments by value (tests/ is not on their path).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_synchronous_run_equals_the_inprocess_run(ray_cluster):
    def run(backend):
        agent = build_agent("sac", TickEnv())
        history = rd.fit(
            agent, env_fn(time_limit=7), nb_steps=40, num_workers=2, steps_per_sample=5, weight_sync_interval=10,
            backend=backend, synchronous=True, seed=2, verbose=0,
        )  # fmt: skip
        return agent, history

    on_ray, h_ray = run("ray")
    local, h_local = run("inprocess")
    assert h_ray.history == h_local.history
    for a, b in zip(on_ray.actor.get_weights(), local.actor.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    check_memory(on_ray, 40)
    # Ray rewrites the signatures of an actor class's methods: the library's own class keeps its own.
    for method in (rd.RolloutWorker.sample, rd.RolloutWorker.set_weights, rd.RolloutWorker.close):
        assert "_ray_trace_ctx" not in inspect.signature(method).parameters, method


def test_ray_takes_results_as_they_finish(ray_cluster, tmp_path):
    # The first environment to reach its step 2 blocks until the learner has stored 100 steps: taken
    # in the order they were asked for, the results would wait for it for ever (here: 60 s, then fail).
    marker = str(tmp_path / "block")
    fn = env_fn(time_limit=1000, faults=[("block", marker, 2)])
    agent = build_agent("ddpg", TickEnv(), warmup=10)

    class Release(StepLog):
        def on_step_end(self, step, logs=None):
            super().on_step_end(step, logs)
            if self.model.step == 100:
                open(marker + ".release", "w").close()

    log = Release()
    rd.fit(agent, fn, nb_steps=150, num_workers=2, steps_per_sample=5, weight_sync_interval=20, seed=0, verbose=0,
           callbacks=[log])  # fmt: skip
    assert agent.step == 150
    check_memory(agent, 150)
    assert len(set(log.workers[:100])) == 1  # the other worker's batches were stored as they came
    assert set(log.workers) == {0, 1}  # and the blocked worker's, once released


def test_ray_worker_whose_process_is_killed_is_restarted(ray_cluster, tmp_path):
    # The first environment to reach its step 6 kills its worker's process (an environment that raises
    # is the same RayError to the learner; see the in-process test).
    agent = build_agent("ddpg", TickEnv(), warmup=10)
    fn = env_fn(time_limit=20, faults=[("exit", str(tmp_path / "killed"), 6)])
    with pytest.warns(UserWarning, match="failed and is restarted .*ActorDiedError"):
        history = rd.fit(agent, fn, nb_steps=80, num_workers=2, steps_per_sample=5, seed=0, verbose=0)
    assert os.path.exists(tmp_path / "killed")
    assert agent.step == 80
    check_memory(agent, 80)
    assert all(n == 20 for n in history.history["nb_episode_steps"])


@pytest.mark.slow
def test_ddpg_with_two_ray_workers_learns_pendulum(ray_cluster, tmp_path):
    """The distributed example, seed 0: the threshold and step count of the plain DDPG example (20 000 steps)."""
    import ddpg_pendulum_distributed

    ray_cluster.cloudpickle.register_pickle_by_value(ddpg_pendulum_distributed)  # its make_env, for the workers
    args = ["--steps", "20000", "--seed", "0", "--workers", "2", "--verbose", "0"]
    mean_return = ddpg_pendulum_distributed.main(args)
    assert mean_return >= -200.0
