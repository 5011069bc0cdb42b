"""What CrossQ's batch renormalisation costs per training step, on this machine.

Trains `examples/crossq_pendulum.py`'s agent ([256, 256], batch 64 by default) on Pendulum-v1 twice
per pair, in fresh processes taking turns: as built, and with every `BatchRenormalization` layer
replaced by an identity layer (everything else unchanged: the joint pass over 2 x batch rows, no
target networks, the flat weight layout). Each run trains `--warmup` steps untimed (tracing,
random warm-up), then times `--steps` more. Prints steps/s and µs per step of each run, and the
medians.

    python benchmarks/crossq_normalisation.py                  # 2 pairs of 3 000 timed steps
    python benchmarks/crossq_normalisation.py --pairs 3 --steps 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from machine import describe
from workers import report, run_worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(normalised: bool, steps: int, warmup: int, batch_size: int) -> dict:
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import crossq_pendulum
    import gymnasium as gym
    import keras

    if not normalised:

        class Identity(keras.layers.Layer):
            """Stands in for BatchRenormalization: passes its input through."""

            def __init__(self, warmup_steps: int = 0, **kwargs):
                super().__init__(**kwargs)

            def call(self, x):
                return x

        crossq_pendulum.BatchRenormalization = Identity
    env = gym.make("Pendulum-v1")
    keras.utils.set_random_seed(0)
    agent = crossq_pendulum.make_agent(env, 0, hidden=(256, 256), batch_size=batch_size)
    agent.fit(env, nb_steps=warmup, verbose=0, seed=0)
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0)
    rate = steps / (time.perf_counter() - start)
    return {"normalised": normalised, "steps_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2, help="alternating pairs of runs (default: 2)")
    parser.add_argument("--steps", type=int, default=3000, help="timed steps per run (default: 3000)")
    parser.add_argument("--warmup", type=int, default=1500, help="untimed steps first (default: 1500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--worker", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("pairs", "steps", "warmup", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}")
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        report(run(args.worker == "with", args.steps, args.warmup, args.batch_size))
        return
    print(describe(), flush=True)
    print(f"CrossQ, Pendulum-v1, [256, 256], batch {args.batch_size}: {args.steps} timed steps after {args.warmup}")
    rates: dict[str, list[float]] = {"with": [], "without": []}
    for k in range(args.pairs):
        for kind in ["with", "without"] if k % 2 == 0 else ["without", "with"]:
            cmd = ["--worker", kind, "--steps", str(args.steps), "--warmup", str(args.warmup)]
            result = run_worker(os.path.abspath(__file__), cmd + ["--batch-size", str(args.batch_size)], kind)
            rates[kind].append(result["steps_per_s"])
            rate = result["steps_per_s"]
            print(f"pair {k}: {kind:>7} normalisation {rate:7.1f} steps/s {1e6 / rate:7.0f} µs/step", flush=True)
    with_, without = statistics.median(rates["with"]), statistics.median(rates["without"])
    share = 1.0 - with_ / without
    print(
        f"medians: with {with_:.1f} steps/s ({1e6 / with_:.0f} µs), without {without:.1f} steps/s "
        f"({1e6 / without:.0f} µs): the normalisation takes {1e6 / with_ - 1e6 / without:.0f} µs, "
        f"{100 * share:.0f} % of a step"
    )


if __name__ == "__main__":
    main()
