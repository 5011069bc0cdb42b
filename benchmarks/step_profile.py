"""Where one training step's time goes: DDPG, TD3, SAC or CrossQ on Pendulum-v1, in this library.

Prints, per environment step, after the warm-up and the first (tracing) training call:

1. **The whole step**: the environment's `step`, the compiled call (training fused with acting),
   and everything else in Python (the run loop, the agent's `forward`/`backward`, the replay
   memory's store and sample, packing the call's input, callbacks), in microseconds and shares.
2. **Python outside the call**, by function: a `cProfile` of the same run, the functions with the
   most time of their own (the profiler's own cost inflates every figure; read them as shares).
3. **The compiled call alone**: the captured training calls replayed back to back (no Python
   between them but the call itself), one line per kind of call (TD3's critic-only step and its
   actor-and-critic step differ).
4. **Inside the call**: a TensorFlow profiler trace of replayed calls, the time of each kind of
   operation summed over the executor's threads, against the calls' wall time (the difference is
   the executor's own work and the waits between operations; two threads may overlap). With XLA
   (`--jit on`) the call is one compiled program and the trace lists no operations.
5. **The floor**: the matrix products of one step counted from the networks' Dense kernels (the
   forward pass is 2 x inputs x units per sample; its backward pass twice that; normalisation
   layers' element-wise work is not counted), and this
   machine's float32 product rate for the step's main shape ([batch, hidden] x [hidden, hidden])
   on one thread and on the default threads, measured in fresh processes. `floor` is the step's
   products at the one-thread rate; `achieved` the products per second of the measured call.

    python benchmarks/step_profile.py                        # TD3, the `large` setting of agents_speed.py
    python benchmarks/step_profile.py --algo sac --jit on    # SAC with the step compiled by XLA
    python benchmarks/step_profile.py --threads 1            # one TensorFlow intra-op thread

The settings are `benchmarks/agents_speed.py`'s (`--setting large`: [256, 256] networks, batch
64, one update per environment step, learning rate 1e-3, tau 0.005, 1 000 warm-up steps).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import glob
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
from machine import describe  # noqa: E402

ALGOS = ("ddpg", "td3", "sac", "crossq")


# ------------------------------------------------------------------ the product rate
def product_rate(rows: int, hidden: int, threads: int, seconds: float = 2.0) -> float:
    """GFLOP/s of float32 products [rows, hidden] x [hidden, hidden] in TensorFlow, in this process."""
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    import tensorflow as tf

    a = tf.random.normal([rows, hidden])
    w = tf.random.normal([hidden, hidden]) / hidden**0.5
    chain = 50

    @tf.function
    def run(x):
        for _ in range(chain):
            x = tf.matmul(x, w)
        return x

    run(a).numpy()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(a).numpy()
        n += 1
    elapsed = time.perf_counter() - start
    return n * chain * 2.0 * rows * hidden * hidden / elapsed / 1e9


def measure_rate(rows: int, hidden: int, threads: int) -> float:
    """`product_rate` in a fresh process (a thread count is fixed once per process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--rate", str(rows), str(hidden), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ FLOP count
def dense_flops(model) -> float:
    """Forward-pass FLOPs per sample of a model's Dense layers (2 x inputs x units each)."""
    import keras

    flops = 0.0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Dense):
            fan_in, units = layer.kernel.shape
            flops += 2.0 * fan_in * units
    return flops


def step_flops(algo: str, agent, batch: int) -> tuple[float, str]:
    """Matrix-product FLOPs of one environment step (one update, one action), and the formula."""
    a, c = dense_flops(agent.actor), dense_flops(agent.critic)
    if algo == "ddpg":  # target actor + target critic; critic fwd+bwd; actor fwd+bwd + critic fwd+input bwd
        per, formula = a + c + 3 * c + 3 * a + 2 * c, "B(A + C + 3C + 3A + 2C) + A"
    elif algo == "td3":  # twin targets and critics; the actor every `policy_delay` updates
        d = agent.policy_delay
        per, formula = a + 2 * c + 6 * c + (3 * a + 2 * c) / d, f"B(A + 2C + 6C + (3A + 2C)/{d}) + A"
    elif algo == "sac":  # the actor's loss reads both critics
        per, formula = a + 2 * c + 6 * c + 3 * a + 4 * c, "B(A + 2C + 6C + 3A + 4C) + A"
    else:  # CrossQ: both critics forward and backward on 2B rows (s, a) and (s', a'); no targets
        d = agent.policy_delay
        per, formula = a + 12 * c + (3 * a + 4 * c) / d, f"B(A + 12C + (3A + 4C)/{d}) + A"
    return batch * per + a, f"{formula} with A = {a / 1e3:.0f} kFLOP (actor), C = {c / 1e3:.0f} kFLOP (critic)"


