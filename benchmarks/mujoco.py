"""TD3, SAC and DDPG on MuJoCo (gymnasium's *-v5 tasks) with the papers' settings; resumable.

Trains one (algorithm, environment, seed), evaluates every `--eval-every` steps with
`--eval-episodes` noise-free episodes on a separate environment (its first reset seeded with
`seed + 100` at every evaluation, so each evaluation plays the same start states and the training
environment is not touched), and appends one CSV row per evaluation to `OUT/progress.csv`:

    step, mean_return, std_return, steps_per_s, wall_s, eval_s, time

`steps_per_s` is the training rate over the interval (evaluation and checkpoint excluded), `wall_s`
the run's wall time so far (everything, summed over resumed runs, not counting the work lost
after the last checkpoint when a run was killed), `eval_s` the evaluation's seconds, `time` the UTC
time of the row. The settings of each (algorithm, environment) are in `CONFIGS` below, each value
with its source; `OUT/config.json` records the run's.

Resuming: after each evaluation the row is written (then fsync'ed) and a full checkpoint is saved
to `OUT/ckpt` (`agent.save_checkpoint`: networks, optimizers, replay memory, noise and generator
states, the training environment's generators; replaced atomically). Running the same command
again loads it (`agent.load_checkpoint`), drops any CSV row after the checkpoint's step (a run
killed between the row and the checkpoint) and continues from `agent.step` up to `--steps`; a
larger `--steps` extends a finished run. The process can be killed at any moment: at most
`--eval-every` steps are redone. What cannot be restored: the simulator's own state, so a resumed
run starts a new training episode (the episode in progress when the checkpoint was written is cut
short, its transitions kept in the replay memory); so a resumed run is not step-for-step the run
that was not interrupted. With `--sb3` the model and replay buffer are saved instead (`model.save`,
`save_replay_buffer`, into a new folder that a pointer file then names atomically) and loaded on
resume (`learn(..., reset_num_timesteps=False)`); SB3's generators are not restored either.

Results are data: the default output folder is `runs/mujoco/<algo>-<env>-s<seed>` (`-sb3` added
with `--sb3`) at the repository root; keep it out of git.

    # smoke runs (minutes; figures meaningless)
    python benchmarks/mujoco.py --algo td3 --env HalfCheetah-v5 --steps 2000 --eval-every 1000 --eval-episodes 1
    python benchmarks/mujoco.py --algo td3 --env HalfCheetah-v5 --steps 2000 --eval-every 1000 --sb3

    # a long run in the background: survives the end of the shell; run the same line again
    # (later) to continue it after it was killed
    mkdir -p runs/mujoco
    nohup .venv/bin/python benchmarks/mujoco.py --algo td3 --env HalfCheetah-v5 --seed 0 \\
        > runs/mujoco/td3-HalfCheetah-v5-s0.log 2>&1 &

    # learning curves (mean return with its standard deviation) of one or more runs
    python benchmarks/mujoco.py --plot runs/mujoco/td3-HalfCheetah-v5-s*/progress.csv --plot-out curve.png

MuJoCo writes its warnings to `MUJOCO_LOG.TXT` in the working folder. With `--sb3`, torch runs on
`--sb3-threads` threads (default 1: on a busy 2-core machine torch's default ran 25x slower).

Needs MuJoCo (`pip install -e ".[mujoco]"`), `--sb3` Stable-Baselines3 and torch (`.[bench]`),
`--plot` matplotlib (`.[plot]`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# This file is named like the `mujoco` package that gymnasium imports: with its folder on sys.path
# (Python puts it first when running the script), `import mujoco` would find this file. So the
# folder comes off sys.path, and `machine.py` beside it is loaded by its path instead.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]


def _load_machine():
    import importlib.util

    spec = importlib.util.spec_from_file_location("machine", os.path.join(HERE, "machine.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import numpy as np  # noqa: E402

describe = _load_machine().describe

ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")
ALGOS = ("td3", "sac", "ddpg")
FIELDS = ["step", "mean_return", "std_return", "steps_per_s", "wall_s", "eval_s", "time"]

# TD3: Fujimoto et al. 2018 (arXiv:1802.09477) as in the authors' current code, sfujim/TD3 main.py
# and TD3.py. The paper itself used [400, 300], Adam 1e-3, batch 100, and 10 000 random start steps
# for HalfCheetah and Ant, 1000 for Hopper and Walker2d (the repository's run_experiments.sh);
# main.py now defaults to the values below for every task.
TD3 = {
    "hidden": [256, 256],  # TD3.py: Actor/Critic l1, l2 = 256 units, ReLU; tanh actor output
    "learning_rate": 3e-4,  # TD3.py: Adam(lr=3e-4), actor and critics
    "batch_size": 256,  # main.py --batch_size 256
    "tau": 0.005,  # main.py --tau 0.005
    "gamma": 0.99,  # main.py --discount 0.99
    "buffer": 1_000_000,  # utils.ReplayBuffer(max_size=1e6)
    "start_steps": 25_000,  # main.py --start_timesteps 25e3: uniform random actions, no training before
    "expl_noise": 0.1,  # main.py --expl_noise 0.1: Gaussian, in half-widths of the action range
    "policy_delay": 2,  # main.py --policy_freq 2
    "target_noise": 0.2,  # main.py --policy_noise 0.2 (half-widths)
    "target_noise_clip": 0.5,  # main.py --noise_clip 0.5 (half-widths)
}
# DDPG: the TD3 paper's "our DDPG", sfujim/TD3 OurDDPG.py run by the same main.py: TD3's networks,
# optimizer, batch, buffer, start steps and exploration, without twin critics, target smoothing or
# delayed updates.
DDPG = {
    "hidden": [256, 256],  # OurDDPG.py: 256-256 ReLU (the paper's "our DDPG": 400-300)
    "learning_rate": 3e-4,  # OurDDPG.py: Adam(lr=3e-4), actor and critic
    "batch_size": 256,  # main.py --batch_size 256
    "tau": 0.005,  # main.py --tau 0.005
    "gamma": 0.99,  # main.py --discount 0.99
    "buffer": 1_000_000,  # utils.ReplayBuffer(max_size=1e6)
    "start_steps": 25_000,  # main.py --start_timesteps 25e3
    "expl_noise": 0.1,  # main.py --expl_noise 0.1 (half-widths)
}
# SAC: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv:1812.05905,
# Table 1) and SB3 RL Zoo hyperparams/sac.yml for the MuJoCo tasks (learning_starts 10 000).
SAC = {
    "hidden": [256, 256],  # paper Table 1: 2 hidden layers of 256 units, ReLU
    "learning_rate": 3e-4,  # paper Table 1: Adam 3e-4 (actor, critics, entropy coefficient)
    "batch_size": 256,  # paper Table 1: minibatch 256
    "tau": 0.005,  # paper Table 1: target smoothing coefficient 0.005
    "gamma": 0.99,  # paper Table 1: discount 0.99
    "buffer": 1_000_000,  # paper Table 1: replay buffer 1e6
    "start_steps": 10_000,  # RL Zoo sac.yml: learning_starts 10000 (uniform random actions before)
    "ent_coef": "auto",  # paper section 5 / Table 1: learned, target entropy -dim(A)
}
CONFIGS = {
    ("td3", "HalfCheetah-v5"): dict(TD3),
    ("td3", "Hopper-v5"): dict(TD3),
    ("td3", "Walker2d-v5"): dict(TD3),
    ("td3", "Ant-v5"): dict(TD3),
    ("sac", "HalfCheetah-v5"): dict(SAC),
    ("sac", "Hopper-v5"): dict(SAC),
    ("sac", "Walker2d-v5"): dict(SAC),
    ("sac", "Ant-v5"): dict(SAC),
    ("ddpg", "HalfCheetah-v5"): dict(DDPG),
    ("ddpg", "Hopper-v5"): dict(DDPG),
    ("ddpg", "Walker2d-v5"): dict(DDPG),
    ("ddpg", "Ant-v5"): dict(DDPG),
}
# `--tiny` (tests only): small networks and a short warm-up so that a run takes seconds.
TINY = {"hidden": [32, 32], "batch_size": 32, "buffer": 10_000, "start_steps": 100}


# ------------------------------------------------------------------ results file
def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("step")]


def keep_rows_up_to(path: str, step: int) -> list[dict]:
    """Rewrites the CSV without the rows after `step` (atomically); returns the rows kept."""
    rows = [row for row in read_rows(path) if int(row["step"]) <= step]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in FIELDS} for row in rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return rows


def append_row(path: str, row: dict) -> None:
    """Appends one row and fsyncs it (the file exists with its header: `keep_rows_up_to` made it)."""
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=FIELDS).writerow(row)
        f.flush()
        os.fsync(f.fileno())


def check_config(out: str, config: dict) -> None:
    """Writes `config.json`, or checks that a resumed run has the same settings (all but `steps`)."""
    path = os.path.join(out, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        differ = {k for k in set(old) | set(config) if k != "steps" and old.get(k) != config.get(k)}
        if differ:
            raise SystemExit(
                f"{out} holds a run with other settings ({', '.join(sorted(differ))}): "
                "pass another --out, or remove the folder to start afresh."
            )
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class Progress:
    """Times the intervals between evaluations and writes one CSV row (and a line) per evaluation."""

    def __init__(self, csv_path: str, rows: list[dict], start_step: int):
        self.csv_path = csv_path
        self.wall_before = float(rows[-1]["wall_s"]) if rows else 0.0
        self.session_start = time.perf_counter()
        self.last_step = start_step
        self.interval_start = self.session_start

    def record(self, step: int, evaluate) -> dict:
        """Ends the training interval at `step`, evaluates (`evaluate() -> returns`), writes the row."""
        train_s = time.perf_counter() - self.interval_start
        eval_start = time.perf_counter()
        returns = np.asarray(evaluate(), dtype=np.float64)
        eval_s = time.perf_counter() - eval_start
        row = {
            "step": step,
            "mean_return": f"{returns.mean():.3f}",
            "std_return": f"{returns.std():.3f}",
            "steps_per_s": f"{(step - self.last_step) / max(train_s, 1e-9):.2f}",
            "wall_s": f"{self.wall_before + time.perf_counter() - self.session_start:.1f}",
            "eval_s": f"{eval_s:.1f}",
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        append_row(self.csv_path, row)
        print(
            f"step {step}: return {row['mean_return']} +/- {row['std_return']} over {returns.size} episodes; "
            f"{row['steps_per_s']} steps/s; eval {row['eval_s']} s; wall {row['wall_s']} s",
            flush=True,
        )
        return row

    def restart_interval(self, step: int) -> None:
        """Starts the next training interval (after the evaluation and the checkpoint)."""
        self.last_step = step
        self.interval_start = time.perf_counter()


# ------------------------------------------------------------------ this library
def dense(units: int, fan_in: int, activation=None):
    """A Dense layer initialized as PyTorch's `nn.Linear` (the reference code's and SB3's layers)."""
    import keras

    bound = 1.0 / math.sqrt(fan_in)
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
    )


