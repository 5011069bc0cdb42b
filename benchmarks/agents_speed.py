"""Training speed of DDPG, TD3, SAC and CrossQ on Pendulum-v1 or HalfCheetah-v5: this library and its peers.

Peers (`--vs`, one or several): `sb3` (Stable-Baselines3, torch), `sbx` (SBX, JAX; CrossQ too) and
`rltools` (RLtools, C++; TD3 and SAC). SBX pins jax < 0.11 and RLtools needs MKL beside it (without
it, it runs ~30x slower), so each lives in a virtual environment of its own, named by
`--sbx-python` and `--rltools-python`:

    python -m venv ../sbx-venv && ../sbx-venv/bin/pip install sbx-rl "jax<0.11"
    python -m venv ../rltools-venv && ../rltools-venv/bin/pip install rltools mkl mkl-include gymnasium
    python benchmarks/agents_speed.py --algo td3 sac ddpg --steps 10000 --seeds 0 1 \
        --vs sb3 sbx rltools --sbx-python ../sbx-venv/bin/python --rltools-python ../rltools-venv/bin/python

RLtools compiles its training loop (C++, the sizes fixed at compile time) at first use and caches
it; compiling is not timed. Its Python interface steps the same gymnasium Pendulum through a
callback, with actions rescaled to [-1, 1].

Each run is a fresh subprocess (so its peak memory is its own). With `--vs` the libraries take
turns going first, pair by pair, with identical settings: same network
sizes, batch, learning rate, tau, gamma, warm-up, exploration noise, buffer, and one gradient step
per environment step (or, with `--gradient-steps K`, K gradient steps every K environment steps:
the same number of updates, in bursts). Printed per run: env steps/s (for our agent also whether
the training step ran with XLA or plain TensorFlow, and the rate after its first training call,
which traces and compiles the step), the share of wall time inside our compiled call (the
training step fused with acting, or acting alone), peak RSS, and the mean return of 10 noise-free
test episodes. Then, per algorithm: the median steps/s of each library, the ratio ours/SB3 of
each pair and their median, and the mean test returns.

The full benchmark (20 000 steps, 3 alternating pairs, all three algorithms; ~1 h on 2 cores):

    python benchmarks/agents_speed.py --algo ddpg td3 sac --setting large --vs sb3
    python benchmarks/agents_speed.py --algo ddpg td3 sac --setting small --vs sb3
    python benchmarks/agents_speed.py --algo ddpg td3 sac --setting keras-rl --vs sb3

each also with `--threads 1` (one TensorFlow intra-op thread and one torch thread) or
`--threads 1 --sb3-threads 0` (ours one thread, torch its default), or `--threads 1 --pin 0`
(every timed process, both libraries', on core 0 alone: on small virtual machines the hand-offs
between a library's threads cost less on one core, see benchmarks/call_overhead.py; pin with one
thread, as two threads on one core only take turns). One algorithm, ours alone:
`python benchmarks/agents_speed.py --algo td3 --setting large`. A smoke test:
`python benchmarks/agents_speed.py --algo ddpg td3 sac --steps 1500 --seeds 0 --vs sb3`.

Settings (both libraries):

- `large`: actor and critic [256, 256], batch 64, tau 0.005, warm-up 1000.
- `small`: keras-rl's example sizes (actor 3 x Dense(16), critic 3 x Dense(32)), batch 32, tau
  0.005, warm-up 1000.
- `mujoco`: the MuJoCo papers' sizes: actor and critic [256, 256], batch 256, tau 0.005, warm-up
  1000 (the papers' runs act at random for longer; the warm-up here only sets when timing starts to
  include training). Meant for `--env HalfCheetah-v5` (needs the `mujoco` extra, and `mujoco` in
  each peer's virtual environment).
- `keras-rl`: keras-rl's DDPG example configuration: those sizes, batch 32, tau 0.001
  (`target_model_update=1e-3`), warm-up 100, and for us `Adam(learning_rate=1e-3, clipnorm=1.)`
  (SB3 has no per-tensor gradient-norm clipping option: it runs without).

All: Adam learning rate 1e-3, gamma 0.99, a 100 000-transition buffer. Exploration: DDPG
Ornstein-Uhlenbeck noise theta 0.15, sigma 0.3, dt 0.01 in the environment's action units
(keras-rl's); TD3 Gaussian noise of 0.1 x the action range's half-width (0.2 on Pendulum), policy
delay 2, target policy noise 0.2 clipped at 0.5 (half-width units, as ours are documented); SAC
none beyond its own sampling, entropy coefficient learned from 1 (`ent_coef="auto"`), log stds
clipped to [-20, 2]. SB3 adds exploration noise to the action scaled to [-1, 1], so its scales
are ours divided by the half-width (`OrnsteinUhlenbeckActionNoise(sigma=0.15)`,
`NormalActionNoise(sigma=0.1)`); its TD3 target noise is already in those units.

`large` and `small` also start both libraries alike (`--init torch --warmup-actions random`, the
defaults there): our Keras layers are initialized as SB3's PyTorch layers are (`nn.Linear`'s
default, weights and biases uniform in +-1/sqrt(fan_in); Keras' default is Glorot-uniform weights
and zero biases), and our agent acts uniformly at random during the warm-up
(`nb_steps_random=warm-up`), as SB3 does during `learning_starts`. `keras-rl` keeps keras-rl's
behaviour by default (`--init keras --warmup-actions policy`: Keras' initialization, the actor
plus noise from the first step). Either flag may be given with any setting.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time

from machine import describe
from workers import report, run_worker

# `benchmarks/mujoco.py` is named like the `mujoco` package that gymnasium imports for
# HalfCheetah: with this folder's modules loaded, the folder comes off sys.path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

ALGOS = ("ddpg", "td3", "sac", "crossq")
SMALL = {"actor": [16, 16, 16], "critic": [32, 32, 32], "batch_size": 32}
SETTINGS = {
    "large": {"actor": [256, 256], "critic": [256, 256], "batch_size": 64, "tau": 0.005, "warmup": 1000},
    "small": {**SMALL, "tau": 0.005, "warmup": 1000},
    "keras-rl": {**SMALL, "tau": 0.001, "warmup": 100, "clipnorm": 1.0},
    "mujoco": {"actor": [256, 256], "critic": [256, 256], "batch_size": 256, "tau": 0.005, "warmup": 1000},
}
COMMON = {"learning_rate": 1e-3, "gamma": 0.99, "buffer": 100_000}
# DDPG's Ornstein-Uhlenbeck noise in the environment's action units; TD3's noises (exploration and
# target smoothing) in units of the action range's half-width, which are SB3's [-1, 1] units.
OU_NOISE = {"theta": 0.15, "sigma": 0.3, "dt": 1e-2}
TD3_ARGS = {"noise_sigma": 0.1, "policy_delay": 2, "target_policy_noise": 0.2, "target_noise_clip": 0.5}
ENVS = ("Pendulum-v1", "HalfCheetah-v5")
ENV_ID = "Pendulum-v1"  # the worker's environment: set from --env before a run
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


# ------------------------------------------------------------------ this library
def build_models(algo: str, setting: dict, env, init: str = "keras"):
    """Actor and critic as in `examples/`: the DDPG/TD3 actor ends in tanh scaled to the bounds,
    SAC's outputs 2 * nb_actions units (means, then log stds) and lets the agent squash them.

    `init="torch"` initializes each Dense layer as PyTorch's `nn.Linear` (SB3's networks):
    weights and biases uniform in +-1/sqrt(fan_in)."""
    import keras
    from keras import layers

    def dense(units, fan_in, activation=None):
        if init == "keras":
            return layers.Dense(units, activation=activation)
        bound = 1.0 / fan_in**0.5  # VarianceScaling(1/3, fan_in, uniform) has this bound too
        return layers.Dense(
            units,
            activation=activation,
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        )

    obs_shape, nb_actions = env.observation_space.shape, env.action_space.shape[0]
    obs_size = math.prod(obs_shape)
    obs_in = keras.Input((1,) + obs_shape)
    x, width = layers.Flatten()(obs_in), obs_size
    for units in setting["actor"]:
        x, width = dense(units, width, "relu")(x), units
    if algo == "sac":
        actor = keras.Model(obs_in, dense(2 * nb_actions, width)(x))
    else:
        x = dense(nb_actions, width, "tanh")(x)
        actor = keras.Model(obs_in, layers.Rescaling(float(env.action_space.high[0]))(x))
    action_in, critic_obs_in = keras.Input((nb_actions,)), keras.Input((1,) + obs_shape)
    y, width = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)]), nb_actions + obs_size
    for units in setting["critic"]:
        y, width = dense(units, width, "relu")(y), units
    critic = keras.Model([action_in, critic_obs_in], dense(1, width)(y))
    return actor, critic, action_in


def make_ours(algo: str, setting: dict, env, seed: int, every: int, jit: str):
    import keras

    from rl.agents import DDPGAgent, SACAgent, TD3Agent
    from rl.memory import SequentialMemory
    from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess

    if algo == "crossq":
        return make_crossq(setting, env, seed, jit)
    nb_actions = env.action_space.shape[0]
    half = float((env.action_space.high[0] - env.action_space.low[0]) / 2.0)  # Pendulum: 2
    actor, critic, action_in = build_models(algo, setting, env, setting.get("init", "keras"))
    common = {
        "nb_actions": nb_actions,
        "actor": actor,
        "critic": critic,
        "critic_action_input": action_in,
        "memory": SequentialMemory(limit=COMMON["buffer"], seed=seed),
        "batch_size": setting["batch_size"],
        "gamma": COMMON["gamma"],
        "target_model_update": setting["tau"],
        "train_interval": every,
        "gradient_steps": every,
        "jit_compile": {"auto": "auto", "on": True, "off": False}[jit],
        "nb_steps_random": setting["warmup"] if setting.get("warmup_actions") == "random" else 0,
    }
    warmup = setting["warmup"]
    if algo == "sac":
        agent = SACAgent(**common, nb_steps_warmup=warmup, ent_coef="auto")
    elif algo == "td3":
        agent = TD3Agent(
            **common,
            nb_steps_warmup_critic=warmup,
            nb_steps_warmup_actor=warmup,
            random_process=GaussianWhiteNoiseProcess(sigma=TD3_ARGS["noise_sigma"] * half, size=nb_actions, seed=seed),
            policy_delay=TD3_ARGS["policy_delay"],
            target_policy_noise=TD3_ARGS["target_policy_noise"],
            target_noise_clip=TD3_ARGS["target_noise_clip"],
        )
    else:
        agent = DDPGAgent(
            **common,
            nb_steps_warmup_critic=warmup,
            nb_steps_warmup_actor=warmup,
            random_process=OrnsteinUhlenbeckProcess(
                theta=OU_NOISE["theta"], sigma=OU_NOISE["sigma"], dt=OU_NOISE["dt"], size=nb_actions, seed=seed
            ),
        )
    agent.compile(keras.optimizers.Adam(learning_rate=COMMON["learning_rate"], clipnorm=setting.get("clipnorm")))
    return agent


def make_crossq(setting: dict, env, seed: int, jit: str):
    """CrossQ as `examples/crossq_pendulum.py` builds it (batch-renormalised Keras layers, Adam 1e-3
    with beta_1 0.5, the actor every 3 updates, no target networks), at the setting's sizes."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    from crossq_pendulum import build_models as crossq_models

    from rl.agents import CrossQAgent
    from rl.memory import SequentialMemory

    nb_actions = env.action_space.shape[0]
    shape = env.observation_space.shape
    actor, critic, action_in = crossq_models(shape, nb_actions, setting["actor"], setting["critic"])
    agent = CrossQAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=COMMON["buffer"], seed=seed),
        batch_size=setting["batch_size"],
        gamma=COMMON["gamma"],
        nb_steps_warmup=setting["warmup"],
        nb_steps_random=setting["warmup"] if setting.get("warmup_actions") == "random" else 0,
        policy_delay=CROSSQ_POLICY_DELAY,
        jit_compile={"auto": "auto", "on": True, "off": False}[jit],
    )
    agent.compile()  # Adam(learning_rate=1e-3, beta_1=0.5) for every network, as SBX's CrossQ
    return agent


