"""Training speed of DQN on CartPole: this library against Stable-Baselines3's DQN, in one run.

Both train keras-rl's CartPole Q-network (3 x Dense(16, ReLU), then one linear output per action)
with the same settings: one gradient step per environment step on a batch of 32, Adam at 1e-3,
gamma 0.99, a 50 000-transition buffer, 10 warm-up steps, a soft target update with tau = 0.01
after every step (keras-rl's `target_model_update=1e-2`; SB3's `tau=0.01, target_update_interval=1`),
the Huber loss with threshold 1 (SB3's smooth L1; our `delta_clip=1.0`), no gradient clipping
(SB3's `max_grad_norm` set out of reach), and epsilon-greedy exploration annealed from 1.0 to 0.05
over the first 10% of the steps (SB3's default schedule; our `LinearAnnealedPolicy`), since SB3 has
no Boltzmann policy. Episodes last at most 200 steps (CartPole-v0's limit).

Each run is a fresh subprocess; the libraries alternate (ours first in even pairs). Printed per run:
env steps/s over the whole `fit` / `learn`, and the mean return of 10 greedy test episodes (same
resets for both); then the median steps/s of each library and the ratio ours/SB3 of each pair.

    python benchmarks/dqn_speed.py                         # 10 000 steps, 1 pair
    python benchmarks/dqn_speed.py --steps 50000 --pairs 3 # the full comparison

SB3 runs with one torch thread by default (`--sb3-threads 1`): with these tiny networks torch's
default of one thread per core was several times slower on a 2-core machine. `--tf-threads N`
limits TensorFlow's intra-op threads for ours (default: TensorFlow's choice).

Needs the `bench` extra (stable-baselines3, torch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from machine import describe
from workers import report, run_worker

ENV_ID = "CartPole-v1"
MAX_EPISODE_STEPS = 200
HIDDEN = [16, 16, 16]
SETTINGS = {
    "batch_size": 32,
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "buffer": 50_000,
    "warmup": 10,
    "tau": 0.01,
    "eps_start": 1.0,
    "eps_end": 0.05,
    "eps_fraction": 0.1,
}
TEST_EPISODES = 10


def make_env():
    import gymnasium as gym

    return gym.make(ENV_ID, max_episode_steps=MAX_EPISODE_STEPS)


def evaluate(policy, seed: int) -> float:
    env = make_env()
    returns = []
    for k in range(TEST_EPISODES):
        obs, _ = env.reset(seed=seed + 1000 + k)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return sum(returns) / len(returns)


def run_ours(steps: int, seed: int, threads: int = 0) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)

    from rl.agents import DQNAgent
    from rl.memory import SequentialMemory
    from rl.policy import EpsGreedyQPolicy, LinearAnnealedPolicy

    keras.utils.set_random_seed(seed)
    env = make_env()
    nb_actions = int(env.action_space.n)
    model = keras.Sequential([keras.Input((1,) + env.observation_space.shape), layers.Flatten()])
    for units in HIDDEN:
        model.add(layers.Dense(units, activation="relu"))
    model.add(layers.Dense(nb_actions, activation="linear"))
    s = SETTINGS
    policy = LinearAnnealedPolicy(
        EpsGreedyQPolicy(seed=seed),
        attr="eps",
        value_max=s["eps_start"],
        value_min=s["eps_end"],
        value_test=0.0,
        nb_steps=max(1, int(s["eps_fraction"] * steps)),
    )
    agent = DQNAgent(
        model=model,
        nb_actions=nb_actions,
        memory=SequentialMemory(limit=s["buffer"], seed=seed),
        policy=policy,
        batch_size=s["batch_size"],
        gamma=s["gamma"],
        nb_steps_warmup=s["warmup"],
        target_model_update=s["tau"],
        delta_clip=1.0,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=s["learning_rate"]))
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0, seed=seed)
    wall = time.perf_counter() - start
    agent.training = False
    mean_return = evaluate(lambda obs: int(np.argmax(agent.compute_q_values(obs[None]))), seed)
    return {"lib": "ours", "steps_per_s": steps / wall, "test_return": mean_return, "xla": agent.jit_compile}


def run_sb3(steps: int, seed: int, threads: int = 1) -> dict:
    import torch
    from stable_baselines3 import DQN

    if threads > 0:
        torch.set_num_threads(threads)

    s = SETTINGS
    env = make_env()
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=s["learning_rate"],
        buffer_size=s["buffer"],
        learning_starts=s["warmup"],
        batch_size=s["batch_size"],
        tau=s["tau"],
        gamma=s["gamma"],
        train_freq=1,
        gradient_steps=1,
        target_update_interval=1,
        exploration_fraction=s["eps_fraction"],
        exploration_initial_eps=s["eps_start"],
        exploration_final_eps=s["eps_end"],
        max_grad_norm=1e10,
        policy_kwargs={"net_arch": HIDDEN, "activation_fn": torch.nn.ReLU},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    mean_return = evaluate(lambda obs: int(model.predict(obs, deterministic=True)[0]), seed)
    return {
        "lib": "sb3",
        "steps_per_s": steps / wall,
        "test_return": mean_return,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000, help="training steps per run (default: 10000)")
    parser.add_argument("--pairs", type=int, default=1, help="alternating pairs of runs (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first pair; pair k uses seed + k")
    parser.add_argument(
        "--sb3-threads", type=int, default=1, help="torch threads for SB3 (default: 1, its fastest here; 0: torch's)"
    )
    parser.add_argument("--tf-threads", type=int, default=0, help="TensorFlow intra-op threads (default: 0, TF's)")
    parser.add_argument("--worker", choices=["ours", "sb3"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if args.worker == "ours":
            result = run_ours(args.steps, args.seed, args.tf_threads)
        else:
            result = run_sb3(args.steps, args.seed, args.sb3_threads)
        report(result)
        return

    print(describe())
    print(f"DQN on {ENV_ID} ({MAX_EPISODE_STEPS}-step episodes), {args.steps} steps per run; settings {SETTINGS}")
    rates: dict[str, list[float]] = {"ours": [], "sb3": []}
    ratios = []
    for k in range(args.pairs):
        seed = args.seed + k
        order = ("ours", "sb3") if k % 2 == 0 else ("sb3", "ours")
        pair = {}
        for lib in order:
            cmd = ["--worker", lib, "--steps", str(args.steps), "--seed", str(seed)]
            cmd += ["--sb3-threads", str(args.sb3_threads), "--tf-threads", str(args.tf_threads)]
            result = run_worker(os.path.abspath(__file__), cmd, lib)
            pair[lib] = result
            rates[lib].append(result["steps_per_s"])
            extra = {k2: v for k2, v in result.items() if k2 not in ("lib", "steps_per_s", "test_return")}
            print(
                f"seed {seed} {lib:4s}: {result['steps_per_s']:8.0f} env steps/s, "
                f"mean test return {result['test_return']:6.1f}  {extra}"
            )
        ratios.append(pair["ours"]["steps_per_s"] / pair["sb3"]["steps_per_s"])
        print(f"seed {seed} ratio ours/SB3: {ratios[-1]:.2f}x")
    print(
        f"median env steps/s: ours {statistics.median(rates['ours']):.0f}, SB3 {statistics.median(rates['sb3']):.0f}; "
        f"ratio per pair {[round(r, 2) for r in ratios]}, median {statistics.median(ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
