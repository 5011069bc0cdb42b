"""Latency of one action from an exported policy, against acting inside the library.

For each agent the script builds the example's agent, trains it a few hundred steps (so that its
networks are built and it has seen observations), exports it as a SavedModel and as a LiteRT file,
then times single-observation actions, each ending with the action as a numpy array:

- `agent.forward(obs)`, in test mode (`agent.training = False`);
- the Keras network called directly on a `[1, 1, *obs_shape]` array
  (`agent.actor(x, training=False)` for DDPG; `agent.model(x, training=False)` for DQN, then the
  argmax of its Q-values);
- the SavedModel loaded with plain TensorFlow:
  `tf.saved_model.load(path).signatures["serving_default"](observations=tf.constant(x))`;
- the same SavedModel through `rl.export.load_policy(path).forward(obs)`;
- the LiteRT file: `tf.lite.Interpreter(...).get_signature_runner("serving_default")(observations=x)`;
- the LiteRT file through `rl.export.load_policy(path).forward(obs)`.

Each call is timed alone; the table gives the median and the 90th percentile in microseconds.
After the warm-up calls, the timed calls of each way come in five blocks, the ways taking turns
block by block (a busy moment of the machine falls on all of them alike), each block after 20
untimed calls: the figures are those of a loop that calls the policy again and again with its
weights in the processor's caches. Calls interleaved with other work (an environment step, another
way's call) find less of their data there and cost more, the shortest calls (LiteRT's) several
times more. Also printed: the time `agent.export` takes for each format and the size of what it
writes. Before timing, the script checks that every way returns the action `agent.forward` returns.

Agents: `ddpg` (examples/ddpg_pendulum.py, Pendulum-v1, actor and critic [256, 256]) and `dqn`
(examples/dqn_cartpole.py, CartPole-v1, keras-rl's 3 x Dense(16)).

    python benchmarks/export_latency.py                       # both agents, 2 000 calls each way
    python benchmarks/export_latency.py --agents ddpg --calls 5000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples"), os.path.dirname(os.path.abspath(__file__))]

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from machine import describe  # noqa: E402

import rl.export  # noqa: E402

AGENTS = ("ddpg", "dqn")
TRAIN_STEPS = 300
SEED = 0
ROUNDS = 5  # blocks of timed calls per way, the ways taking turns
REFILL = 20  # untimed calls before each block
# TensorFlow 2.21 still ships tf.lite.Interpreter but warns, at every construction, that the
# `ai-edge-litert` package replaces it; the timings are of the same interpreter either way.
warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")


def build(name: str):
    """The example's agent for `name`, trained `TRAIN_STEPS` steps, in test mode; returns (agent, env, network)."""
    keras.utils.set_random_seed(SEED)
    if name == "ddpg":
        import ddpg_pendulum

        env = gym.make("Pendulum-v1")
        agent = ddpg_pendulum.make_agent(env, SEED, hidden=(256, 256))
        network = agent.actor
    else:
        import dqn_cartpole

        env = dqn_cartpole.make_env()
        agent = dqn_cartpole.make_agent(env, SEED)
        network = agent.model
    agent.fit(env, nb_steps=TRAIN_STEPS, verbose=0, seed=SEED)
    agent.training = False
    agent.reset_states()
    return agent, env, network