CROSSQ_POLICY_DELAY = 3  # the paper's and SBX's default


def run_ours(algo: str, setting: dict, steps: int, seed: int, every: int, jit: str) -> dict:
    import gymnasium as gym
    import keras

    keras.utils.set_random_seed(seed)
    env = gym.make(ENV_ID)
    agent = make_ours(algo, setting, env, seed, every, jit)

    # Time spent inside the compiled call (the training step fused with acting, or acting alone),
    # including handing the inputs over and reading the outputs back; and when the first training
    # call (which traces, and with XLA compiles, the training step) returned, for the rate after it.
    inside = [0.0]
    first_train: list = []
    call = agent.call_compiled

    def timed_call(name, options, build, x, may_use_xla=True):
        start = time.perf_counter()
        try:
            return call(name, options, build, x, may_use_xla=may_use_xla)
        finally:
            end = time.perf_counter()
            inside[0] += end - start
            if not first_train and name == "train":
                first_train.extend([end, agent.step])

    agent.call_compiled = timed_call  # an instance attribute: `forward` finds it first
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0, seed=seed)
    end = time.perf_counter()
    del agent.call_compiled
    wall = end - start
    agent.reset_states()
    mean_return = evaluate(lambda obs: agent.forward(obs), gym.make(ENV_ID), seed)
    steady = (steps - first_train[1]) / (end - first_train[0]) if first_train and steps > first_train[1] else None
    return {
        "lib": "ours",
        "algo": algo,
        "seed": seed,
        "steps_per_s": steps / wall,
        "wall_s": wall,
        "steady_steps_per_s": steady,
        "compiled_share": inside[0] / wall,
        "peak_rss_mb": peak_rss_mb(),
        "test_return": mean_return,
        "flat_weights": agent.flat_weights,
        "xla": bool(agent.jit_compile),
        "traces": agent.trace_count,
    }


