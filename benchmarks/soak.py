"""Long-run health: 1 000 000 DDPG steps on Pendulum-v1 with a small network.

Reports resident memory (RSS) at intervals, the number of `tf.function` traces after warm-up, and
env steps/s for each tenth of the run, then checks the targets: RSS growth after the replay
memory is full < 100 MB, zero retraces after warm-up, and steps/s in the last tenth within 10 % of
the first full tenth (the first tenth holds warm-up and compilation, so the second is compared).

    python benchmarks/soak.py                      # 1 000 000 steps
    python benchmarks/soak.py --steps 200000 --memory-limit 20000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402
from machine import describe  # noqa: E402

from rl.agents import DDPGAgent  # noqa: E402
from rl.callbacks import Callback  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.random import OrnsteinUhlenbeckProcess  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class Recorder(Callback):
    """Samples RSS, trace count and time every `every` steps."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every
        self.rows: list[tuple[int, float, float, int]] = []

    def on_train_begin(self, logs=None):
        self.rows.append((self.model.step, time.perf_counter(), rss_mb(), self.model.trace_count))

    def on_step_end(self, step, logs=None):
        if self.model.step % self.every == 0:
            row = (self.model.step, time.perf_counter(), rss_mb(), self.model.trace_count)
            self.rows.append(row)
            print(f"step {row[0]:>8d}  RSS {row[2]:7.1f} MB  traces {row[3]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(describe(), flush=True)
    tenth = args.steps // 10

    keras.utils.set_random_seed(args.seed)
    env = gym.make("Pendulum-v1")
    obs_in = keras.Input((1, 3))
    x = layers.Flatten()(obs_in)
    for _ in range(3):
        x = layers.Dense(16, activation="relu")(x)
    actor = keras.Model(obs_in, layers.Rescaling(2.0)(layers.Dense(1, activation="tanh")(x)))
    action_in, critic_obs_in = keras.Input((1,)), keras.Input((1, 3))
    y = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)])
    for _ in range(3):
        y = layers.Dense(32, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(y))
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=args.memory_limit, seed=args.seed),
        batch_size=32,
        nb_steps_warmup_critic=1000,
        nb_steps_warmup_actor=1000,
        random_process=OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=1, seed=args.seed),
        target_model_update=1e-3,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    recorder = Recorder(every=tenth // 4)
    agent.fit(env, nb_steps=args.steps, verbose=0, seed=args.seed, callbacks=[recorder])
    rows = recorder.rows

    def at(step):
        return next(r for r in rows if r[0] >= step)

    print("\nsteps/s per tenth of the run:")
    rates = []
    for k in range(10):
        a, b = at(k * tenth), at((k + 1) * tenth)
        rates.append((b[0] - a[0]) / (b[1] - a[1]))
        print(f"  {k * 10:3d}-{(k + 1) * 10:3d} %: {rates[-1]:7.1f} steps/s")
    full = next(r for r in rows if r[0] >= args.memory_limit + args.memory_limit // 200 + 1)
    growth = rows[-1][2] - full[2]
    retraces = rows[-1][3] - at(tenth)[3]
    drift = rates[-1] / rates[1] - 1
    print(
        f"\nRSS when the memory was full (step {full[0]}): {full[2]:.1f} MB; at the end: {rows[-1][2]:.1f} MB; "
        f"growth {growth:+.1f} MB (target < 100 MB): {'OK' if growth < 100 else 'FAIL'}"
    )
    print(f"traces after warm-up: {retraces} (target 0): {'OK' if retraces == 0 else 'FAIL'}")
    print(
        f"steps/s last tenth vs second tenth: {100 * drift:+.1f} % (target within 10 %): "
        f"{'OK' if abs(drift) <= 0.10 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
