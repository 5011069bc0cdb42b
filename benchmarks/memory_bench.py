"""Replay memory size and sampling speed with 1 000 000 Pendulum transitions.

Fills `SequentialMemory` with 1 000 000 transitions from 200-step episodes (Pendulum's shape:
3-float observations, 1-float actions), reports the bytes its arrays hold and the process's
resident-memory growth, then times `sample(256)` and `sample_into(256)` (the same batch written
into preallocated arrays, as the DDPG agent samples). With `--vs sb3` it does the same for
Stable-Baselines3's `ReplayBuffer` (which stores every next observation separately) in the same
run and prints the ratios.

    python benchmarks/memory_bench.py --vs sb3
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
from machine import describe

N = 1_000_000
EPISODE = 200
OBS_DIM = 3
BATCH = 256


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def time_sampling(sample, repeats: int) -> float:
    for _ in range(200):
        sample()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            sample()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def transitions(rng: np.random.Generator):
    obs = rng.standard_normal((N + N // EPISODE, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-2, 2, (N, 1)).astype(np.float32)
    rewards = rng.standard_normal(N).astype(np.float32)
    return obs, actions, rewards


def bench_ours(data, repeats: int) -> dict:
    from rl.memory import SequentialMemory

    obs, actions, rewards = data
    gc.collect()
    before = rss_mb()
    memory = SequentialMemory(limit=N + N // EPISODE, seed=0)
    k = 0
    for t in range(N):
        step = t % EPISODE
        if step == 0 and t:
            k += 1  # the previous episode's final observation took a slot
        last = step == EPISODE - 1
        memory.append(obs[k], actions[t], rewards[t], False, obs[k + 1], truncated=last)
        k += 1
    held = memory.nbytes
    grown = rss_mb() - before
    assert memory.nb_transitions == N
    us = time_sampling(lambda: memory.sample(BATCH), repeats)
    # What the DDPG agent calls: the same batch written into preallocated arrays.
    state0, state1 = np.empty((BATCH, 1, OBS_DIM), np.float32), np.empty((BATCH, 1, OBS_DIM), np.float32)
    rows = np.empty((BATCH, 3), np.float32)
    into_us = time_sampling(lambda: memory.sample_into(BATCH, state0, state1, rows), repeats)
    return {"arrays_mb": held / 2**20, "rss_growth_mb": grown, "sample_us": us, "sample_into_us": into_us}


def bench_sb3(data, repeats: int) -> dict:
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer

    obs, actions, rewards = data
    gc.collect()
    before = rss_mb()
    space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    buffer = ReplayBuffer(N, space, gym.spaces.Box(-2, 2, (1,), np.float32), device="cpu")
    k = 0
    for t in range(N):
        step = t % EPISODE
        if step == 0 and t:
            k += 1
        last = step == EPISODE - 1
        buffer.add(
            obs[k], obs[k + 1], actions[t], rewards[t : t + 1], np.array([last]), [{"TimeLimit.truncated": last}]
        )
        k += 1
    arrays = [
        buffer.observations,
        buffer.next_observations,
        buffer.actions,
        buffer.rewards,
        buffer.dones,
        buffer.timeouts,
    ]
    held = sum(a.nbytes for a in arrays)
    grown = rss_mb() - before
    us = time_sampling(lambda: buffer.sample(BATCH), repeats)
    return {"arrays_mb": held / 2**20, "rss_growth_mb": grown, "sample_us": us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vs", choices=["sb3"], default=None)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    print(describe(), flush=True)
    data = transitions(np.random.default_rng(0))
    ours = bench_ours(data, args.repeats)
    print(
        f"SequentialMemory, {N} transitions: arrays {ours['arrays_mb']:.1f} MB, RSS growth "
        f"{ours['rss_growth_mb']:.1f} MB, sample({BATCH}) {ours['sample_us']:.1f} us, "
        f"sample_into({BATCH}) {ours['sample_into_us']:.1f} us"
    )
    if args.vs:
        theirs = bench_sb3(data, args.repeats)
        print(
            f"SB3 ReplayBuffer, {N} transitions: arrays {theirs['arrays_mb']:.1f} MB, RSS growth "
            f"{theirs['rss_growth_mb']:.1f} MB, sample({BATCH}) {theirs['sample_us']:.1f} us"
        )
        print(
            f"ratios ours/sb3: memory {ours['arrays_mb'] / theirs['arrays_mb']:.2f}, "
            f"sampling time {ours['sample_us'] / theirs['sample_us']:.2f}"
        )


if __name__ == "__main__":
    main()