def build_models(algo: str, hidden: list[int], env):
    """The actor ([hidden] ReLU, then tanh scaled to the bounds; SAC: 2 * nb_actions linear outputs,
    means then log standard deviations) and the critic ([action, observation] -> [hidden] ReLU -> Q)."""
    import keras
    from keras import layers

    obs_shape, nb_actions = env.observation_space.shape, env.action_space.shape[0]
    obs_size = math.prod(obs_shape)
    obs_in = keras.Input((1,) + obs_shape, name="observation_input")
    x, width = layers.Flatten()(obs_in), obs_size
    for units in hidden:
        x, width = dense(units, width, "relu")(x), units
    if algo == "sac":
        actor = keras.Model(obs_in, dense(2 * nb_actions, width)(x), name="actor")
    else:  # MuJoCo's bounds are symmetric: scale tanh's [-1, 1] by the upper bound
        x = dense(nb_actions, width, "tanh")(x)
        actor = keras.Model(obs_in, layers.Rescaling(float(env.action_space.high[0]))(x), name="actor")
    action_in = keras.Input((nb_actions,), name="action_input")
    critic_obs_in = keras.Input((1,) + obs_shape, name="critic_observation_input")
    y, width = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)]), nb_actions + obs_size
    for units in hidden:
        y, width = dense(units, width, "relu")(y), units
    critic = keras.Model([action_in, critic_obs_in], dense(1, width)(y), name="critic")
    return actor, critic, action_in


