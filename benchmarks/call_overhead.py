"""What one compiled call costs, with the process on every core and on one core.

Each agent step is one call of a traced TensorFlow graph (acting fused with training). This script
times such calls through the engine's registry (`rl.engine.compiled.CompiledFunctions`), the path
the agents use, for three graphs:

- `one-op`: `x + 1` on 4 values, plain TensorFlow: the fixed cost of a call;
- `mlp-step`: a training step of keras-rl's small network sizes (3 x Dense(16), batch 32), plain;
- `mlp-step-xla`: the same step compiled with XLA.

Each graph is timed in a fresh process, once with the process allowed on every usable core and
once restricted to one core (`os.sched_setaffinity`, what `taskset -c 0` does), with TensorFlow's
default threads unless `--tf-threads` says otherwise. On a 2-core virtual machine the unpinned
calls cost two to three times more: TensorFlow runs a call's graph on its own thread pools (the
inter-op pool for a plain graph; XLA's runtime hands independent parts of a graph to the intra-op
pool), and waking a thread on an idle core and waking the caller afterwards costs there about as
much as a small network's whole training step.

    python benchmarks/call_overhead.py
    python benchmarks/call_overhead.py --tf-threads 1 --calls 5000
"""

from __future__ import annotations

import argparse
import os
import time

from machine import describe
from workers import report, run_worker

GRAPHS = ("one-op", "mlp-step", "mlp-step-xla")


def time_calls(graph: str, calls: int, threads: int) -> float:
    """Microseconds per call of `graph` (after a warm-up), in this process."""
    import numpy as np
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    import keras

    from rl.engine.compiled import CompiledFunctions, Signature

    if graph == "one-op":
        size = 4

        def build():
            return lambda x: x + 1.0

    else:
        size, batch = 128, 32
        model = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(16, activation="relu") for _ in range(3)])
        model.add(keras.layers.Dense(2))

        def build():
            def step(x):
                xb = tf.reshape(x, [batch, 4])
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(model(xb)))
                grads = tape.gradient(loss, model.trainable_variables)
                for v, g in zip(model.trainable_variables, grads, strict=True):
                    v.assign_sub(1e-4 * g)
                return tf.reshape(model(xb[:1]), [-1])

            return step

    functions = CompiledFunctions(xla=graph.endswith("xla"), fallback=False)
    signature = Signature(graph, None, size)
    x = np.ones(size, np.float32)
    for _ in range(max(200, calls // 10)):
        functions.call(signature, build, x)
    start = time.perf_counter()
    for _ in range(calls):
        functions.call(signature, build, x)
    return (time.perf_counter() - start) / calls * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per graph and placement")
    parser.add_argument("--tf-threads", type=int, default=0, help="TensorFlow intra-op threads (default: 0, TF's)")
    parser.add_argument("--worker", nargs=2, metavar=("GRAPH", "CORES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        graph, cores = args.worker
        if cores == "one":
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        report(time_calls(graph, args.calls, args.tf_threads))
        return

    print(describe())
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("needs os.sched_setaffinity (Linux)")
    threads = args.tf_threads or "default"
    print(f"microseconds per compiled call, {args.calls} calls, TensorFlow intra-op threads: {threads}")
    print(f"{'graph':14s} {'every core':>11s} {'one core':>9s} {'ratio':>6s}")
    for graph in GRAPHS:
        times = {}
        for cores in ("every", "one"):
            cmd = ["--calls", str(args.calls), "--tf-threads", str(args.tf_threads), "--worker", graph, cores]
            times[cores] = run_worker(os.path.abspath(__file__), cmd, graph)
        print(f"{graph:14s} {times['every']:11.0f} {times['one']:9.0f} {times['every'] / times['one']:6.2f}")


if __name__ == "__main__":
    main()