# ------------------------------------------------------------ Stable-Baselines3
def make_sb3(algo: str, setting: dict, env, seed: int, every: int, lib: str = "sb3"):
    """SB3's agent, or with `lib="sbx"` SBX's (JAX; the same constructor arguments and noises)."""
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if lib == "sbx":
        from sbx import DDPG, SAC, TD3, CrossQ
    else:
        from stable_baselines3 import DDPG, SAC, TD3

    nb_actions = env.action_space.shape[0]
    # SB3 adds action noise to the action scaled to [-1, 1]: scales in half-width units.
    half = (env.action_space.high - env.action_space.low) / 2.0
    common = {
        "learning_rate": COMMON["learning_rate"],
        "buffer_size": COMMON["buffer"],
        "learning_starts": setting["warmup"],
        "batch_size": setting["batch_size"],
        "tau": setting["tau"],
        "gamma": COMMON["gamma"],
        "train_freq": every,
        "gradient_steps": every,
        "policy_kwargs": {"net_arch": {"pi": setting["actor"], "qf": setting["critic"]}},
        "seed": seed,
        "verbose": 0,
    }
    if lib == "sb3":
        common["device"] = "cpu"
    if algo == "crossq":  # SBX's defaults: Adam beta_1 0.5, batch renormalisation warm-up 100 000 steps
        del common["tau"]
        return CrossQ("MlpPolicy", env, ent_coef="auto", policy_delay=CROSSQ_POLICY_DELAY, **common)
    if algo == "sac":
        return SAC("MlpPolicy", env, ent_coef="auto", **common)
    if algo == "td3":
        noise = NormalActionNoise(mean=np.zeros(nb_actions), sigma=TD3_ARGS["noise_sigma"] * np.ones(nb_actions))
        return TD3(
            "MlpPolicy",
            env,
            action_noise=noise,
            policy_delay=TD3_ARGS["policy_delay"],
            target_policy_noise=TD3_ARGS["target_policy_noise"],
            target_noise_clip=TD3_ARGS["target_noise_clip"],
            **common,
        )
    noise = OrnsteinUhlenbeckActionNoise(
        mean=np.zeros(nb_actions), sigma=OU_NOISE["sigma"] / half, theta=OU_NOISE["theta"], dt=OU_NOISE["dt"]
    )
    return DDPG("MlpPolicy", env, action_noise=noise, **common)


