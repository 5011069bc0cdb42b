"""Train DDPG on Pendulum-v1 with Ray rollout workers (rl.distributed), then test it without noise.

python examples/ddpg_pendulum_distributed.py                        # 2 workers on a local Ray cluster
python examples/ddpg_pendulum_distributed.py --workers 8 --address auto   # on the cluster of `ray start`
python examples/ddpg_pendulum_distributed.py --backend inprocess --steps 2000   # without Ray

Needs Ray: pip install -e ".[ray]". The agent is examples/ddpg_pendulum.py's.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from ddpg_pendulum import make_agent  # noqa: E402

import rl.distributed  # noqa: E402
from rl.callbacks import Checkpoint  # noqa: E402


def make_env() -> gym.Env:
    """A new Pendulum-v1 (each worker calls this once)."""
    return gym.make("Pendulum-v1")


def main(argv=None) -> float:
    """Trains with `--workers` rollout workers, tests 10 noise-free episodes; returns the mean test return."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps over all workers (default: 20000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="rollout workers (default: 2)")
    parser.add_argument("--address", default=None, help="Ray cluster: 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    parser.add_argument("--backend", default="ray", choices=["ray", "inprocess"], help="where workers run")
    parser.add_argument("--checkpoint", metavar="DIR", help="save a resumable checkpoint there every 5000 steps")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint DIR")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress, 2 one line per episode")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    agent = make_agent(make_env(), args.seed)
    callbacks = []
    if args.checkpoint:
        if args.resume:
            agent.load_checkpoint(args.checkpoint)
            print(f"Resumed at step {agent.step} from {args.checkpoint}")
        callbacks.append(Checkpoint(args.checkpoint, interval=5000))
    rl.distributed.fit(
        agent,
        make_env,
        nb_steps=max(args.steps - agent.step, 1),
        num_workers=args.workers,
        steps_per_sample=25,
        weight_sync_interval=50,
        address=args.address,
        backend=args.backend,
        callbacks=callbacks,
        verbose=args.verbose,
        seed=args.seed,
        log_interval=5000,
    )
    history = agent.test(make_env(), nb_episodes=10, visualize=False, seed=args.seed + 1000)
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over 10 episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
