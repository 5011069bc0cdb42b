"""Collection throughput on vectorized Pendulum-v1: this library and Stable-Baselines3 in one run.

Collection is what a vector env speeds up: each vector step the DDPG actor acts for all N
sub-environments (one batched call, plus exploration noise), the vector env steps, and the N
transitions go to the replay memory. No gradient step runs (our warm-up lies beyond the run;
SB3 runs `gradient_steps=0` and acts with its policy from the first step, `learning_starts=0`). Printed:
environment steps per second (all sub-environments together) after a short untimed warm-up that
traces the acting call, for each number of sub-environments and network size, ours beside SB3
with the same N, and the ratio ours / SB3 (above 1: ours collects faster).

Network sizes: keras-rl's example (actor 3 x Dense(16), critic 3 x Dense(32)) and [256, 256]
for both. Vector envs: `sync` is gymnasium's `SyncVectorEnv` against SB3's `DummyVecEnv` (all
sub-environments in the process), `async` is `AsyncVectorEnv` against `SubprocVecEnv` (one
process per sub-environment).

Both libraries run with one intra-op thread by default (`--threads 0`: each library's default).
On a small machine shared with other jobs, torch's default of one thread per core made SB3's
acting ten times slower at [256, 256] in our runs; one thread each is the fair setting there.

    python benchmarks/vector_speed.py                          # sync, N = 1 2 4 8, 4000 steps each
    python benchmarks/vector_speed.py --kinds sync async --steps 8000 --repeats 3

Needs the `bench` extra (`pip install -e .[bench]`: stable-baselines3 and torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402

ENV_ID = "Pendulum-v1"
SIZES = {"keras-rl": ([16, 16, 16], [32, 32, 32]), "256x256": ([256, 256], [256, 256])}
WARMUP_STEPS = 200  # untimed, per run: traces and first calls


def make_ours(actor_units: list[int], critic_units: list[int], seed: int):
    import keras
    from keras import layers

    from rl.agents import DDPGAgent
    from rl.memory import SequentialMemory
    from rl.random import OrnsteinUhlenbeckProcess

    keras.utils.set_random_seed(seed)
    obs_in = keras.Input((1, 3))
    x = layers.Flatten()(obs_in)
    for units in actor_units:
        x = layers.Dense(units, activation="relu")(x)
    actor = keras.Model(obs_in, layers.Rescaling(2.0)(layers.Dense(1, activation="tanh")(x)))
    action_in, critic_obs = keras.Input((1,)), keras.Input((1, 3))
    y = layers.Concatenate()([action_in, layers.Flatten()(critic_obs)])
    for units in critic_units:
        y = layers.Dense(units, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(y))
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=200_000, seed=seed),
        nb_steps_warmup_actor=10**9,  # collection only: no gradient step
        nb_steps_warmup_critic=10**9,
        random_process=OrnsteinUhlenbeckProcess(size=1, theta=0.15, mu=0.0, sigma=0.3, seed=seed),
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    return agent


def run_ours(n: int, kind: str, size: str, steps: int, seed: int) -> float:
    mode = "sync" if kind == "sync" else "async"
    env = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode=mode)
    agent = make_ours(*SIZES[size], seed)
    agent.fit(env, nb_steps=WARMUP_STEPS, verbose=0, seed=seed)
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def run_sb3(n: int, kind: str, size: str, steps: int, seed: int) -> float:
    from stable_baselines3 import DDPG
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    vec_cls = DummyVecEnv if kind == "sync" else SubprocVecEnv
    env = make_vec_env(ENV_ID, n_envs=n, seed=seed, vec_env_cls=vec_cls)
    actor_units, critic_units = SIZES[size]
    model = DDPG(
        "MlpPolicy",
        env,
        learning_starts=0,  # act with the policy from the first step
        train_freq=1,
        gradient_steps=0,  # collection only: no gradient step
        buffer_size=200_000,
        action_noise=OrnsteinUhlenbeckActionNoise(mean=np.zeros(1), sigma=0.15 * np.ones(1), theta=0.15),
        policy_kwargs={"net_arch": {"pi": actor_units, "qf": critic_units}},
        seed=seed,
        device="cpu",
    )
    model.learn(WARMUP_STEPS)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8], help="numbers of sub-environments")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="network sizes")
    parser.add_argument("--kinds", nargs="+", choices=["sync", "async"], default=["sync"], help="vector env kinds")
    parser.add_argument("--steps", type=int, default=4000, help="timed environment steps per run (default: 4000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell, alternating libraries (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads of TensorFlow and of torch, 0: each library's default (default: 1)",
    )
    args = parser.parse_args()
    if args.threads:
        import tensorflow as tf
        import torch

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        torch.set_num_threads(args.threads)
    print(describe())
    print(
        f"collection only (no gradient step), {args.steps} timed steps per run, median of {args.repeats}, "
        f"threads: {args.threads or 'library defaults'}"
    )
    print(f"{'kind':<6} {'size':<9} {'envs':>4} {'ours steps/s':>13} {'SB3 steps/s':>12} {'ours/SB3':>9}")
    for kind in args.kinds:
        for size in args.sizes:
            for n in args.envs:
                ours, sb3 = [], []
                for r in range(args.repeats):  # alternate which library runs first
                    pair = [(ours, run_ours), (sb3, run_sb3)]
                    for out, run in pair if r % 2 == 0 else pair[::-1]:
                        out.append(run(n, kind, size, args.steps, args.seed + r))
                o, s = statistics.median(ours), statistics.median(sb3)
                print(f"{kind:<6} {size:<9} {n:>4} {o:>13.0f} {s:>12.0f} {o / s:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