def run_sb3(algo: str, setting: dict, steps: int, seed: int, every: int, jit: str, lib: str = "sb3") -> dict:
    import gymnasium as gym

    model = make_sb3(algo, setting, gym.make(ENV_ID), seed, every, lib)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    mean_return = evaluate(lambda obs: model.predict(obs, deterministic=True)[0], gym.make(ENV_ID), seed)
    return peer_result(lib, algo, seed, steps, wall, mean_return)


def peer_result(lib: str, algo: str, seed: int, steps: int, wall: float, mean_return: float) -> dict:
    """A peer library's run, as the driver reads it."""
    return {
        "lib": lib,
        "algo": algo,
        "seed": seed,
        "steps_per_s": steps / wall,
        "wall_s": wall,
        "compiled_share": None,
        "peak_rss_mb": peak_rss_mb(),
        "test_return": mean_return,
        "versions": peer_versions(lib),
    }


def run_sbx(algo: str, setting: dict, steps: int, seed: int, every: int, jit: str) -> dict:
    return run_sb3(algo, setting, steps, seed, every, jit, lib="sbx")


# ------------------------------------------------------------------ RLtools
RLTOOLS_ALGOS = ("td3", "sac")  # its Python interface trains TD3, SAC and PPO; no DDPG


def rltools_env():
    """Pendulum with actions in [-1, 1], as RLtools' Python interface expects them."""
    import gymnasium as gym
    from gymnasium.wrappers import RescaleAction

    return RescaleAction(gym.make(ENV_ID), -1.0, 1.0)