def make_agent(algo: str, config: dict, env, seed: int):
    import keras

    from rl.agents import DDPGAgent, SACAgent, TD3Agent
    from rl.memory import SequentialMemory
    from rl.random import GaussianWhiteNoiseProcess

    nb_actions = env.action_space.shape[0]
    half = float((env.action_space.high[0] - env.action_space.low[0]) / 2.0)
    actor, critic, action_in = build_models(algo, config["hidden"], env)
    start = config["start_steps"]
    common = {
        "nb_actions": nb_actions,
        "actor": actor,
        "critic": critic,
        "critic_action_input": action_in,
        "memory": SequentialMemory(limit=config["buffer"], window_length=1, seed=seed),
        "batch_size": config["batch_size"],
        "gamma": config["gamma"],
        "target_model_update": config["tau"],
        "nb_steps_random": start,  # uniform random actions over the bounds for the first steps
    }
    if algo == "sac":
        agent = SACAgent(**common, nb_steps_warmup=start, ent_coef=config["ent_coef"])
    else:
        noise = GaussianWhiteNoiseProcess(sigma=config["expl_noise"] * half, size=nb_actions, seed=seed)
        warmup = {"nb_steps_warmup_critic": start, "nb_steps_warmup_actor": start, "random_process": noise}
        if algo == "td3":
            agent = TD3Agent(
                **common,
                **warmup,
                policy_delay=config["policy_delay"],
                target_policy_noise=config["target_noise"],
                target_noise_clip=config["target_noise_clip"],
            )
        else:
            agent = DDPGAgent(**common, **warmup)
    agent.compile(keras.optimizers.Adam(learning_rate=config["learning_rate"]))
    return agent


