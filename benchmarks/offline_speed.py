"""Offline TD3+BC on a fixed Pendulum-v1 dataset: this library's `TD3BCAgent.fit_offline` and d3rlpy's TD3+BC.

Both train from the same dataset with the same settings: actor and critics [256, 256] (ReLU),
batch 256, Adam learning rate 3e-4 for actor and critics, gamma 0.99, tau 0.005, two critics,
policy delay 2, target smoothing noise 0.2 clipped at 0.5, alpha 2.5, observations standardised
with the dataset's mean and standard deviation. Actions are in [-1, 1] for both (the dataset's
actions divided by 2, and evaluation on `RescaleAction(Pendulum-v1, -1, 1)`), as TD3+BC assumes.

The dataset: `--episodes` episodes of a scripted swing-up controller in which each action is,
with probability 0.5, replaced by a uniform random one, and otherwise perturbed by Gaussian noise
of standard deviation 1 (its mean return is printed).

Printed per library: gradient updates per second over the timed updates (ours: after the first
compiled call, which traces the step, reported apart; d3rlpy: its whole `fit`, which has no such
start-up), and the mean return of `--eval-episodes` noise-free episodes after the same number of
updates. Then the ratio of the two rates, and what each rate means in floating-point work: the
matrix products of one update (the same in both libraries) times the updates per second, against
the rate TensorFlow's float32 product of the update's largest shape reaches on this machine (the
ceiling neither library can pass with these networks). d3rlpy comes from the `bench-offline` extra (it pins
gymnasium 1.0.0: install it in a separate environment).

    python benchmarks/offline_speed.py                       # 10 000 updates each (minutes on 2 cores)
    python benchmarks/offline_speed.py --updates 2000        # a short run: speeds only mean much
    python benchmarks/offline_speed.py --only ours           # without d3rlpy
    python benchmarks/offline_speed.py --threads 1           # one thread per op in both libraries

On a machine shared with other work, torch's default threads (one per core, busy-waiting) can
slow d3rlpy down many times over; `--threads 1` is then the fairer comparison.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402

HIDDEN = [256, 256]
SETTINGS = dict(batch_size=256, lr=3e-4, gamma=0.99, tau=0.005, alpha=2.5, policy_delay=2, noise=0.2, noise_clip=0.5)


def scripted_action(obs: np.ndarray) -> float:
    c, s, w = obs
    if c > 0.9:  # near the top: a PD controller
        return -10.0 * np.arctan2(s, c) - 2.0 * w
    energy = 0.5 * w * w + 15.0 * (c - 1.0)  # 0 upright at rest: pump energy toward it
    return -2.0 * energy * w if abs(w) > 1e-2 else 1.0


def make_dataset(episodes: int, seed: int) -> tuple[dict, float]:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    keys = ("observations", "actions", "rewards", "terminals", "truncations", "next_observations")
    rows: dict[str, list] = {k: [] for k in keys}
    returns = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total = 0.0
        while True:
            a = rng.uniform(-2, 2) if rng.random() < 0.5 else scripted_action(obs) + rng.normal()
            action = np.array([np.clip(a, -2.0, 2.0)], np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(keys, (obs, action / 2.0, reward, terminated, truncated, next_obs)):
                rows[key].append(value)
            total += reward
            obs = next_obs
            if terminated or truncated:
                break
        returns.append(total)
    data = {k: np.asarray(v, bool if k in ("terminals", "truncations") else np.float32) for k, v in rows.items()}
    return data, float(np.mean(returns))


def eval_env() -> gym.Env:
    return gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), -1.0, 1.0)


def evaluate(act, episodes: int, seed: int) -> float:
    env = eval_env()
    returns = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_ours(data: dict, updates: int, seed: int, episodes: int, jit: str = "auto") -> dict:
    import keras
    from keras import layers

    from rl.agents import TD3BCAgent
    from rl.memory import SequentialMemory

    keras.utils.set_random_seed(seed)
    obs_in = keras.Input((3,))
    x = obs_in
    for units in HIDDEN:
        x = layers.Dense(units, activation="relu")(x)
    actor = keras.Model(obs_in, layers.Dense(1, activation="tanh")(x))
    action_in, critic_obs = keras.Input((1,)), keras.Input((3,))
    y = layers.Concatenate()([critic_obs, action_in])
    for units in HIDDEN:
        y = layers.Dense(units, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(y))
    s = SETTINGS
    agent = TD3BCAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory.from_arrays(**data, seed=seed),
        batch_size=s["batch_size"],
        gamma=s["gamma"],
        target_model_update=s["tau"],
        alpha=s["alpha"],
        policy_delay=s["policy_delay"],
        target_policy_noise=s["noise"],
        target_noise_clip=s["noise_clip"],
        jit_compile={"auto": "auto", "on": True, "off": False}[jit],
    )
    agent.compile(keras.optimizers.Adam(learning_rate=s["lr"]))
    box = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    per_call = 100
    # One run of `updates` updates, as a user would call it (`"auto"` chooses XLA from the run's
    # length); the first compiled call, which traces (and with XLA compiles) the step, is timed apart.
    first_end: list[float] = []
    call = agent.call_compiled

    def timed_call(*args, **kwargs):
        out = call(*args, **kwargs)
        if not first_end:
            first_end.append(time.perf_counter())
        return out

    agent.call_compiled = timed_call  # an instance attribute: fit_offline finds it first
    start = time.perf_counter()
    agent.fit_offline(updates, verbose=0, action_space=box, updates_per_call=per_call)
    end = time.perf_counter()
    del agent.call_compiled
    first, rest = first_end[0] - start, end - first_end[0]
    xla = agent.jit_compile
    mean_return = evaluate(lambda o: agent.forward(o), episodes, seed=1000)
    return {
        "updates_per_s": (updates - per_call) / rest,
        "first_call_s": first,
        "total_s": first + rest,
        "return": mean_return,
        "note": f"XLA {'on' if xla else 'off'}, {per_call} updates per compiled call",
    }


def run_d3rlpy(data: dict, updates: int, seed: int, episodes: int, jit: str = "auto") -> dict:
    try:
        import d3rlpy
    except ImportError as e:
        raise SystemExit("d3rlpy is missing: install the `bench` extra (pip install -e .[bench]).") from e
    import torch

    d3rlpy.seed(seed)
    s = SETTINGS
    dataset = d3rlpy.dataset.MDPDataset(
        data["observations"], data["actions"], data["rewards"], data["terminals"], timeouts=data["truncations"]
    )
    encoder = d3rlpy.models.VectorEncoderFactory(HIDDEN)
    algo = d3rlpy.algos.TD3PlusBCConfig(
        batch_size=s["batch_size"],
        gamma=s["gamma"],
        actor_learning_rate=s["lr"],
        critic_learning_rate=s["lr"],
        actor_encoder_factory=encoder,
        critic_encoder_factory=encoder,
        tau=s["tau"],
        n_critics=2,
        target_smoothing_sigma=s["noise"],
        target_smoothing_clip=s["noise_clip"],
        alpha=s["alpha"],
        update_actor_interval=s["policy_delay"],
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
    ).create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=updates,
        n_steps_per_epoch=updates,
        show_progress=False,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        save_interval=updates + 1,
    )
    seconds = time.perf_counter() - start
    mean_return = evaluate(lambda o: algo.predict(o[None].astype(np.float32))[0], episodes, seed=1000)
    return {
        "updates_per_s": updates / seconds,
        "first_call_s": 0.0,
        "total_s": seconds,
        "return": mean_return,
        "note": f"d3rlpy {d3rlpy.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }


def flops_per_update(batch_size: int, obs_dim: int = 3, act_dim: int = 1) -> float:
    """Floating-point operations of one TD3+BC update's matrix products (both libraries do the same).

    A forward pass costs `2 * batch * sum(inputs * outputs)` over the dense layers, a backward pass
    about twice that. Per update: the target actor and both target critics forward, both critics
    forward and backward; every `policy_delay`-th update the actor forward and backward and the
    first critic forward and backward to its input (counted as one more forward).
    """

    def forward(sizes: list[int]) -> float:
        return 2.0 * batch_size * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    actor = forward([obs_dim, *HIDDEN, act_dim])
    critic = forward([obs_dim + act_dim, *HIDDEN, 1])
    critic_step = actor + 2 * critic + 2 * 3 * critic
    actor_step = 3 * actor + 2 * critic
    return critic_step + actor_step / SETTINGS["policy_delay"]


def matmul_peak() -> float:
    """GFLOP/s of TensorFlow's float32 matrix product at the update's largest shape, on this machine."""
    import tensorflow as tf

    n = max(HIDDEN)
    x = tf.random.normal([SETTINGS["batch_size"], n])
    w = tf.Variable(tf.random.normal([n, n]) / n**0.5)
    chain = 50

    @tf.function
    def products():
        y = x
        for _ in range(chain):
            y = tf.matmul(y, w)
        return y[0, 0]

    products()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            products().numpy()
        best = min(best, (time.perf_counter() - start) / 10)
    return 2.0 * SETTINGS["batch_size"] * n * n * chain / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10_000, help="gradient updates per library")
    parser.add_argument("--episodes", type=int, default=100, help="dataset episodes (200 steps each)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="noise-free episodes after training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("ours", "d3rlpy"), default=None, help="run one library only")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto", help="our jit_compile setting")
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow and torch threads per op (0: each library's default)"
    )
    args = parser.parse_args()
    print(describe())
    if args.threads:
        import tensorflow as tf
        import torch

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        torch.set_num_threads(args.threads)
    data, dataset_return = make_dataset(args.episodes, args.seed)
    print(
        f"dataset: {len(data['rewards'])} transitions from {args.episodes} noisy episodes, mean return "
        f"{dataset_return:.1f}; {args.updates} updates, nets {HIDDEN}, {SETTINGS}"
    )
    results = {}
    for name, run in (("ours", run_ours), ("d3rlpy", run_d3rlpy)):
        if args.only not in (None, name):
            continue
        r = run(data, args.updates, args.seed, args.eval_episodes, args.jit)
        results[name] = r
        print(
            f"{name:>7}: {r['updates_per_s']:8.1f} updates/s (first call {r['first_call_s']:.1f} s, total "
            f"{r['total_s']:.1f} s; {r['note']}), mean return {r['return']:.1f} over {args.eval_episodes} episodes",
            flush=True,
        )
    if len(results) == 2:
        ratio = results["ours"]["updates_per_s"] / results["d3rlpy"]["updates_per_s"]
        print(f"ratio ours / d3rlpy: {ratio:.2f}x updates/s (target >= 5x)")
    # How close each library comes to the machine's speed for these matrix products.
    flops = flops_per_update(SETTINGS["batch_size"])
    peak = matmul_peak()
    print(
        f"matrix products per update: {flops / 1e6:.0f} MFLOP; "
        f"TensorFlow's float32 [256 x 256] products here: {peak:.0f} GFLOP/s"
    )
    for name, r in results.items():
        achieved = r["updates_per_s"] * flops / 1e9
        print(f"{name:>7}: {achieved:6.1f} GFLOP/s in matrix products, {achieved / peak:.0%} of that")
    if "d3rlpy" in results:
        need = 5 * results["d3rlpy"]["updates_per_s"] * flops / 1e9
        print(f"5x d3rlpy's rate would need {need:.0f} GFLOP/s in matrix products alone, {need / peak:.0%} of that")


if __name__ == "__main__":
    main()
