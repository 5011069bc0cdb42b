"""Train DDPG on MuJoCo's HalfCheetah (gymnasium's HalfCheetah-v5) with keras-rl's configuration, then test it.

pip install -e ".[mujoco]"                     # MuJoCo and gymnasium's MuJoCo environments
python examples/ddpg_mujoco.py                    # 1 000 000 steps, seed 0 (hours on a CPU)
python examples/ddpg_mujoco.py --steps 100000 --seed 1
python examples/ddpg_mujoco.py --mode random --seed 1    # a uniformly random policy, same test episodes

keras-rl's configuration: an actor of 400 and 300 ReLU units with a tanh output; a critic with 400
units on the observation, then 300 on [those, action]; replay of 100 000, 1000 warm-up steps for
both networks, Ornstein-Uhlenbeck noise (theta 0.15, sigma 0.1), gamma 0.99, soft target updates
with tau 1e-3, Adam with learning rates 1e-4 (actor) and 1e-3 (critic), observations whitened by a
running mean and standard deviation (WhiteningNormalizerProcessor), actions clipped to [-1, 1] by
the processor. HalfCheetah's episodes last 1000 steps.

Measured (a 2-core machine shared with other work, each run pinned to one core; mean return of the
5 noise-free test episodes, 1000 steps each; a random policy's over the same 5 episodes with
`--mode random --seed S`):

    taskset -c 1 python examples/ddpg_mujoco.py --steps 100000 --seed S --verbose 0

    seed 0: 2441.5 after 100 000 steps (random policy -310.0); 7 min 53 s of wall time
    seed 1: 1182.4 after 100 000 steps (random policy -283.2); 7 min 19 s of wall time
    seed 0 after 20 000 steps: -488.0; after 50 000 steps: -190.1

Standing still earns about 0; a positive return means running forward.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import DDPGAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.processors import WhiteningNormalizerProcessor  # noqa: E402
from rl.random import OrnsteinUhlenbeckProcess  # noqa: E402

ENV_NAME = "HalfCheetah-v5"


class MujocoProcessor(WhiteningNormalizerProcessor):
    """Whitens observations (keras-rl's processor) and clips actions to MuJoCo's [-1, 1]."""

    def process_action(self, action):
        return np.clip(action, -1.0, 1.0)


def make_env(render_mode=None):
    """HalfCheetah-v5; explains which extra to install when MuJoCo is missing."""
    try:
        return gym.make(ENV_NAME, render_mode=render_mode)
    except (ImportError, gym.error.DependencyNotInstalled) as e:
        raise SystemExit(
            f"{ENV_NAME} needs MuJoCo: install it with `pip install -e '.[mujoco]'` from a checkout. ({e})"
        ) from e


def build_models(observation_shape, nb_actions):
    """keras-rl's actor and critic; the critic takes the action after its first layer."""
    observation_input = keras.Input(shape=(1,) + observation_shape, name="observation_input")
    x = layers.Flatten()(observation_input)
    x = layers.Dense(400, activation="relu")(x)
    x = layers.Dense(300, activation="relu")(x)
    actor = keras.Model(observation_input, layers.Dense(nb_actions, activation="tanh")(x), name="actor")

    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    critic_observation_input = keras.Input(shape=(1,) + observation_shape, name="critic_observation_input")
    x = layers.Dense(400, activation="relu")(layers.Flatten()(critic_observation_input))
    x = layers.Concatenate()([x, action_input])
    x = layers.Dense(300, activation="relu")(x)
    critic = keras.Model([action_input, critic_observation_input], layers.Dense(1)(x), name="critic")
    return actor, critic, action_input


def make_agent(env, seed):
    """The agent this example trains."""
    nb_actions = env.action_space.shape[0]
    actor, critic, action_input = build_models(env.observation_space.shape, nb_actions)
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        nb_steps_warmup_critic=1000,
        nb_steps_warmup_actor=1000,
        random_process=OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, mu=0.0, sigma=0.1, seed=seed),
        gamma=0.99,
        target_model_update=1e-3,
        processor=MujocoProcessor(),
    )
    agent.compile(
        [keras.optimizers.Adam(learning_rate=1e-4), keras.optimizers.Adam(learning_rate=1e-3)], metrics=["mae"]
    )
    return agent


def random_policy_returns(env, nb_episodes, nb_max_episode_steps, seed):
    """The returns of uniformly random actions over the test protocol of `main` (same seeding).

    The first reset is seeded with `seed`, the later ones continue from it, as in `Agent.test`.
    """
    env.action_space.seed(seed)
    returns = []
    for episode in range(nb_episodes):
        env.reset(seed=seed if episode == 0 else None)
        total = 0.0
        for _ in range(nb_max_episode_steps):
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            if terminated or truncated:
                break
        print(f"Episode {episode + 1}: reward: {total:.3f}")
        returns.append(total)
    return returns


def main(argv=None):
    """Trains, saves the weights, tests; returns the mean test return (`--mode random`: a random policy's)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--mode", choices=["train", "random"], default="train", help="random: test uniformly random actions instead"
    )
    parser.add_argument("--steps", type=int, default=1_000_000, help="training steps (default: 1000000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--weights", default=f"ddpg_{ENV_NAME}_weights.h5f", help="weights file name (keras-rl style)")
    parser.add_argument("--test-episodes", type=int, default=5, help="noise-free test episodes (default: 5)")
    parser.add_argument("--test-steps", type=int, default=1000, help="steps per test episode (default: 1000)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per episode")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)  # the networks' initial weights
    env = make_env()
    if args.mode == "random":
        mean_return = float(np.mean(random_policy_returns(env, args.test_episodes, args.test_steps, args.seed + 1000)))
        print(f"Mean return of a random policy over {args.test_episodes} episodes: {mean_return:.1f}")
        return mean_return
    agent = make_agent(env, args.seed)
    agent.fit(env, nb_steps=args.steps, verbose=args.verbose, log_interval=10_000, seed=args.seed)
    agent.save_weights(args.weights, overwrite=True)
    print(f"Saved weights to {', '.join(agent.weights_paths(args.weights))}")

    history = agent.test(
        env,
        nb_episodes=args.test_episodes,
        visualize=False,
        nb_max_episode_steps=args.test_steps,
        seed=args.seed + 1000,
    )
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
