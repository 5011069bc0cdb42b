"""Scaling of rl.distributed: collection throughput with 1, 2, 4 Ray workers, the learner's update rate.

The environment is Pendulum-v1 whose every step also waits a fixed time (`--sleep-ms`, a stand-in
for an expensive simulator). Printed, after the `machine:` line:

- collection: environment steps per second stored by the learner with N workers while nothing
  trains yet (warm-up longer than the run), and the ratio to one worker (target >= 0.7 * N);
- learning: gradient updates per second of the learner during `rl.distributed.fit` with N
  workers, against plain `agent.fit` on the same slow environment (target: not lower);
- with `--pendulum`: DDPG with 2 workers against plain `fit` on Pendulum-v1 (no sleep), the same
  number of environment steps and seed, mean return of 10 noise-free test episodes (target >= -200).

Each rate is measured after the first 10% of the run (the workers' start-up left out). Figures
vary from run to run on a shared machine; compare the ratios within one run.

    python benchmarks/distributed_scaling.py --no-learning        # collection only, ~1.5 minutes
    python benchmarks/distributed_scaling.py --no-collection      # the learner's update rate, ~2 minutes
    python benchmarks/distributed_scaling.py --workers 1 2 4 --steps 2000 --sleep-ms 5
    python benchmarks/distributed_scaling.py --pendulum --pendulum-steps 20000   # slow
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402

import rl.distributed as rd  # noqa: E402
from rl.callbacks import Callback  # noqa: E402


class SlowStep(gym.Wrapper):
    """Waits `seconds` in every `step`, like a simulator that takes that long."""

    def __init__(self, env: gym.Env, seconds: float):
        super().__init__(env)
        self.seconds = seconds

    def step(self, action):
        time.sleep(self.seconds)
        return self.env.step(action)


class SlowPendulum:
    """A picklable `env_fn`: Pendulum-v1 whose steps wait `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self) -> gym.Env:
        return SlowStep(gym.make("Pendulum-v1"), self.seconds)


def pendulum_env() -> gym.Env:
    """Pendulum-v1 (200-step episodes)."""
    return gym.make("Pendulum-v1")


def pendulum_agent(seed: int, warmup: int = 1000, hidden: tuple = (256, 256)):
    """examples/ddpg_pendulum.py's DDPG agent, seeded."""
    from ddpg_pendulum import make_agent

    keras.utils.set_random_seed(seed)
    agent = make_agent(pendulum_env(), seed, hidden=hidden)
    agent.warmup = {group: warmup for group in agent.warmup}
    return agent


class Rate(Callback):
    """Steps (and the learner's updates) per second after the first `skip` steps of the run."""

    def __init__(self, skip: int):
        super().__init__()
        self.skip = skip

    def on_train_begin(self, logs=None):
        self.first = self.model.step
        self.start = None

    def on_step_end(self, step, logs=None):
        if self.start is None and self.model.step - self.first >= self.skip:
            self.start, self.start_step, self.start_updates = time.perf_counter(), self.model.step, self.model._updates

    def on_train_end(self, logs=None):
        seconds = time.perf_counter() - self.start
        self.steps_per_s = (self.model.step - self.start_step) / seconds
        self.updates_per_s = (self.model._updates - self.start_updates) / seconds


def collection(workers: list[int], steps: int, sleep: float, seed: int) -> dict[int, float]:
    rates = {}
    for n in workers:
        agent = pendulum_agent(seed, warmup=10**9, hidden=(64, 64))  # nothing trains: collection alone
        rate = Rate(skip=steps // 10)
        rd.fit(agent, SlowPendulum(sleep), steps, num_workers=n, steps_per_sample=25, weight_sync_interval=100,
               seed=seed, verbose=0, callbacks=[rate])  # fmt: skip
        rates[n] = rate.steps_per_s
        print(f"collection  workers={n}: {rate.steps_per_s:7.1f} env steps/s  ({rates[n] / rates[workers[0]]:.2f}x)")
    return rates


def learning(workers: list[int], steps: int, sleep: float, seed: int) -> None:
    agent = pendulum_agent(seed, warmup=100, hidden=(64, 64))
    rate = Rate(skip=steps // 10)
    agent.fit(SlowPendulum(sleep)(), nb_steps=steps, verbose=0, callbacks=[rate])
    plain = rate.updates_per_s
    print(f"learner     plain fit : {plain:7.1f} updates/s ({rate.steps_per_s:.1f} env steps/s)")
    for n in workers:
        agent = pendulum_agent(seed, warmup=100, hidden=(64, 64))
        rate = Rate(skip=steps // 10)
        rd.fit(agent, SlowPendulum(sleep), steps, num_workers=n, steps_per_sample=25, weight_sync_interval=100,
               seed=seed, verbose=0, callbacks=[rate])  # fmt: skip
        print(
            f"learner     workers={n}: {rate.updates_per_s:7.1f} updates/s ({rate.steps_per_s:.1f} env steps/s, "
            f"{rate.updates_per_s / plain:.2f}x plain fit)"
        )


def pendulum(steps: int, seed: int) -> None:
    results = {}
    for name in ("plain fit", "2 workers"):
        agent = pendulum_agent(seed)
        start = time.perf_counter()
        if name == "plain fit":
            agent.fit(pendulum_env(), nb_steps=steps, verbose=0, seed=seed)
        else:
            rd.fit(agent, pendulum_env, steps, num_workers=2, steps_per_sample=25, weight_sync_interval=50,
                   seed=seed, verbose=0)  # fmt: skip
        seconds = time.perf_counter() - start
        history = agent.test(pendulum_env(), nb_episodes=10, visualize=False, verbose=0, seed=seed + 1000)
        results[name] = float(np.mean(history.history["episode_reward"]))
        print(f"pendulum    {name}: mean test return {results[name]:8.1f} after {steps} env steps ({seconds:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default: 1 2 4)")
    parser.add_argument("--steps", type=int, default=1500, help="env steps per measurement (default: 1500)")
    parser.add_argument("--sleep-ms", type=float, default=5.0, help="wait in each env step (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--no-collection", action="store_true", help="skip the collection measurement")
    parser.add_argument("--no-learning", action="store_true", help="skip the learner's update-rate comparison")
    parser.add_argument("--pendulum", action="store_true", help="also compare learning Pendulum-v1 (slow)")
    parser.add_argument("--pendulum-steps", type=int, default=20_000, help="env steps of that run (default: 20000)")
    args = parser.parse_args(argv)
    import ray

    print(describe() + f", ray {ray.__version__}")
    # Workers mostly wait for their simulator: give Ray a CPU slot per worker even on a small machine.
    ray.init(num_cpus=max(max(args.workers), 2), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        sleep = args.sleep_ms / 1000.0
        print(f"env: Pendulum-v1 with {args.sleep_ms:g} ms per step; {args.steps} env steps per measurement")
        if not args.no_collection:
            collection(args.workers, args.steps, sleep, args.seed)
        if not args.no_learning:
            learning(args.workers, args.steps, sleep, args.seed)
        if args.pendulum:
            pendulum(args.pendulum_steps, args.seed)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
