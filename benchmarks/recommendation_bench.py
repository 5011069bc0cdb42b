"""The recommendation example at a large catalogue: offline training speed and recommendation latency.

python benchmarks/recommendation_bench.py                        # 1 000 000 items (needs keras-rl3[recsys])
python benchmarks/recommendation_bench.py --items 200000 --steps 1000
python benchmarks/recommendation_bench.py --candidates 10   # the search of the critic's 10 candidates

Prints the machine line, then, in one run on the same data pipeline as examples/ddpg_recommendation.py:

- TD3+BC gradient updates per second from the logs of a catalogue of --items items and, as the peer,
  of 10 000 items (training never touches the catalogue, so the ratio should be about 1);
- the time of one recommendation (actor output -> best unseen item) by exact numpy search and by
  faiss' inverted-file index, their ratio, the index's build time, and how often faiss returns the
  exact search's item (recall at 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from ddpg_recommendation import (  # noqa: E402
    ItemIndex,
    Ratings,
    Simulator,
    actor_actions,
    item_vectors,
    learned_policy,
    logged_states,
    make_agent,
    make_memory,
    simulate_logs,
    state_dim,
)
from gymnasium.spaces import Box  # noqa: E402
from machine import describe  # noqa: E402


def train(items: int, users: int, steps: int, seed: int, dim: int = 16):
    """Simulated logs, item vectors, then `steps` TD3+BC updates: (agent, vectors, states, updates/s)."""
    sim = Simulator(items, users, seed=seed)
    user_ids, item_ids, ratings, stamps = simulate_logs(sim, sessions_per_user=4, seed=seed)
    data = Ratings(
        user_ids - 1, item_ids - 1, ratings.astype(np.float32), stamps, np.arange(1, users + 1), np.arange(1, items + 1)
    )
    t = time.perf_counter()
    embeddings = item_vectors(data, items, dim=dim, seed=seed)
    factor_s = time.perf_counter() - t
    logs = logged_states(data, embeddings, 4.0, 3600.0, 20)
    bound = (np.abs(embeddings).max(axis=0) + 1e-3).astype(np.float32)
    agent = make_agent("td3bc", state_dim(embeddings), bound, seed, make_memory(logs, seed))
    space = Box(-bound, bound)
    agent.fit_offline(200, verbose=0, action_space=space)  # compiles the training call
    t = time.perf_counter()
    agent.fit_offline(steps, verbose=0, action_space=space)
    rate = steps / (time.perf_counter() - t)
    print(
        f"{items:>9} items: {len(data.user)} logged ratings, item vectors (ALS) in {factor_s:.1f} s, "
        f"{rate:.0f} TD3+BC updates/s"
    )
    return agent, embeddings, logs.observations, rate


def single_query_ms(index: ItemIndex, queries: np.ndarray, seen: list[set], k: int = 1) -> float:
    index.search(queries[:1], seen[:1], k)  # warm-up
    t = time.perf_counter()
    for q, s in zip(queries, seen):
        index.search(q[None], [s], k)
    return 1000 * (time.perf_counter() - t) / len(queries)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000, help="catalogue size (default: 1000000)")
    parser.add_argument("--users", type=int, default=5000, help="simulated users (default: 5000)")
    parser.add_argument("--steps", type=int, default=2000, help="timed updates per training (default: 2000)")
    parser.add_argument("--queries", type=int, default=100, help="timed single recommendations (default: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedding-dim", type=int, default=16, help="ALS factors per item (default: 16)")
    parser.add_argument("--candidates", type=int, default=1, help="nearest items the critic chooses among (default: 1)")
    args = parser.parse_args(argv)
    print(describe())
    agent, embeddings, states, rate = train(args.items, args.users, args.steps, args.seed, args.embedding_dim)
    _, _, _, peer = train(10_000, args.users, args.steps, args.seed, args.embedding_dim)
    print(f"updates/s ratio, {args.items} items / 10000 items: {rate / peer:.2f}")

    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(states), args.queries, replace=False)
    policy_states = states[rows]
    actions = actor_actions(agent, policy_states)
    seen = [set(rng.integers(0, args.items, 20).tolist()) for _ in rows]  # a user's history to skip
    exact = ItemIndex(embeddings, "numpy")
    numpy_ms = single_query_ms(exact, actions, seen, args.candidates)
    print(f"numpy exact search of the {args.candidates} nearest item(s): {numpy_ms:.2f} ms per recommendation")
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss is not installed (pip install -e '.[recsys]'): no faiss figures")
        return
    t = time.perf_counter()
    approx = ItemIndex(embeddings, "faiss", seed=args.seed)
    build_s = time.perf_counter() - t
    faiss_ms = single_query_ms(approx, actions, seen, args.candidates)
    recall = float(np.mean(approx.search(actions, seen)[:, 0] == exact.search(actions, seen)[:, 0]))
    kind = type(approx.index).__name__
    print(
        f"faiss {kind}: {faiss_ms:.3f} ms per recommendation (index built in {build_s:.1f} s), "
        f"recall@1 of the exact item {recall:.2f}"
    )
    print(f"latency ratio numpy / faiss: {numpy_ms / faiss_ms:.1f}")
    # The learned policy end to end (state -> actor -> search [-> critic]), batch of one.
    policy = learned_policy("learned", agent, approx, args.candidates)
    policy.rank(policy_states[:1], seen[:1], 1)
    t = time.perf_counter()
    for s, excluded in zip(policy_states, seen):
        policy.rank(s[None], [excluded], 1)
    print(f"state -> recommended item with faiss: {1000 * (time.perf_counter() - t) / len(seen):.2f} ms")


if __name__ == "__main__":
    main()