# ------------------------------------------------------------------ the profile
class TimedEnv(gym.Wrapper):
    """An environment whose `step` and `reset` add their time to `seconds`."""

    def __init__(self, env):
        super().__init__(env)
        self.seconds = 0.0

    def step(self, action):
        start = time.perf_counter()
        try:
            return self.env.step(action)
        finally:
            self.seconds += time.perf_counter() - start

    def reset(self, **kwargs):
        start = time.perf_counter()
        try:
            return self.env.reset(**kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def op_type(name: str) -> str:
    """`gradient_tape/dense_4/MatMul/MatMul_1:_MklMatMul` -> `_MklMatMul`."""
    return name.rpartition(":")[2] or name


def trace_ops(replay, calls: int) -> tuple[dict, float]:
    """Op time per call by type (summed over the executor's threads) and the calls' wall time per call."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="step_profile_")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(calls):
        replay()
    wall = (time.perf_counter() - start) / calls
    tf.profiler.experimental.stop()
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    per_type: dict[str, float] = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads: one event per op
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith(("ExecutorState::", "ExecutorDoneCallback")):
                    continue  # the executor's bookkeeping spans, not operations
                per_type[op_type(name)] += event.duration_ps / 1e12 / calls
    return dict(per_type), wall


def profile(args: argparse.Namespace) -> None:
    import keras
    from agents_speed import ENV_ID, SETTINGS, make_ours

    setting = {**SETTINGS[args.setting], "init": "torch", "warmup_actions": "random"}
    keras.utils.set_random_seed(args.seed)
    timed_env = TimedEnv(gym.make(ENV_ID))
    agent = make_ours(args.algo, setting, timed_env, args.seed, 1, args.jit)

    inside: dict[str, float] = collections.Counter()
    counts: dict = collections.Counter()  # calls of each kind in the timed run
    captured: dict = {}
    call = agent.call_compiled

    def timed_call(name, options, build, x, may_use_xla=True):
        start = time.perf_counter()
        try:
            return call(name, options, build, x, may_use_xla=may_use_xla)
        finally:
            inside[name] += time.perf_counter() - start
            counts[(name, options)] += 1
            captured[(name, options)] = (build, x.copy(), may_use_xla)

    agent.call_compiled = timed_call  # an instance attribute: `forward` finds it first
    warm = setting["warmup"] + 200  # the warm-up, then the training calls' traces
    agent.fit(timed_env, nb_steps=warm, verbose=0, seed=args.seed)

    # 1. the whole step
    inside.clear()
    counts.clear()
    timed_env.seconds = 0.0
    start = time.perf_counter()
    agent.fit(timed_env, nb_steps=args.steps, verbose=0)
    wall = time.perf_counter() - start
    run_counts = dict(counts)  # the timed run's; the profiled run below adds its own calls
    per = 1e6 / args.steps
    in_call = sum(inside.values())
    print(
        f"\n1. whole step: {args.steps / wall:.1f} steps/s, {wall * per:.0f} us per step "
        f"({'XLA' if agent.jit_compile else 'TF'}, flat weights {agent.flat_weights})"
    )
    rows = [(f"compiled call `{name}`", t) for name, t in sorted(inside.items())]
    outside = wall - in_call - timed_env.seconds
    rows += [("environment step and reset", timed_env.seconds), ("Python outside the call", outside)]
    for what, t in rows:
        print(f"   {what:34s} {t * per:8.1f} us  {100 * t / wall:5.1f} %")

    # 2. Python outside the call, by function
    profiler = cProfile.Profile()
    n = max(args.steps // 2, 1)
    profiler.enable()
    agent.fit(timed_env, nb_steps=n, verbose=0)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(f"\n2. Python by function (cProfile, {n} steps; {total / n * 1e6:.0f} us per step under the profiler)")
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)
    for (file, line, func), (_, ncalls, tottime, _, _) in entries[: args.top]:
        where = f"{os.path.basename(file)}:{line} {func}" if line else func
        print(f"   {tottime / n * 1e6:8.1f} us  {100 * tottime / total:5.1f} %  {ncalls / n:5.1f} calls  {where[:90]}")

    # 3. the compiled call alone, and 4. inside it
    agent.call_compiled = call
    flops, formula = step_flops(args.algo, agent, setting["batch_size"])
    measured = {}
    print(f"\n3. compiled calls replayed ({args.replays} each, after 20 untimed)")
    for (name, options), (build, x, may_use_xla) in captured.items():

        def replay(name=name, options=options, build=build, x=x, may_use_xla=may_use_xla):
            return call(name, options, build, x, may_use_xla=may_use_xla)

        for _ in range(20):
            replay()
        start = time.perf_counter()
        for _ in range(args.replays):
            replay()
        measured[(name, options)] = ((time.perf_counter() - start) / args.replays, replay)
        print(
            f"   {name} {options}: {measured[(name, options)][0] * 1e6:.0f} us per call, "
            f"{run_counts.get((name, options), 0) / args.steps:.2f} per step in the timed run"
        )
    # the compiled time of one environment step, from the replayed calls in the run's proportions
    mean_call = sum(run_counts.get(key, 0) * measured[key][0] for key in measured) / args.steps

    print(f"\n4. inside the calls (profiler trace of {args.trace_calls} replays each; op time summed over threads)")
    for (name, options), (_, replay) in measured.items():
        ops, traced_wall = trace_ops(replay, args.trace_calls)
        summed = sum(ops.values())
        print(f"   {name} {options}: {traced_wall * 1e6:.0f} us per call traced, ops {summed * 1e6:.0f} us summed")
        for kind, t in sorted(ops.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"      {t * 1e6:8.1f} us  {100 * t / summed:5.1f} %  {kind}")

    # 5. the floor
    hidden = max(setting["actor"] + setting["critic"])
    one = measure_rate(setting["batch_size"], hidden, 1)
    default = measure_rate(setting["batch_size"], hidden, args.threads)
    print(f"\n5. floor: {flops / 1e6:.1f} MFLOP of products per step = {formula}, B = {setting['batch_size']}")
    print(
        f"   product rate [{setting['batch_size']}, {hidden}] x [{hidden}, {hidden}]: {one:.1f} GFLOP/s on one thread, "
        f"{default:.1f} GFLOP/s on {'the default threads' if not args.threads else f'{args.threads} thread(s)'}"
    )
    print(
        f"   floor {flops / one / 1e3:.0f} us per step at the one-thread rate; "
        f"replayed calls {mean_call * 1e6:.0f} us per step "
        f"(achieved {flops / mean_call / 1e9:.1f} GFLOP/s, {100 * flops / mean_call / 1e9 / one:.0f} % of one thread); "
        f"whole step {wall * per:.0f} us ({100 * flops / one / 1e9 / (wall / args.steps):.0f} % of the floor's rate)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, default="td3")
    parser.add_argument("--setting", choices=["large", "small", "keras-rl"], default="large")
    parser.add_argument("--steps", type=int, default=3000, help="timed environment steps (default: 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="our agent's jit_compile")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    parser.add_argument("--replays", type=int, default=500, help="replayed calls timed, per kind (default: 500)")
    parser.add_argument("--trace-calls", type=int, default=100, help="replayed calls traced, per kind (default: 100)")
    parser.add_argument("--top", type=int, default=12, help="rows of the per-function and per-op lists")
    parser.add_argument("--rate", nargs=3, type=int, metavar=("ROWS", "HIDDEN", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rate:
        print(product_rate(*args.rate))
        return
    if args.threads:  # before TensorFlow starts
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
    print(describe(), flush=True)
    print(json.dumps({k: v for k, v in vars(args).items() if k != "rate"}), flush=True)
    profile(args)


if __name__ == "__main__":
    main()