def make_env(name: str, max_episode_steps: int | None = None, xml_file: str | None = None):
    import gymnasium as gym

    model = {} if xml_file is None else {"xml_file": xml_file}
    try:
        return gym.make(name, max_episode_steps=max_episode_steps, **model)
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        raise SystemExit(f"{name} needs MuJoCo: `pip install -e '.[mujoco]'`. ({e})") from e


def run_ours(args, config: dict, out: str) -> list[dict]:
    import keras

    from rl.callbacks import Callback

    csv_path, ckpt = os.path.join(out, "progress.csv"), os.path.join(out, "ckpt")
    keras.utils.set_random_seed(args.seed)  # the networks' initial weights
    env = make_env(args.env, xml_file=args.xml_file)
    eval_env = make_env(args.env, args.eval_episode_steps, args.xml_file)
    agent = make_agent(args.algo, config, env, args.seed)
    resumed = os.path.exists(os.path.join(ckpt, "checkpoint.json"))
    if resumed:
        agent.load_checkpoint(ckpt, env=env)  # restores the env's generators too
    rows = keep_rows_up_to(csv_path, agent.step)
    print(f"{'resumed at step ' + str(agent.step) if resumed else 'new run'}; output {out}", flush=True)
    if agent.step >= args.steps:
        print(f"nothing to do: the run is at step {agent.step} >= --steps {args.steps}")
        return rows
    progress = Progress(csv_path, rows, agent.step)

    def evaluate():
        history = agent.test(eval_env, nb_episodes=args.eval_episodes, visualize=False, verbose=0, seed=args.seed + 100)
        return history.history["episode_reward"]

    class EvalAndSave(Callback):
        touches_weights = False  # agent.test and save_checkpoint bring the models up to date themselves

        def on_step_end(self, step, logs=None):
            total = self.model.step
            if total % args.eval_every == 0 or total == args.steps:
                progress.record(total, evaluate)  # the row first: a kill before the save drops it on resume
                self.model.save_checkpoint(ckpt, env=self.env)
                progress.restart_interval(total)

    # One fit call (training episodes run across evaluations, as in the reference code); the seed
    # only on a new run: a resumed run takes its generators from the checkpoint.
    agent.fit(
        env,
        nb_steps=args.steps - agent.step,
        verbose=0,
        seed=None if resumed else args.seed,
        callbacks=[EvalAndSave()],
    )
    return read_rows(csv_path)


