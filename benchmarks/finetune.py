"""Offline training, then fine-tuning online, on Pendulum-v1: TD3+BC then TD3, and SAC with layer-normalised critics.

The dataset: `--episodes` episodes (200 steps each) of a scripted swing-up controller in which
each action is, with probability 0.5, replaced by a uniform random one and otherwise perturbed by
Gaussian noise of standard deviation 1 (`offline_speed.make_dataset`, seed 0), its actions divided
by 2 so that they lie in [-1, 1]; the agents act on `RescaleAction(Pendulum-v1, -1, 1)`.

Per agent and seed, one agent is built on a `rl.memory.MixedMemory` (the dataset as its offline
part, an empty `SequentialMemory` as its online part, `ratio=0.5`: RLPD's symmetric sampling),
then:

1. `fit_offline(--offline-updates)` (the online part is empty: every batch is the dataset's);
2. the mean return of `--eval-episodes` noise-free episodes (`agent.test`, seeds 1000, 1001, ...);
3. `fit(env, --online-steps)`: each new step goes to the online part, each batch is half dataset
   and half new steps;
4. the mean return again, on the same episodes.

The agents, actor and critics [256, 256] (ReLU), batch 256, Adam 3e-4, gamma 0.99, tau 0.005:

- `td3bc`: `TD3BCAgent` (alpha 2.5, observations standardised with the dataset's statistics),
  then `bc_weight = 0` for the online phase (TD3's actor objective), exploration noise N(0, 0.1);
- `sac_ln`: `SACAgent` whose critics put `LayerNormalization` after each hidden `Dense` (RLPD's
  critics), entropy coefficient learned.

`--memory single` runs the online phase on one `SequentialMemory` holding the dataset and the new
steps instead (each batch drawn uniformly from both, in proportion to their sizes), for comparison.

    python benchmarks/finetune.py                                 # 3 seeds, both agents
    python benchmarks/finetune.py --seeds 0 --offline-updates 2000 --online-steps 2000   # a short run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402
from offline_speed import eval_env, make_dataset  # noqa: E402

HIDDEN = (256, 256)
LR, BATCH, GAMMA, TAU = 3e-4, 256, 0.99, 0.005


def models(agent: str, seed: int):
    """The actor and critic of `agent` (`"td3bc"` or `"sac_ln"`), with seeded initial weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    obs_in = keras.Input((3,))
    x = obs_in
    for units in HIDDEN:
        x = layers.Dense(units, activation="relu")(x)
    out = layers.Dense(1, activation="tanh")(x) if agent == "td3bc" else layers.Dense(2)(x)  # SAC: mean, log std
    actor = keras.Model(obs_in, out)
    action_in, critic_obs = keras.Input((1,)), keras.Input((3,))
    y = layers.Concatenate()([critic_obs, action_in])
    for units in HIDDEN:
        y = layers.Dense(units)(y)
        if agent == "sac_ln":
            y = layers.LayerNormalization()(y)
        y = layers.Activation("relu")(y)
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(y))
    return actor, critic, action_in


def build(agent: str, memory, seed: int):
    import keras

    from rl.agents import SACAgent, TD3BCAgent
    from rl.random import GaussianWhiteNoiseProcess

    actor, critic, action_in = models(agent, seed)
    common = dict(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=memory,
        batch_size=BATCH,
        gamma=GAMMA,
        target_model_update=TAU,
    )
    if agent == "td3bc":
        built = TD3BCAgent(**common, alpha=2.5, random_process=GaussianWhiteNoiseProcess(sigma=0.1, seed=seed))
    else:
        built = SACAgent(**common, nb_steps_warmup=0)
    built.compile(keras.optimizers.Adam(learning_rate=LR))
    return built


def mean_return(agent, episodes: int) -> float:
    history = agent.test(eval_env(), nb_episodes=episodes, visualize=False, verbose=0, seed=1000)
    return float(np.mean(history.history["episode_reward"]))


