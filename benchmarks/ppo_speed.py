"""PPO against Stable-Baselines3's PPO, same settings, same networks: environment steps per second and returns.

python benchmarks/ppo_speed.py                         # CartPole-v1 (8 envs, 100 000 steps) and Pendulum-v1 (4 envs)
python benchmarks/ppo_speed.py --task cartpole --steps 50000 --seeds 0 1 2
python benchmarks/ppo_speed.py --task pendulum --steps 200000 --seeds 0 1 2
python benchmarks/ppo_speed.py --libs ours sb3 sbx --sbx-python ../sbx-venv/bin/python

Each run is a fresh process; the two libraries alternate run by run (ours, SB3, ours, SB3, ...), so
both see the same machine. Settings are the RL Zoo's (CartPole: 8 environments, rollouts of 32
steps, one minibatch of 256, 20 epochs, gamma 0.98, lambda 0.8, learning rate and clip range
linear from 1e-3 and 0.2 to 0; Pendulum: 4 environments, rollouts of 1 024, minibatches of 64, 10
epochs, gamma 0.9, lambda 0.95, learning rate 1e-3; without the Zoo's gSDE and normalisation,
which this library does not have), with SB3's default networks on both sides: separate actor and
value MLPs of two 64-unit tanh layers, orthogonal initialisation. The steps per second are whole
`fit` / `learn` calls (acting, environment steps, updates); after training, each run is tested on
10 noise-free episodes. Needs `pip install -e ".[bench]"` (SB3 and torch); SBX (JAX) runs from a virtual
environment of its own (`--sbx-python`, with `pip install sbx-rl "jax<0.11"`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TASKS = {
    "cartpole": dict(
        env="CartPole-v1",
        n_envs=8,
        steps=100_000,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        lr=1e-3,
        clip=0.2,
        linear=True,
    ),
    "pendulum": dict(
        env="Pendulum-v1",
        n_envs=4,
        steps=200_000,
        n_steps=1024,
        batch_size=64,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        lr=1e-3,
        clip=0.2,
        linear=False,
    ),
}


def evaluate(act, env_id: str, seed: int, episodes: int = 10) -> float:
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 1000 + i)
        done, total = False, 0.0
        while not done:
            obs, r, terminated, truncated, _ = env.step(act(obs))
            total += float(r)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_ours(task: dict, steps: int, seed: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import gymnasium as gym
    import keras
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    from ppo_cartpole import build_models

    from rl.agents import PPOAgent
    from rl.agents.on_policy import linear_schedule

    keras.utils.set_random_seed(seed)
    env = gym.make_vec(task["env"], num_envs=task["n_envs"], vectorization_mode="sync")
    space = env.single_action_space
    discrete = hasattr(space, "n")
    actor, critic = build_models(env.single_observation_space.shape, int(space.n) if discrete else space.shape[0])
    schedule = linear_schedule if task["linear"] else (lambda x: x)
    agent = PPOAgent(
        actor,
        critic,
        space,
        n_steps=task["n_steps"],
        batch_size=task["batch_size"],
        n_epochs=task["n_epochs"],
        gamma=task["gamma"],
        gae_lambda=task["gae_lambda"],
        clip_range=schedule(task["clip"]),
        lr_schedule=linear_schedule(task["lr"]) if task["linear"] else None,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=task["lr"], epsilon=1e-5))
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0, seed=seed)
    seconds = time.perf_counter() - start
    agent.training = False

    def act(obs):
        a = agent.forward(np.asarray(obs, np.float32))
        return int(a) if discrete else np.clip(a, space.low, space.high)

    return {"steps_per_s": steps / seconds, "seconds": seconds, "test_return": evaluate(act, task["env"], seed)}


def run_peer(ppo_class: type, policy_kwargs: dict, task: dict, steps: int, seed: int, **kwargs) -> dict:
    """One run of a Stable-Baselines3-style `PPO` class (SB3's or SBX's) with the task's settings."""
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(task["env"], n_envs=task["n_envs"], seed=seed)

    def linear(start):
        return lambda progress: progress * start

    model = ppo_class(
        "MlpPolicy",
        env,
        n_steps=task["n_steps"],
        batch_size=task["batch_size"],
        n_epochs=task["n_epochs"],
        gamma=task["gamma"],
        gae_lambda=task["gae_lambda"],
        learning_rate=linear(task["lr"]) if task["linear"] else task["lr"],
        clip_range=linear(task["clip"]) if task["linear"] else task["clip"],
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), **policy_kwargs),
        seed=seed,
        verbose=0,
        **kwargs,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start

    def act(obs):
        return model.predict(np.asarray(obs), deterministic=True)[0]

    return {"steps_per_s": steps / seconds, "seconds": seconds, "test_return": evaluate(act, task["env"], seed)}


def run_sb3(task: dict, steps: int, seed: int) -> dict:
    import torch
    from stable_baselines3 import PPO

    return run_peer(PPO, dict(activation_fn=torch.nn.Tanh), task, steps, seed, device="cpu")


def run_sbx(task: dict, steps: int, seed: int) -> dict:
    from sbx import PPO

    return run_peer(PPO, dict(ortho_init=True), task, steps, seed)  # tanh is SBX's default


RUNS = {"ours": run_ours, "sb3": run_sb3, "sbx": run_sbx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default: the task's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--libs", nargs="+", choices=list(RUNS), default=["ours", "sb3"])
    parser.add_argument(
        "--sbx-python",
        default=os.environ.get("SBX_PYTHON"),
        help="the Python of a virtual environment with sbx-rl (SBX pins jax < 0.11, so it lives apart); "
        "needed with --libs ... sbx (default: $SBX_PYTHON)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("LIB", "TASK", "STEPS", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, task, steps, seed = args.worker
        print(json.dumps(RUNS[lib](TASKS[task], int(steps), int(seed))))
        return
    if "sbx" in args.libs and not args.sbx_python:
        parser.error("--libs sbx needs --sbx-python PATH (a virtual environment with sbx-rl installed)")

    sys.path.insert(0, HERE)
    from machine import describe

    print(describe())
    tasks = list(TASKS) if args.task == "all" else [args.task]
    for name in tasks:
        task = TASKS[name]
        steps = args.steps or task["steps"]
        print(f"\n{name}: {task['env']}, {task['n_envs']} envs, {steps} steps per run")
        results: dict[str, list[dict]] = {lib: [] for lib in args.libs}
        for seed in args.seeds:
            for lib in args.libs:
                python = args.sbx_python if lib == "sbx" else sys.executable
                cmd = [python, os.path.abspath(__file__), "--worker", lib, name, str(steps), str(seed)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode:
                    print(out.stderr[-3000:])
                    raise SystemExit(f"{lib} failed on {name} seed {seed}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[lib].append(r)
                print(
                    f"  {lib:4s} seed {seed}: {r['steps_per_s']:7.0f} steps/s ({r['seconds']:.1f} s), "
                    f"test return {r['test_return']:.1f}"
                )
        if "ours" in results:
            ours = sum(r["steps_per_s"] for r in results["ours"]) / len(results["ours"])
            for peer in [lib for lib in args.libs if lib != "ours"]:
                theirs = sum(r["steps_per_s"] for r in results[peer]) / len(results[peer])
                print(f"  speed ratio ours / {peer}: {ours / theirs:.2f}x ({ours:.0f} vs {theirs:.0f} steps/s)")


if __name__ == "__main__":
    main()