# ------------------------------------------------------------ Stable-Baselines3
def make_sb3(algo: str, config: dict, env, seed: int):
    from stable_baselines3 import DDPG as SB3DDPG
    from stable_baselines3 import SAC as SB3SAC
    from stable_baselines3 import TD3 as SB3TD3
    from stable_baselines3.common.noise import NormalActionNoise

    nb_actions = env.action_space.shape[0]
    common = {
        "learning_rate": config["learning_rate"],
        "buffer_size": config["buffer"],
        "learning_starts": config["start_steps"],  # SB3 acts uniformly at random before it
        "batch_size": config["batch_size"],
        "tau": config["tau"],
        "gamma": config["gamma"],
        "train_freq": 1,
        "gradient_steps": 1,
        "policy_kwargs": {"net_arch": list(config["hidden"])},
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }
    if algo == "sac":
        return SB3SAC("MlpPolicy", env, ent_coef=config["ent_coef"], **common)
    # SB3 adds the noise to the action scaled to [-1, 1]: its sigma is in half-widths, as ours.
    noise = NormalActionNoise(mean=np.zeros(nb_actions), sigma=config["expl_noise"] * np.ones(nb_actions))
    if algo == "td3":
        return SB3TD3(
            "MlpPolicy",
            env,
            action_noise=noise,
            policy_delay=config["policy_delay"],
            target_policy_noise=config["target_noise"],
            target_noise_clip=config["target_noise_clip"],
            **common,
        )
    return SB3DDPG("MlpPolicy", env, action_noise=noise, **common)


