"""Train the cross-entropy method on CartPole (200-step episodes) with keras-rl's configuration, then test it.

python examples/cem_cartpole.py                  # 100 000 steps, seed 0
python examples/cem_cartpole.py --seed 1 --steps 50000 --deep

keras-rl's configuration: a linear softmax policy (observation -> 2 scores -> softmax; `--deep` uses
its commented-out alternative, 3 x 16 ReLU units), EpisodeParameterMemory(limit=1000), batch of 50
episodes, 2000 warm-up steps, an update every 50 episodes keeping the best 5 %, 100 000 steps.
Episodes end after 200 steps (CartPole-v0's limit), so the best return is 200.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import CEMAgent  # noqa: E402
from rl.memory import EpisodeParameterMemory  # noqa: E402

EPISODE_STEPS = 200


def build_model(observation_shape, nb_actions, deep=False):
    """keras-rl's CEM policy: observation window -> softmax over the actions."""
    observation_input = keras.Input(shape=(1,) + observation_shape, name="observation_input")
    x = layers.Flatten()(observation_input)
    if deep:
        for _ in range(3):
            x = layers.Dense(16, activation="relu")(x)
    x = layers.Dense(nb_actions, activation="softmax")(x)
    return keras.Model(observation_input, x, name="cem_policy")


def make_agent(env, seed, deep=False):
    """The agent this example trains (also used by the learning tests)."""
    nb_actions = int(env.action_space.n)
    model = build_model(env.observation_space.shape, nb_actions, deep)
    memory = EpisodeParameterMemory(limit=1000, window_length=1, seed=seed)
    agent = CEMAgent(
        model=model,
        nb_actions=nb_actions,
        memory=memory,
        batch_size=50,
        nb_steps_warmup=2000,
        train_interval=50,
        elite_frac=0.05,
        seed=seed,
    )
    agent.compile()
    return agent


def main(argv=None):
    """Trains, saves the best weights, tests; returns the mean test return."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="training steps (default: 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--deep", action="store_true", help="keras-rl's alternative policy: 3 x 16 ReLU units")
    parser.add_argument("--weights", default="cem_CartPole_params.h5f", help="weights file name (keras-rl style)")
    parser.add_argument("--test-episodes", type=int, default=10, help="test episodes (default: 10)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per episode")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)  # the model's initial weights
    env = gym.make("CartPole-v1")
    agent = make_agent(env, args.seed, args.deep)
    agent.fit(
        env,
        nb_steps=args.steps,
        verbose=args.verbose,
        log_interval=10_000,
        nb_max_episode_steps=EPISODE_STEPS,
        seed=args.seed,
    )
    agent.save_weights(args.weights, overwrite=True)
    print(
        f"Saved the best weights (training return {agent.best_seen[0]:.0f}) to {agent.weights_paths(args.weights)[0]}"
    )

    history = agent.test(
        env, nb_episodes=args.test_episodes, visualize=False, nb_max_episode_steps=EPISODE_STEPS, seed=args.seed + 1000
    )
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
