"""Prioritized replay speed with 1 000 000 Pendulum-shaped transitions.

Fills `PrioritizedMemory` (and, as the peer in the same run, `SequentialMemory`) with 1 000 000
transitions from 200-step episodes (3-float observations, 1-float actions), gives every
transition a random priority, then times `sample(256)`, `sample_into(256)` (the path agents use)
and `update_priorities` of 256 transitions (each update on the slots of another earlier draw),
then the two in turn as a training step calls them, with the uniform memory's `sample(256)`
beside them. Both sum trees are timed: numpy's, and with numba installed the compiled one
(`PrioritizedMemory` uses the compiled one when numba can be imported), and each tree alone doing
one training step's work at three sizes.
Targets: sampling 256 in <= 100 us and updating 256 priorities in <= 100 us.

    python benchmarks/prioritized_bench.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from machine import describe

N = 1_000_000
EPISODE = 200
OBS_DIM = 3
BATCH = 256
POOL = 97  # index batches (and TD errors) cycled through by the update timings
TREE_SIZES = (2_000, 50_000, 1_000_000)
KIND = {False: "numpy", True: "compiled"}  # SumTree(compiled=...)


def best_time(fn, repeats: int) -> float:
    """The best mean time of `fn()` in microseconds over 5 rounds of `repeats` calls."""
    for _ in range(100):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def training_cycle(per, s0, s1, rows, tds, repeats: int) -> tuple[float, float]:
    """The best mean times (us) of `sample_into(256)` and of the update that follows it, over 5 rounds."""
    clock = time.perf_counter
    best = (float("inf"), float("inf"))
    for _ in range(6):  # the first round warms up
        sampling = updating = 0.0
        for i in range(repeats):
            start = clock()
            per.sample_into(BATCH, s0, s1, rows)
            drawn = clock()
            per.update_priorities(per.last_indices, tds[i % POOL])
            sampling, updating = sampling + drawn - start, updating + clock() - drawn
        best = min(best[0], sampling / repeats * 1e6), min(best[1], updating / repeats * 1e6)
    return best


def time_tree_step(tree, rng: np.random.Generator, repeats: int) -> float:
    """The best mean time (us) of one store, one draw and one update of 256 on `tree`, over 5 rounds."""
    n = tree.size
    tree.set(np.arange(n), rng.exponential(1.0, n))
    draws = [np.sort(rng.random(BATCH)) * tree.total for _ in range(POOL)]
    slots = [rng.integers(0, n, BATCH) for _ in range(POOL)]
    values = rng.exponential(1.0, BATCH)
    turn = iter(range(1 << 62))

    def step():
        k = next(turn)
        tree.set_one(k % n, 1.0)
        tree.find(draws[k % POOL])
        tree.set(slots[k % POOL], values)

    return best_time(step, repeats)


def build(cls, rng: np.random.Generator):
    obs = rng.standard_normal((N, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-2, 2, (N, 1)).astype(np.float32)
    rewards = rng.standard_normal(N).astype(np.float32)
    terminals = np.zeros(N, dtype=bool)
    truncations = (np.arange(N) % EPISODE) == EPISODE - 1
    nxt = np.roll(obs, -1, axis=0)
    return cls.from_arrays(obs, actions, rewards, terminals, truncations, next_observations=nxt, seed=0)


def time_prioritized(per, rng: np.random.Generator, repeats: int) -> dict:
    """Times `per`'s sampling and priority updates; returns the figures in microseconds."""
    s0 = np.zeros((BATCH, 1, OBS_DIM), np.float32)
    s1 = np.zeros_like(s0)
    rows = np.zeros((BATCH, 3), np.float32)
    tds = [rng.exponential(1.0, BATCH) for _ in range(POOL)]
    drawn = []  # index batches as sampling returns them, so that each update touches other slots
    for _ in range(POOL):
        per.sample(BATCH)
        drawn.append(per.last_indices)
    turn = iter(range(1 << 62))

    def update():
        k = next(turn) % POOL
        per.update_priorities(drawn[k], tds[k])

    figures = {
        "sample(256)": best_time(lambda: per.sample(BATCH), repeats),
        "sample_into(256)": best_time(lambda: per.sample_into(BATCH, s0, s1, rows), repeats),
        "update_priorities(256)": best_time(update, repeats),
    }
    cycle = training_cycle(per, s0, s1, rows, tds, repeats)
    figures["cycle: sample_into(256)"], figures["cycle: update_priorities(256)"] = cycle
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000, help="calls per timing round (default: 2000)")
    args = parser.parse_args(argv)
    from rl.memory import PrioritizedMemory, SequentialMemory, SumTree

    print(describe())
    rng = np.random.default_rng(0)
    uniform = build(SequentialMemory, rng)
    per = build(PrioritizedMemory, np.random.default_rng(0))
    per.sample(BATCH)  # gives every transition the initial priority
    slots = np.flatnonzero(per._valid)
    per.update_priorities(slots, rng.exponential(1.0, slots.size))
    print(f"transitions: {per.nb_transitions}, tree leaves: {per.tree.capacity}, depth {per.tree.depth}")
    kinds = [False] + ([True] if SumTree(1).compiled else [])
    if len(kinds) == 1:
        print("numba is not installed: the numpy sum tree only (pip install numba to time the compiled one too)")
    leaves = per.tree.leaves.copy()
    figures = {"uniform sample(256)": best_time(lambda: uniform.sample(BATCH), args.repeats)}
    for compiled in kinds:
        per.tree = SumTree(per.limit, compiled=compiled)
        per.tree.leaves[:] = leaves
        per.tree.rebuild()
        for name, us in time_prioritized(per, np.random.default_rng(1), args.repeats).items():
            figures[f"prioritized, {KIND[compiled]} tree: {name}"] = us
    print("cycle: as a training step uses them, sample_into(256) then update_priorities of the drawn slots, in turn")
    for name, us in figures.items():
        ratio = us / figures["uniform sample(256)"]
        print(f"{name:<56} {us:8.1f} us   ({ratio:.2f}x uniform sample)")
    print("the sum tree alone, one training step's work (set_one, find of 256 prefix sums, set of 256 leaves):")
    for size in TREE_SIZES:
        line = []
        for compiled in kinds:
            us = time_tree_step(SumTree(size, compiled=compiled), np.random.default_rng(2), args.repeats // 4)
            figures[f"tree step, {size} leaves, {KIND[compiled]}"] = us
            line.append(f"{KIND[compiled]} {us:6.1f} us")
        print(f"  {size:>9} leaves: " + ", ".join(line))
    for kind in map(KIND.get, kinds):
        for name in ("sample(256)", "update_priorities(256)"):
            us = figures[f"prioritized, {kind} tree: {name}"]
            print(f"target {kind} tree {name} <= 100 us: {'met' if us <= 100 else 'NOT met'}")
    return figures


if __name__ == "__main__":
    main()