def sb3_evaluate(model, env, episodes: int, seed: int) -> list[float]:
    """`agent.test`'s protocol: the first reset seeded, the later ones continuing; deterministic actions."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed) if k == 0 else env.reset()
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def sb3_save(model, folder: str) -> None:
    """Model and replay buffer into a new sub-folder, then `latest` names it (atomically)."""
    name = f"step_{model.num_timesteps}"
    target = os.path.join(folder, name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    model.save(os.path.join(target, "model.zip"))
    model.save_replay_buffer(os.path.join(target, "replay.pkl"))
    with open(os.path.join(folder, "latest.tmp"), "w") as f:
        f.write(name)
        f.flush()
        os.fsync(f.fileno())
    os.replace(os.path.join(folder, "latest.tmp"), os.path.join(folder, "latest"))
    for other in os.listdir(folder):  # older checkpoints, and what a killed save left
        if other.startswith("step_") and other != name:
            shutil.rmtree(os.path.join(folder, other), ignore_errors=True)


def run_sb3(args, config: dict, out: str) -> list[dict]:
    import stable_baselines3 as sb3
    import torch

    if args.sb3_threads:
        torch.set_num_threads(args.sb3_threads)
    csv_path, folder = os.path.join(out, "progress.csv"), os.path.join(out, "sb3_ckpt")
    os.makedirs(folder, exist_ok=True)
    env = make_env(args.env, xml_file=args.xml_file)
    eval_env = make_env(args.env, args.eval_episode_steps, args.xml_file)
    latest = os.path.join(folder, "latest")
    if os.path.exists(latest):
        with open(latest) as f:
            target = os.path.join(folder, f.read().strip())
        cls = {"td3": sb3.TD3, "sac": sb3.SAC, "ddpg": sb3.DDPG}[args.algo]
        model = cls.load(os.path.join(target, "model.zip"), env=env, device="cpu")
        model.load_replay_buffer(os.path.join(target, "replay.pkl"))
        print(f"resumed at step {model.num_timesteps}; output {out}", flush=True)
    else:
        model = make_sb3(args.algo, config, env, args.seed)
        print(f"new run; output {out}", flush=True)
    rows = keep_rows_up_to(csv_path, model.num_timesteps)
    progress = Progress(csv_path, rows, model.num_timesteps)
    while model.num_timesteps < args.steps:
        chunk = min(args.eval_every - model.num_timesteps % args.eval_every, args.steps - model.num_timesteps)
        model.learn(total_timesteps=chunk, reset_num_timesteps=False)
        step = model.num_timesteps
        progress.record(step, lambda: sb3_evaluate(model, eval_env, args.eval_episodes, args.seed + 100))
        sb3_save(model, folder)
        progress.restart_interval(step)
    return read_rows(csv_path)


# ------------------------------------------------------------------ plotting
def plot(csv_paths: list[str], out: str) -> str:
    """Mean evaluation return (and +/- one standard deviation) against steps, one line per CSV."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: `pip install -e '.[plot]'`") from e
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for path in csv_paths:
        rows = read_rows(path)
        if not rows:
            continue
        steps = np.array([int(r["step"]) for r in rows])
        mean = np.array([float(r["mean_return"]) for r in rows])
        std = np.array([float(r["std_return"]) for r in rows])
        label = os.path.basename(os.path.dirname(os.path.abspath(path))) or path
        (line,) = ax.plot(steps, mean, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean evaluation return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


# ------------------------------------------------------------------ command line
def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, default="td3")
    parser.add_argument("--env", choices=ENVS, default="HalfCheetah-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300_000, help="training steps in all (default: 300000)")
    parser.add_argument("--eval-every", type=int, default=10_000, help="steps between evaluations (default: 10000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="noise-free episodes each (default: 10)")
    parser.add_argument("--out", help="output folder (default: runs/mujoco/<algo>-<env>-s<seed>[-sb3])")
    parser.add_argument("--sb3", action="store_true", help="run Stable-Baselines3's algorithm with the same settings")
    parser.add_argument(
        "--sb3-threads",
        type=int,
        default=1,
        help="torch threads with --sb3 (default: 1; 0: torch's default, which ran 25x slower on a busy 2-core machine)",
    )
    parser.add_argument("--plot", nargs="+", metavar="CSV", help="only draw the curves of these progress.csv files")
    parser.add_argument("--plot-out", default="curve.png", help="image --plot writes (default: curve.png)")
    parser.add_argument(
        "--start-steps",
        type=int,
        help="override the config's random start steps (e.g. the TD3 paper's 10000 / 1000; smoke runs)",
    )
    parser.add_argument(
        "--xml-file",
        help="the task's MuJoCo model, passed to gymnasium.make (a file of gymnasium's assets folder, e.g. "
        "walker2d.xml: Walker2d-v4's model, whose feet have different frictions, in the v5 task; default: the "
        "v5 task's own)",
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: small nets, short warm-up
    parser.add_argument("--eval-episode-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    for name in ("steps", "eval_every", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.start_steps is not None and args.start_steps < 0:
        parser.error("--start-steps must be at least 0")
    if args.xml_file is not None and not os.path.isfile(model_path(args.xml_file)):
        parser.error(f"--xml-file must name a MuJoCo model file. Received: --xml-file {args.xml_file} (not found)")
    return args


def model_path(xml_file: str) -> str:
    """Where gymnasium reads `xml_file` from: a path as given (starting with `.`, `/` or `~`), or else
    a file of its MuJoCo tasks' assets folder."""
    if xml_file.startswith((".", "/", "~")):
        return os.path.expanduser(xml_file)
    import gymnasium

    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", xml_file)


def main(argv=None) -> list[dict]:
    """Runs (or resumes) one benchmark run; returns the rows of its CSV (`--plot`: draws, returns [])."""
    args = parse(argv)
    print(describe(), flush=True)
    if args.plot:
        print(f"wrote {plot(args.plot, args.plot_out)}")
        return []
    config = dict(CONFIGS[(args.algo, args.env)], **(TINY if args.tiny else {}))
    if args.start_steps is not None:
        config["start_steps"] = args.start_steps
    out = args.out or os.path.join(
        ROOT,
        "runs",
        "mujoco",
        f"{args.algo}-{args.env}-s{args.seed}"
        + ("" if args.xml_file is None else "-" + os.path.splitext(os.path.basename(args.xml_file))[0])
        + ("-sb3" if args.sb3 else ""),
    )
    os.makedirs(out, exist_ok=True)
    check_config(
        out,
        {
            "algo": args.algo,
            "env": args.env,
            "seed": args.seed,
            "sb3": args.sb3,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "eval_episode_steps": args.eval_episode_steps,
            "steps": args.steps,
            **config,
            **({} if args.xml_file is None else {"xml_file": args.xml_file}),
        },
    )
    print(f"{'sb3' if args.sb3 else 'ours'} {args.algo} {args.env} seed {args.seed}: {json.dumps(config)}", flush=True)
    return (run_sb3 if args.sb3 else run_ours)(args, config, out)


if __name__ == "__main__":
    main()