def folder_bytes(path: str) -> int:
    """Bytes of every file under `path`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def export_both(agent, folder: str) -> dict:
    """Exports `agent` in both formats into `folder`; returns the paths, export times (s) and sizes (bytes)."""
    out = {}
    for fmt, name in (("saved_model", "policy"), ("tflite", "policy.tflite")):
        path = os.path.join(folder, name)
        start = time.perf_counter()
        agent.export(path, format=fmt)
        seconds = time.perf_counter() - start
        size = folder_bytes(path) if fmt == "saved_model" else os.path.getsize(path)
        out[fmt] = {"path": path, "seconds": seconds, "bytes": size}
    return out


def ways(agent, network, exports: dict, obs: np.ndarray, discrete: bool) -> dict:
    """The callables to time, by label: each acts on the single observation `obs`."""
    x = obs[None].astype(np.float32)  # [1, *obs_shape]: the serving input
    state = x[:, None]  # [1, 1, *obs_shape]: the Keras network's input (a window of one)
    if discrete:  # the network gives Q-values: the action is their argmax

        def keras_call():
            return int(np.argmax(np.asarray(network(state, training=False))[0]))

    else:  # the network's output is the action

        def keras_call():
            return np.asarray(network(state, training=False))[0]

    serving = tf.saved_model.load(exports["saved_model"]["path"]).signatures["serving_default"]
    runner = tf.lite.Interpreter(model_path=exports["tflite"]["path"]).get_signature_runner("serving_default")
    from_saved = rl.export.load_policy(exports["saved_model"]["path"])
    from_lite = rl.export.load_policy(exports["tflite"]["path"])
    return {
        "`agent.forward(obs)`": lambda: agent.forward(obs),
        "Keras network, called directly": keras_call,
        "SavedModel, `tf.saved_model.load`": lambda: serving(observations=tf.constant(x))["action"].numpy(),
        "SavedModel, `load_policy(...).forward`": lambda: from_saved.forward(obs),
        "LiteRT, `tf.lite.Interpreter`": lambda: runner(observations=x)["action"],
        "LiteRT, `load_policy(...).forward`": lambda: from_lite.forward(obs),
    }


def time_ways(calls_by_label: dict, calls: int, warmup: int, rounds: int = ROUNDS) -> dict:
    """Microseconds per call of each callable; returns {label: array of `calls` times}.

    Each way is called `warmup` times first. The timed calls come in `rounds` blocks per way, the
    ways taking turns block by block, each block after `REFILL` untimed calls: a busy moment of the
    machine falls on every way alike, and each block is timed with that way's data in the caches.
    """
    labels = list(calls_by_label)
    for label in labels:
        for _ in range(warmup):
            calls_by_label[label]()
    times = {label: [] for label in labels}
    clock = time.perf_counter_ns
    sizes = [calls // rounds + (r < calls % rounds) for r in range(rounds)]
    for size in sizes:
        for label in labels:
            fn = calls_by_label[label]
            for _ in range(REFILL):
                fn()
            for _ in range(size):
                start = clock()
                fn()
                times[label].append((clock() - start) / 1e3)
    return {label: np.asarray(t) for label, t in times.items()}


def check_same_action(calls_by_label: dict) -> None:
    """Every way gives the action `agent.forward` gives (so the table compares like with like)."""
    want = np.asarray(calls_by_label["`agent.forward(obs)`"]())
    for label, fn in calls_by_label.items():
        got = np.asarray(fn()).reshape(want.shape)
        if want.dtype.kind in "iu" or got.dtype.kind in "iu":
            ok = np.array_equal(got.astype(np.int64), want.astype(np.int64))
        else:
            ok = np.allclose(got, want, atol=1e-4)
        if not ok:
            raise SystemExit(f"{label} acts differently: {got} against agent.forward's {want}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each way (default: 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls of each way first (default: 200)")
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS), help="(default: ddpg dqn)")
    args = parser.parse_args(argv)

    print(describe())
    print(
        f"microseconds per single-observation action, {args.calls} timed calls of each way in {ROUNDS} blocks, "
        f"after {args.warmup} warm-up calls"
    )
    rows, facts = [], []
    for name in args.agents:
        agent, env, network = build(name)
        with tempfile.TemporaryDirectory() as folder:
            exports = export_both(agent, folder)
            obs, _ = env.reset(seed=SEED + 1)
            obs = np.asarray(obs, np.float32)
            discrete = isinstance(env.action_space, gym.spaces.Discrete)
            calls_by_label = ways(agent, network, exports, obs, discrete)
            check_same_action(calls_by_label)
            times = time_ways(calls_by_label, args.calls, args.warmup)
        for label, t in times.items():
            rows.append((name.upper(), label, np.median(t), np.percentile(t, 90)))
        sm, lite = exports["saved_model"], exports["tflite"]
        facts.append(
            f"{name.upper()}: export {sm['seconds']:.1f} s (SavedModel), {lite['seconds']:.1f} s (LiteRT); "
            f"SavedModel folder {sm['bytes']:,} bytes, .tflite file {lite['bytes']:,} bytes"
        )
        env.close()

    print()
    print("| agent | way | median (µs) | p90 (µs) |")
    print("| --- | --- | ---: | ---: |")
    for agent_name, label, median, p90 in rows:
        print(f"| {agent_name} | {label} | {median:,.0f} | {p90:,.0f} |")
    print()
    for line in facts:
        print(line)


if __name__ == "__main__":
    main()