def run(agent_name: str, data: dict, seed: int, args: argparse.Namespace) -> dict:
    from rl.memory import MixedMemory, SequentialMemory

    offline = SequentialMemory.from_arrays(**data, seed=seed)
    if args.memory == "mixed":
        memory = MixedMemory(offline, SequentialMemory(limit=args.online_steps + 1000, seed=seed + 1), ratio=0.5)
    else:
        memory = SequentialMemory.from_arrays(**data, seed=seed, limit=offline.limit + args.online_steps + 1000)
    agent = build(agent_name, memory, seed)
    box = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    start = time.perf_counter()
    agent.fit_offline(args.offline_updates, verbose=0, action_space=box)
    offline_s = time.perf_counter() - start
    after_offline = mean_return(agent, args.eval_episodes)
    if agent_name == "td3bc":
        agent.bc_weight = 0.0  # TD3's actor objective from here on
    start = time.perf_counter()
    agent.fit(eval_env(), nb_steps=args.online_steps, verbose=0, seed=seed)
    online_s = time.perf_counter() - start
    after_online = mean_return(agent, args.eval_episodes)
    return {
        "offline": after_offline,
        "online": after_online,
        "offline_s": offline_s,
        "online_s": online_s,
        "step": agent.step,
    }


def sampling_cost(data: dict, repeats: int = 2000) -> tuple[float, float]:
    """Microseconds per batch of 256 drawn into packed arrays (`sample_into`, as `fit` draws):
    one `SequentialMemory`, and a `MixedMemory` of two (the dataset and 10 000 new steps)."""
    from rl.memory import MixedMemory, SequentialMemory

    single = SequentialMemory.from_arrays(**data, seed=0)
    online = SequentialMemory.from_arrays(**{k: v[:10_000] for k, v in data.items()}, seed=1)
    mixed = MixedMemory(SequentialMemory.from_arrays(**data, seed=0), online)
    s0, s1 = np.empty((BATCH, 1, 3), np.float32), np.empty((BATCH, 1, 3), np.float32)
    rows = np.empty((BATCH, 3), np.float32)
    out = []
    for memory in (single, mixed):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats // 5):
                memory.sample_into(BATCH, s0, s1, rows)
            best = min(best, (time.perf_counter() - start) / (repeats // 5))
        out.append(best * 1e6)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--agents", nargs="+", choices=("td3bc", "sac_ln"), default=["td3bc", "sac_ln"])
    parser.add_argument("--episodes", type=int, default=100, help="dataset episodes (200 steps each)")
    parser.add_argument("--offline-updates", type=int, default=5_000)
    parser.add_argument("--online-steps", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--memory", choices=("mixed", "single"), default="mixed", help="the online phase's memory")
    args = parser.parse_args()
    print(describe())
    began = time.perf_counter()
    data, dataset_return = make_dataset(args.episodes, 0)
    print(
        f"dataset: {len(data['rewards'])} transitions from {args.episodes} noisy episodes, mean return "
        f"{dataset_return:.1f}; {args.offline_updates} offline updates, then {args.online_steps} online steps "
        f"(memory: {args.memory}); returns: mean of {args.eval_episodes} noise-free episodes"
    )
    single_us, mixed_us = sampling_cost(data)
    print(f"sample_into, batch {BATCH}: SequentialMemory {single_us:.1f} us, MixedMemory {mixed_us:.1f} us")
    header = f"{'agent':>7} {'seed':>4} {'after offline':>14} {'after online':>13} {'change':>8}"
    print(f"{header} {'offline s':>10} {'online s':>9}")
    for agent_name in args.agents:
        rows = []
        for seed in args.seeds:
            r = run(agent_name, data, seed, args)
            rows.append(r)
            print(
                f"{agent_name:>7} {seed:>4} {r['offline']:>14.1f} {r['online']:>13.1f} "
                f"{r['online'] - r['offline']:>+8.1f} {r['offline_s']:>10.1f} {r['online_s']:>9.1f}",
                flush=True,
            )
        off, on = np.mean([r["offline"] for r in rows]), np.mean([r["online"] for r in rows])
        better = sum(r["online"] > r["offline"] for r in rows)
        mean = f"{agent_name:>7} mean {off:>14.1f} {on:>13.1f} {on - off:>+8.1f}"
        print(f"{mean}   higher after online: {better}/{len(rows)}")
    print(f"wall time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