def make_rltools(algo: str, setting: dict, steps: int, every: int):
    """RLtools' training loop for these settings, compiled (C++, at first use; cached) and loaded.

    Its networks are MLPs of equal hidden widths (`*_NUM_LAYERS` counts the output layer), its
    exploration and target noises are in [-1, 1] units like SB3's, the Adam epsilon is
    TensorFlow's (1e-7), and it acts at random during the warm-up. Gradient-norm clipping
    (`keras-rl`) has no counterpart: it runs without.
    """
    import hashlib

    import rltools

    if every != 1:
        raise SystemExit("RLtools trains once per environment step here: use --gradient-steps 1")
    for net in ("actor", "critic"):
        if len(set(setting[net])) != 1:
            raise SystemExit(f"RLtools' MLPs have equal hidden widths; the {net} is {setting[net]}")
    params = {
        "GAMMA": COMMON["gamma"],
        "ACTOR_BATCH_SIZE": setting["batch_size"],
        "CRITIC_BATCH_SIZE": setting["batch_size"],
        "ACTOR_POLYAK": 1.0 - setting["tau"],
        "CRITIC_POLYAK": 1.0 - setting["tau"],
        "N_WARMUP_STEPS": setting["warmup"],
        "STEP_LIMIT": steps,
        "REPLAY_BUFFER_CAP": min(COMMON["buffer"], steps),  # a static array: no larger than the run
        "ACTOR_HIDDEN_DIM": setting["actor"][0],
        "ACTOR_NUM_LAYERS": len(setting["actor"]) + 1,
        "CRITIC_HIDDEN_DIM": setting["critic"][0],
        "CRITIC_NUM_LAYERS": len(setting["critic"]) + 1,
        "OPTIMIZER_ALPHA": COMMON["learning_rate"],
    }
    if algo == "td3":
        params.update(
            ACTOR_TRAINING_INTERVAL=TD3_ARGS["policy_delay"],
            ACTOR_TARGET_UPDATE_INTERVAL=TD3_ARGS["policy_delay"],
            CRITIC_TARGET_UPDATE_INTERVAL=TD3_ARGS["policy_delay"],
            EXPLORATION_NOISE=TD3_ARGS["noise_sigma"],
            TARGET_NEXT_ACTION_NOISE_STD=TD3_ARGS["target_policy_noise"],
            TARGET_NEXT_ACTION_NOISE_CLIP=TD3_ARGS["target_noise_clip"],
        )
        build = rltools.TD3
    else:
        params.update(ALPHA=1.0, ADAPTIVE_ALPHA=True, LOG_STD_LOWER_BOUND=-20, LOG_STD_UPPER_BOUND=2)
        build = rltools.SAC
    # One compiled module per configuration (a shared name would recompile at every change).
    tag = hashlib.sha1(repr(sorted(params.items())).encode()).hexdigest()[:10]
    return build(rltools_env, enable_evaluation=False, interface_name=f"bench_{algo}_{tag}", **params)


