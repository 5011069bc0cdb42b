"""Train DQN on CartPole (200-step episodes) with keras-rl's example settings, save its weights, test it.

python examples/dqn_cartpole.py                       # 50 000 steps, seed 0
python examples/dqn_cartpole.py --seed 1 --steps 20000
python examples/dqn_cartpole.py --double              # double DQN

The network, memory, policy and hyper-parameters are those of keras-rl's `dqn_cartpole.py`: three
hidden layers of 16 ReLU units over the flattened observation, a 50 000-transition memory, a
Boltzmann policy, 10 warm-up steps, soft target updates with tau = 0.01, Adam at 1e-3.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import DQNAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.policy import BoltzmannQPolicy  # noqa: E402

ENV_NAME = "CartPole-v1"
MAX_EPISODE_STEPS = 200  # CartPole-v0's limit, which keras-rl's examples used


def make_env(render_mode=None):
    """CartPole with 200-step episodes (solved at a mean return of 195)."""
    return gym.make(ENV_NAME, max_episode_steps=MAX_EPISODE_STEPS, render_mode=render_mode)


def build_model(observation_shape, nb_actions, hidden=16, name="q_network"):
    """keras-rl's CartPole Q-network: Flatten, 3 x (Dense(16), ReLU), Dense(nb_actions), linear."""
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=(1,) + tuple(observation_shape)))
    model.add(layers.Flatten())
    for _ in range(3):
        model.add(layers.Dense(hidden))
        model.add(layers.Activation("relu"))
    model.add(layers.Dense(nb_actions))
    model.add(layers.Activation("linear"))
    return model


def make_agent(env, seed, double=False, dueling=False, dueling_type="avg"):
    """The agent this example trains (also used by the benchmark and the learning tests)."""
    nb_actions = int(env.action_space.n)
    agent = DQNAgent(
        model=build_model(env.observation_space.shape, nb_actions),
        nb_actions=nb_actions,
        memory=SequentialMemory(limit=50_000, window_length=1, seed=seed),
        nb_steps_warmup=10,
        target_model_update=1e-2,
        policy=BoltzmannQPolicy(seed=seed),
        enable_double_dqn=double,
        enable_dueling_network=dueling,
        dueling_type=dueling_type,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


def main(argv=None, make=make_agent, name="dqn", doc=__doc__, default_steps=50_000, dueling=False):
    """Trains the agent `make(env, seed, ...)` builds, saves its weights, tests it; returns the mean test return."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=default_steps, help=f"training steps (default: {default_steps})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--test-episodes", type=int, default=10, help="greedy test episodes (default: 10)")
    parser.add_argument("--verbose", type=int, default=2, help="0 silent, 1 progress bar, 2 one line per episode")
    parser.add_argument(
        "--weights", default=f"{name}_{ENV_NAME}_weights.h5f", help="weights file name (keras-rl style)"
    )
    if make is make_agent:
        parser.add_argument("--double", action="store_true", help="double DQN (enable_double_dqn=True)")
    if dueling:
        parser.add_argument("--dueling-type", default="avg", choices=["avg", "max", "naive"], help="(default: avg)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)  # the network's initial weights
    env = make_env()
    kwargs = {}
    if getattr(args, "double", False):
        kwargs["double"] = True
    if dueling:
        kwargs["dueling_type"] = args.dueling_type
    agent = make(env, args.seed, **kwargs)
    agent.fit(env, nb_steps=args.steps, verbose=args.verbose, log_interval=10_000, seed=args.seed)
    agent.save_weights(args.weights, overwrite=True)
    print(f"Saved weights to {', '.join(agent.weights_paths(args.weights))}")

    history = agent.test(make_env(), nb_episodes=args.test_episodes, visualize=False, seed=args.seed + 1000, verbose=0)
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
