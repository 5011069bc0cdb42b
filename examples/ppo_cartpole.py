"""Train PPO on CartPole-v1 with 8 vector environments (the RL Zoo's settings), save its weights, test it.

python examples/ppo_cartpole.py                   # 100 000 steps, 8 environments, seed 0
python examples/ppo_cartpole.py --seed 1 --steps 50000 --envs 4

The settings are the RL Zoo's for CartPole-v1: 8 environments, rollouts of 32 steps each (256 in
all), one minibatch of 256, 20 epochs, gamma 0.98, GAE lambda 0.8, no entropy bonus, learning rate
and clip range falling linearly from 1e-3 and 0.2 to 0 over the run. The networks are
Stable-Baselines3's default: separate actor and value MLPs of two 64-unit tanh layers, with
orthogonal initialisation (gain sqrt(2) inside, 0.01 on the logits, 1 on the value).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import PPOAgent  # noqa: E402
from rl.agents.on_policy import linear_schedule  # noqa: E402


def build_models(observation_shape, nb_outputs, hidden=(64, 64)):
    """Separate actor and value networks: tanh MLPs with orthogonal initialisation."""

    def mlp(units_out, gain, name):
        inputs = keras.Input(shape=tuple(observation_shape), name=f"{name}_observation")
        x = layers.Flatten()(inputs)
        for units in hidden:
            x = layers.Dense(units, activation="tanh", kernel_initializer=keras.initializers.Orthogonal(np.sqrt(2)))(x)
        out = layers.Dense(units_out, kernel_initializer=keras.initializers.Orthogonal(gain))(x)
        return keras.Model(inputs, out, name=name)

    return mlp(nb_outputs, 0.01, "actor"), mlp(1, 1.0, "value")


def make_agent(env, seed):
    """The agent this example trains (also used by the benchmark and the learning tests)."""
    space = env.single_action_space if hasattr(env, "single_action_space") else env.action_space
    obs_space = env.single_observation_space if hasattr(env, "single_observation_space") else env.observation_space
    actor, critic = build_models(obs_space.shape, int(space.n))
    agent = PPOAgent(
        actor,
        critic,
        space,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        clip_range=linear_schedule(0.2),
        lr_schedule=linear_schedule(1e-3),
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-5))
    return agent


def main(
    argv=None, make=make_agent, env_id="CartPole-v1", name="ppo", doc=__doc__, default_steps=100_000, default_envs=8
):
    """Trains the agent `make(env, seed)` builds, saves its weights, tests it; returns the mean test return."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=default_steps, help=f"training steps (default: {default_steps})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--envs", type=int, default=default_envs, help=f"vector sub-environments (default: {default_envs})"
    )
    parser.add_argument("--test-episodes", type=int, default=10, help="noise-free test episodes (default: 10)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per episode")
    parser.add_argument("--weights", default=f"{name}_{env_id}_weights.h5f", help="weights file name (keras-rl style)")
    args = parser.parse_args(argv)
    if args.envs < 1:
        parser.error(f"--envs must be at least 1. Received: --envs {args.envs}")

    keras.utils.set_random_seed(args.seed)  # the networks' initial weights
    env = gym.make_vec(env_id, num_envs=args.envs, vectorization_mode="sync") if args.envs > 1 else gym.make(env_id)
    agent = make(env, args.seed)
    agent.fit(env, nb_steps=args.steps, verbose=args.verbose, log_interval=10_000, seed=args.seed)
    agent.save_weights(args.weights, overwrite=True)
    print(f"Saved weights to {', '.join(agent.weights_paths(args.weights))}")

    history = agent.test(gym.make(env_id), nb_episodes=args.test_episodes, visualize=False, seed=args.seed + 1000)
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