def run_rltools(algo: str, setting: dict, steps: int, seed: int, every: int, jit: str) -> dict:
    import numpy as np

    module = make_rltools(algo, setting, steps, every)  # compiling is not timed
    start = time.perf_counter()
    state = module.State(seed)
    while not state.step():
        pass
    wall = time.perf_counter() - start
    mean_return = evaluate(lambda obs: np.asarray(state.action(np.asarray(obs, np.float32))), rltools_env(), seed)
    return peer_result("rltools", algo, seed, steps, wall, mean_return)


PEER_PACKAGES = {"sb3": ("stable-baselines3", "torch"), "sbx": ("sbx-rl", "jax"), "rltools": ("rltools", "mkl")}


def peer_versions(lib: str) -> str:
    from importlib import metadata

    found = []
    for name in PEER_PACKAGES[lib]:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


# ------------------------------------------------------------------ the driver
def worker(args: argparse.Namespace) -> None:
    if args.pin is not None:  # before any library starts its threads: they inherit the mask
        os.sched_setaffinity(0, {args.pin})
    if args.worker == "ours" and args.threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    if args.worker == "sb3" and args.sb3_threads:
        import torch

        torch.set_num_threads(args.sb3_threads)
    if args.worker == "sbx" and args.sb3_threads:  # before JAX starts: XLA's CPU thread pool
        eigen = "false" if args.sb3_threads == 1 else "true"
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={args.sb3_threads}"
        )
    if args.worker == "rltools" and args.sb3_threads:  # RLtools sets 1 itself when unset
        os.environ["MKL_NUM_THREADS"] = str(args.sb3_threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    global ENV_ID
    ENV_ID = args.env
    run = {"ours": run_ours, "sb3": run_sb3, "sbx": run_sbx, "rltools": run_rltools}[args.worker]
    result = run(args.algo[0], resolve_setting(args), args.steps, args.seed, args.gradient_steps, args.jit)
    report(result)


def spawn(lib: str, algo: str, args: argparse.Namespace, seed: int) -> dict:
    cmd = ["--worker", lib, "--algo", algo, "--seed", str(seed)]
    cmd += ["--setting", args.setting, "--env", args.env, "--steps", str(args.steps), "--jit", args.jit]
    start = resolve_setting(args)
    cmd += ["--init", start["init"], "--warmup-actions", start["warmup_actions"]]
    cmd += ["--threads", str(args.threads), "--sb3-threads", str(args.sb3_threads)]
    cmd += ["--gradient-steps", str(args.gradient_steps)]
    if args.pin is not None:
        cmd += ["--pin", str(args.pin)]
    python = {"sbx": args.sbx_python, "rltools": args.rltools_python}.get(lib)
    return run_worker(os.path.abspath(__file__), cmd, f"{lib} {algo}", python)


def runs_of(lib: str, algo: str) -> bool:
    """Whether `lib` has `algo` (RLtools' Python interface: TD3 and SAC; CrossQ: SBX only)."""
    if algo == "crossq":
        return lib == "sbx"
    return lib != "rltools" or algo in RLTOOLS_ALGOS


def fmt(r: dict) -> str:
    share = "   -  " if r["compiled_share"] is None else f"{100 * r['compiled_share']:5.1f}%"
    steady = f" (after compiling: {r['steady_steps_per_s']:7.1f})" if r.get("steady_steps_per_s") else ""
    mode = {True: "  XLA ", False: "  TF  "}.get(r.get("xla"), "      ")
    return (
        f"{r['algo']} {r['lib']:>4} seed {r['seed']}:{mode}{r['steps_per_s']:7.1f} steps/s{steady}  "
        f"wall {r['wall_s']:7.1f} s  compiled {share}  peak RSS {r['peak_rss_mb']:6.0f} MB  "
        f"test return {r['test_return']:8.1f}"
    )


def resolve_setting(args: argparse.Namespace) -> dict:
    """The setting's sizes and rates, with how our agent starts (`init`, `warmup_actions`) resolved."""
    keras_rl = args.setting == "keras-rl"
    return {
        **SETTINGS[args.setting],
        "init": args.init or ("keras" if keras_rl else "torch"),
        "warmup_actions": args.warmup_actions or ("policy" if keras_rl else "random"),
    }


def summarise(algo: str, runs: list[dict]) -> str:
    """The per-algorithm summary: median steps/s of each library, the ratios ours/peer per pair and
    their median, mean test returns."""
    libs = [lib for lib in runs[0] if lib != "ours"]
    ours = [r["ours"] for r in runs]
    parts = [f"{algo}: ours median {statistics.median(r['steps_per_s'] for r in ours):.1f} steps/s"]
    for lib in libs:
        theirs = [r[lib] for r in runs]
        ratios = [o["steps_per_s"] / t["steps_per_s"] for o, t in zip(ours, theirs)]
        parts.append(
            f"{lib} median {statistics.median(r['steps_per_s'] for r in theirs):.1f} steps/s, ratio ours/{lib} "
            f"median {statistics.median(ratios):.2f} (pairs {', '.join(f'{x:.2f}' for x in ratios)})"
        )
    returns = ", ".join(f"{lib} {statistics.mean(r[lib]['test_return'] for r in runs):.1f}" for lib in ["ours", *libs])
    return "; ".join(parts) + f"; mean test return {returns}"


def table(summary_runs: dict[str, list[dict]], libs: list[str]) -> list[str]:
    """A Markdown table: median steps/s per algorithm and library, with the ratio ours/peer."""
    head = "| agent | this library | " + " | ".join(LIB_NAMES[lib] for lib in libs) + " |"
    lines = [head, "| --- " * (len(libs) + 2) + "|"]
    for algo, runs in summary_runs.items():
        ours = statistics.median(r["ours"]["steps_per_s"] for r in runs)
        cells = []
        for lib in libs:
            if lib not in runs[0]:
                cells.append("—")
                continue
            theirs = statistics.median(r[lib]["steps_per_s"] for r in runs)
            cells.append(f"{theirs:.0f} (ours {ours / theirs:.2f}x)")
        lines.append(f"| {ALGO_NAMES[algo]} | {ours:.0f} steps/s | " + " | ".join(cells) + " |")
    return lines


ALGO_NAMES = {"ddpg": "DDPG", "td3": "TD3", "sac": "SAC", "crossq": "CrossQ"}
LIB_NAMES = {"sb3": "SB3 (torch)", "sbx": "SBX (JAX)", "rltools": "RLtools (C++)"}


def describe_settings(args: argparse.Namespace) -> list[str]:
    setting = resolve_setting(args)
    lines = [
        f"env={args.env} setting={args.setting} {setting} steps={args.steps} seeds={args.seeds} "
        f"threads={args.threads or 'default'} sb3_threads={args.sb3_threads or 'default'} jit={args.jit} "
        f"gradient_steps={args.gradient_steps} pin={'none' if args.pin is None else f'core {args.pin}'} {COMMON}",
    ]
    noise = {
        "ddpg": f"ddpg: Ornstein-Uhlenbeck noise {OU_NOISE} in env action units (SB3: sigma / half-width)",
        "td3": f"td3: {TD3_ARGS}, noises in half-width units (SB3's [-1, 1] units)",
        "sac": "sac: ent_coef='auto' (learned from 1), target entropy -nb_actions, no added noise",
        "crossq": f"crossq: SAC's entropy tuning, batch renormalisation (warm-up 100 000 steps), no targets, "
        f"policy delay {CROSSQ_POLICY_DELAY}, Adam beta_1 0.5, Keras' initialization; SBX only",
    }
    lines += [noise[algo] for algo in dict.fromkeys(args.algo)]
    if "rltools" in args.vs:
        lines.append(
            "rltools: actions rescaled to [-1, 1]; MKL on "
            f"{args.sb3_threads or 1} thread(s) (its default: 1); compiling its C++ is not timed; no DDPG"
        )
    if args.vs and setting.get("clipnorm"):
        lines.append(
            f"note: ours clips each gradient tensor to norm {setting['clipnorm']} (Adam clipnorm); "
            "the peers have no such option and run without"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, nargs="+", default=["ddpg"], help="one or several algorithms")
    parser.add_argument("--setting", choices=list(SETTINGS), default="large")
    parser.add_argument("--env", choices=ENVS, default="Pendulum-v1", help="the environment every library trains on")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--vs",
        choices=["sb3", "sbx", "rltools"],
        nargs="+",
        default=[],
        help="also run these libraries' same algorithm: sb3 (Stable-Baselines3, torch), sbx (SBX, JAX; "
        "--sbx-python), rltools (RLtools, C++; --rltools-python; TD3 and SAC only)",
    )
    parser.add_argument(
        "--sbx-python",
        default=os.environ.get("SBX_PYTHON"),
        help='the Python of a virtual environment with `pip install sbx-rl "jax<0.11"` (default: $SBX_PYTHON)',
    )
    parser.add_argument(
        "--rltools-python",
        default=os.environ.get("RLTOOLS_PYTHON"),
        help="the Python of a virtual environment with `pip install rltools mkl mkl-include gymnasium` "
        "(without mkl RLtools runs ~30x slower; default: $RLTOOLS_PYTHON)",
    )
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both libraries (0: default)")
    parser.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="threads of the peer libraries (torch for SB3, XLA for SBX, MKL for RLtools; default: same as "
        "--threads; 0: each one's default)",
    )
    parser.add_argument(
        "--pin",
        type=int,
        default=None,
        metavar="CORE",
        help="run every timed process, both libraries', on this one core only (what `taskset -c CORE` does)",
    )
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="our agent's jit_compile")
    parser.add_argument(
        "--init",
        choices=["torch", "keras"],
        default=None,
        help="our Dense layers' initialization: torch (SB3's, nn.Linear's default) or keras (Glorot, zero "
        "biases); default torch, keras for --setting keras-rl",
    )
    parser.add_argument(
        "--warmup-actions",
        choices=["random", "policy"],
        default=None,
        help="our actions during the warm-up: random (uniform, nb_steps_random=warm-up, as SB3's "
        "learning_starts) or policy (keras-rl's: the actor plus noise); default random, policy for "
        "--setting keras-rl",
    )
    parser.add_argument(
        "--gradient-steps",
        type=int,
        default=1,
        help="train every K env steps with K gradient steps (ours: train_interval=gradient_steps=K; "
        "SB3: train_freq=gradient_steps=K); 1 is one gradient step per env step",
    )
    parser.add_argument("--worker", choices=["ours", "sb3", "sbx", "rltools"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_threads is None:
        args.sb3_threads = args.threads
    if args.pin is not None and args.pin not in os.sched_getaffinity(0):
        parser.error(
            f"--pin must be a core this process may run on {sorted(os.sched_getaffinity(0))}. "
            f"Received: --pin {args.pin}"
        )
    if args.worker:
        worker(args)
        return
    args.vs = list(dict.fromkeys(args.vs))
    for lib, python in (("sbx", args.sbx_python), ("rltools", args.rltools_python)):
        if lib in args.vs and not python:
            parser.error(f"--vs {lib} needs --{lib}-python PATH (a virtual environment with {lib} installed)")

    print(describe(), flush=True)
    for line in describe_settings(args):
        print(line, flush=True)
    summaries, all_runs, versions = [], {}, {}
    for algo in dict.fromkeys(args.algo):  # in the order given, once each
        runs = []
        libs = ["ours"] + [lib for lib in args.vs if runs_of(lib, algo)]
        for k, seed in enumerate(args.seeds):
            order = libs[k % len(libs) :] + libs[: k % len(libs)]  # each library leads in turn
            results = {}
            for lib in order:
                results[lib] = spawn(lib, algo, args, seed)
                versions.setdefault(lib, results[lib].get("versions"))
                print(fmt(results[lib]), flush=True)
            for lib in libs[1:]:
                ratio = results["ours"]["steps_per_s"] / results[lib]["steps_per_s"]
                print(f"  {algo} pair {k} (seed {seed}): speed ratio ours/{lib} = {ratio:.2f}", flush=True)
            runs.append({lib: results[lib] for lib in libs})
        all_runs[algo] = runs
        summaries.append(summarise(algo, runs))
        print(summaries[-1], flush=True)
    if len(summaries) > 1:
        print(f"summary ({args.env}, {args.setting}, {args.steps} steps):")
        for line in summaries:
            print("  " + line)
    if args.vs:
        peers = "; ".join(f"{lib}: {v}" for lib, v in versions.items() if lib != "ours" and v)
        print(f"peers: {peers}")
        print(f"median steps/s ({args.env}, {args.setting}, {args.steps} steps, seeds {args.seeds}):")
        for line in table(all_runs, args.vs):
            print(line)


if __name__ == "__main__":
    main()
