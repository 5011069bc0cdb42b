"""DDPG, TD3 and SAC training speed on Pendulum-v1: this library, and optionally Stable-Baselines3, in one run.

Each run is a fresh subprocess (so its peak memory is its own); with `--vs sb3` the two libraries
alternate (ours first in even pairs, SB3 first in odd ones) with identical settings: same network
sizes, batch, learning rate, tau, gamma, warm-up, Ornstein-Uhlenbeck noise, buffer, and one
gradient step per environment step (or, with `--gradient-steps K`, K gradient steps every K
environment steps: the same number of updates, in bursts). Printed per run: env steps/s (for
our agent also whether the training step ran with XLA or plain TensorFlow, and the rate after its
first training call, which traces and compiles the step), the share of wall time inside the
compiled training/acting call, peak RSS, and the mean noise-free test return.

    python benchmarks/agents_speed.py --algo ddpg td3 sac --setting large --seeds 0 1 2 --vs sb3
    python benchmarks/agents_speed.py --algo ddpg --setting keras-rl --seeds 0 1 2 --vs sb3
    python benchmarks/agents_speed.py --algo ddpg --setting small --seeds 0 1 2 --vs sb3

Settings: `large` = actor and critic [256, 256], batch 64; `small` = keras-rl's example sizes
(actor 3 x Dense(16), critic 3 x Dense(32)), batch 32; `keras-rl` = keras-rl's exact example
configuration: those sizes, batch 32, `target_model_update=1e-3`, warm-up 100 and
`Adam(learning_rate=1e-3, clipnorm=1.)` (SB3 has no per-variable clipping option: it runs
without). TD3 explores with Gaussian noise of 0.1 action half-widths (0.2 on Pendulum) and uses
policy_delay=2, target noise 0.2 clipped at 0.5 (half-widths) in both libraries; SAC learns its
entropy coefficient ("auto") in both. Exploration for DDPG: Ornstein-Uhlenbeck noise.
`--threads N` sets TensorFlow's intra-op threads (and, unless `--sb3-threads` says otherwise,
torch's threads) to N; 0 keeps the default.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from machine import describe

SETTINGS = {
    "large": {"actor": [256, 256], "critic": [256, 256], "batch_size": 64},
    "small": {"actor": [16, 16, 16], "critic": [32, 32, 32], "batch_size": 32},
    "keras-rl": {
        "actor": [16, 16, 16],
        "critic": [32, 32, 32],
        "batch_size": 32,
        "tau": 1e-3,
        "warmup": 100,
        "clipnorm": 1.0,
    },
}
ALGOS = ("ddpg", "td3", "sac")
COMMON = {
    "learning_rate": 1e-3,
    "tau": 0.005,
    "gamma": 0.99,
    "warmup": 1000,
    "buffer": 100_000,
    "ou_theta": 0.15,
    "ou_sigma": 0.3,
    "ou_dt": 1e-2,
    "td3_noise": 0.1,  # exploration noise in action half-widths
}
TEST_EPISODES = 10


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def evaluate(policy, env, seed: int) -> float:
    """Mean return of TEST_EPISODES noise-free episodes (same resets for both libraries)."""
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


def run_ours(algo: str, setting: dict, steps: int, seed: int, every: int = 1) -> dict:
    import gymnasium as gym
    import keras
    from keras import layers

    from rl.agents import DDPGAgent, SACAgent, TD3Agent
    from rl.memory import SequentialMemory
    from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess

    c = {**COMMON, **setting}
    keras.utils.set_random_seed(seed)
    env = gym.make("Pendulum-v1")
    obs_shape, nb_actions = env.observation_space.shape, env.action_space.shape[0]
    high = float(env.action_space.high[0])
    obs_in = keras.Input((1,) + obs_shape)
    x = layers.Flatten()(obs_in)
    for units in setting["actor"]:
        x = layers.Dense(units, activation="relu")(x)
    if algo == "sac":
        actor = keras.Model(obs_in, layers.Dense(2 * nb_actions)(x))  # means and log stds
    else:
        actor = keras.Model(obs_in, layers.Rescaling(high)(layers.Dense(nb_actions, activation="tanh")(x)))
    action_in, critic_obs_in = keras.Input((nb_actions,)), keras.Input((1,) + obs_shape)
    y = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)])
    for units in setting["critic"]:
        y = layers.Dense(units, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(y))
    args = dict(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=c["buffer"], seed=seed),
        batch_size=c["batch_size"],
        gamma=c["gamma"],
        target_model_update=c["tau"],
        train_interval=every,
        gradient_steps=every,
        jit_compile={"auto": "auto", "on": True, "off": False}[os.environ.get("RL_BENCH_JIT", "auto")],
    )
    if algo == "sac":
        agent = SACAgent(nb_steps_warmup=c["warmup"], ent_coef="auto", **args)
    else:
        if algo == "ddpg":
            noise = OrnsteinUhlenbeckProcess(
                theta=c["ou_theta"], sigma=c["ou_sigma"], dt=c["ou_dt"], size=nb_actions, seed=seed
            )
            cls, extra = DDPGAgent, {}
        else:
            noise = GaussianWhiteNoiseProcess(sigma=c["td3_noise"] * high, size=nb_actions, seed=seed)
            cls, extra = TD3Agent, {"policy_delay": 2, "target_policy_noise": 0.2, "target_noise_clip": 0.5}
        agent = cls(
            nb_steps_warmup_critic=c["warmup"],
            nb_steps_warmup_actor=c["warmup"],
            random_process=noise,
            **args,
            **extra,
        )
    clip = {"clipnorm": c["clipnorm"]} if c.get("clipnorm") else {}
    agent.compile(keras.optimizers.Adam(learning_rate=c["learning_rate"], **clip))

    # Time spent inside the compiled call (the training step fused with acting, or acting alone),
    # including handing the inputs over and reading the outputs back.
    # Also when the first training call (tracing and compiling the training step) returned, for
    # the steady-state rate after it.
    inside = [0.0]
    first_train: list = []
    call = agent.call_compiled

    def timed_call(name, options, build, x, may_use_xla=True):
        start = time.perf_counter()
        try:
            return call(name, options, build, x, may_use_xla)
        finally:
            end = time.perf_counter()
            inside[0] += end - start
            if not first_train and name == "train":
                first_train.extend([end, agent.step])

    agent.call_compiled = timed_call
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0, seed=seed)
    end = time.perf_counter()
    wall = end - start
    del agent.call_compiled
    test_env = gym.make("Pendulum-v1")
    agent.reset_states()
    mean_return = evaluate(lambda obs: agent.forward(obs), test_env, seed)
    return {
        "lib": "ours",
        "algo": algo,
        "seed": seed,
        "steps_per_s": steps / wall,
        "wall_s": wall,
        "steady_steps_per_s": (steps - first_train[1]) / (end - first_train[0]),
        "compiled_share": inside[0] / wall,
        "peak_rss_mb": peak_rss_mb(),
        "test_return": mean_return,
        "flat_weights": agent.flat_weights,
        "xla": bool(agent.jit_compile),
        "traces": agent.trace_count,
    }


def run_sb3(algo: str, setting: dict, steps: int, seed: int, every: int = 1) -> dict:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    c = {**COMMON, **setting}
    env = gym.make("Pendulum-v1")
    nb_actions = env.action_space.shape[0]
    high = float(env.action_space.high[0])
    args = dict(
        learning_rate=c["learning_rate"],
        buffer_size=c["buffer"],
        learning_starts=c["warmup"],
        batch_size=c["batch_size"],
        tau=c["tau"],
        gamma=c["gamma"],
        train_freq=every,
        gradient_steps=every,
        policy_kwargs={"net_arch": {"pi": setting["actor"], "qf": setting["critic"]}},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    if algo == "ddpg":
        noise = OrnsteinUhlenbeckActionNoise(
            mean=np.zeros(nb_actions), sigma=c["ou_sigma"] * np.ones(nb_actions), theta=c["ou_theta"], dt=c["ou_dt"]
        )
        model = DDPG("MlpPolicy", env, action_noise=noise, **args)
    elif algo == "td3":
        noise = NormalActionNoise(mean=np.zeros(nb_actions), sigma=c["td3_noise"] * high * np.ones(nb_actions))
        # SB3's target noise is in its normalised [-1, 1] action space: the same half-width units as ours.
        model = TD3(
            "MlpPolicy", env, action_noise=noise, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, **args
        )
    else:
        model = SAC("MlpPolicy", env, ent_coef="auto", **args)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    test_env = gym.make("Pendulum-v1")
    mean_return = evaluate(lambda obs: model.predict(obs, deterministic=True)[0], test_env, seed)
    return {
        "lib": "sb3",
        "algo": algo,
        "seed": seed,
        "steps_per_s": steps / wall,
        "wall_s": wall,
        "compiled_share": None,
        "peak_rss_mb": peak_rss_mb(),
        "test_return": mean_return,
    }


def worker(args: argparse.Namespace) -> None:
    if args.worker == "ours" and args.threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    if args.worker == "sb3" and args.sb3_threads:
        import torch

        torch.set_num_threads(args.sb3_threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run = run_ours if args.worker == "ours" else run_sb3
    result = run(args.algo[0], SETTINGS[args.setting], args.steps, args.seed, args.gradient_steps)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(lib: str, args: argparse.Namespace, seed: int) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        lib,
        "--algo",
        args.algo[0],
        "--setting",
        args.setting,
        "--steps",
        str(args.steps),
        "--seed",
        str(seed),
        "--threads",
        str(args.threads),
        "--sb3-threads",
        str(args.sb3_threads),
        "--jit",
        args.jit,
        "--gradient-steps",
        str(args.gradient_steps),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{lib} run failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def fmt(r: dict) -> str:
    share = "   -  " if r["compiled_share"] is None else f"{100 * r['compiled_share']:5.1f}%"
    steady = f" (after compiling: {r['steady_steps_per_s']:7.1f})" if r.get("steady_steps_per_s") else ""
    mode = {True: "  XLA ", False: "  TF  "}.get(r.get("xla"), "      ")
    return (
        f"{r['algo']:>4} {r['lib']:>4} seed {r['seed']}:{mode}{r['steps_per_s']:7.1f} steps/s{steady}  "
        f"wall {r['wall_s']:7.1f} s  "
        f"compiled {share}  peak RSS {r['peak_rss_mb']:6.0f} MB  test return {r['test_return']:8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, nargs="+", default=["ddpg"])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="large")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--vs", choices=["sb3"], default=None, help="also run Stable-Baselines3's same algorithm")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both libraries (0: default)")
    parser.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="torch threads for SB3 (default: same as --threads; 0: torch's default)",
    )
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="our agent's jit_compile")
    parser.add_argument(
        "--gradient-steps",
        type=int,
        default=1,
        help="train every K env steps with K gradient steps (ours: train_interval=gradient_steps=K; "
        "SB3: train_freq=gradient_steps=K); 1 is one gradient step per env step",
    )
    parser.add_argument("--worker", choices=["ours", "sb3"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["RL_BENCH_JIT"] = args.jit
    if args.sb3_threads is None:
        args.sb3_threads = args.threads
    if args.worker:
        worker(args)
        return

    print(describe(), flush=True)
    print(
        f"setting={args.setting} {SETTINGS[args.setting]} steps={args.steps} threads={args.threads or 'default'} "
        f"sb3_threads={args.sb3_threads or 'default'} jit={args.jit} gradient_steps={args.gradient_steps} {COMMON}"
    )
    for algo in args.algo:
        run_pairs(algo, args)


def run_pairs(algo: str, args: argparse.Namespace) -> None:
    """Alternating pairs (ours first in even pairs, SB3 first in odd ones) for one algorithm."""
    one = argparse.Namespace(**{**vars(args), "algo": [algo]})
    pairs = []
    for k, seed in enumerate(args.seeds):
        order = ["ours", "sb3"] if k % 2 == 0 else ["sb3", "ours"]
        if args.vs is None:
            order = ["ours"]
        results = {}
        for lib in order:
            results[lib] = spawn(lib, one, seed)
            print(fmt(results[lib]), flush=True)
        if args.vs:
            ratio = results["ours"]["steps_per_s"] / results["sb3"]["steps_per_s"]
            pairs.append((seed, ratio, results))
            print(f"  {algo} pair {k} (seed {seed}): speed ratio ours/sb3 = {ratio:.2f}", flush=True)
    if pairs:
        ratios = [r for _, r, _ in pairs]
        ours = [res["ours"]["test_return"] for _, _, res in pairs]
        sb3 = [res["sb3"]["test_return"] for _, _, res in pairs]
        rate = statistics.median(res["ours"]["steps_per_s"] for _, _, res in pairs)
        rate_sb3 = statistics.median(res["sb3"]["steps_per_s"] for _, _, res in pairs)
        print(
            f"{algo}: median speed ratio ours/sb3 = {statistics.median(ratios):.2f} (pairs: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}); median steps/s ours {rate:.0f}, sb3 {rate_sb3:.0f}"
        )
        print(f"{algo}: mean test return ours {statistics.mean(ours):.1f}, sb3 {statistics.mean(sb3):.1f}")


if __name__ == "__main__":
    main()
