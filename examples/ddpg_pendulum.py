"""Train DDPG on Pendulum-v1, save its weights, then test it without exploration noise.

python examples/ddpg_pendulum.py                 # 20 000 steps, seed 0
python examples/ddpg_pendulum.py --seed 1 --steps 30000 --render   # needs: pip install -e ".[render]"
python examples/ddpg_pendulum.py --log ddpg_log.json --eval-interval 2000 && python -m rl.plot ddpg_log.json
python examples/ddpg_pendulum.py --envs 4        # 4 sub-environments (gymnasium.vector), 20 000 steps in all
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import DDPGAgent  # noqa: E402
from rl.callbacks import EvalCallback, FileLogger  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.random import OrnsteinUhlenbeckProcess  # noqa: E402


def build_models(observation_shape, nb_actions, action_high, hidden=(256, 256)):
    """A keras-rl style actor and critic; the critic takes the action through its own Input."""
    observation_input = keras.Input(shape=(1,) + observation_shape, name="observation_input")
    x = layers.Flatten()(observation_input)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(nb_actions, activation="tanh")(x)
    actions = layers.Rescaling(scale=action_high)(x)  # tanh's [-1, 1] -> the action range
    actor = keras.Model(observation_input, actions, name="actor")

    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    critic_observation_input = keras.Input(shape=(1,) + observation_shape, name="critic_observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(critic_observation_input)])
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    q_value = layers.Dense(1)(x)
    critic = keras.Model([action_input, critic_observation_input], q_value, name="critic")
    return actor, critic, action_input


def make_agent(env, seed, hidden=(256, 256), batch_size=64):
    """The agent this example trains (also used by the benchmarks and the learning tests)."""
    nb_actions = env.action_space.shape[0]
    actor, critic, action_input = build_models(
        env.observation_space.shape, nb_actions, float(env.action_space.high[0]), hidden
    )
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        batch_size=batch_size,
        nb_steps_warmup_critic=1000,
        nb_steps_warmup_actor=1000,
        random_process=OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, mu=0.0, sigma=0.3, seed=seed),
        gamma=0.99,
        target_model_update=0.005,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


def main(argv=None, make=make_agent, name="ddpg", doc=__doc__):
    """Trains the agent `make(env, seed)` builds, saves its weights, tests it; returns the mean test return."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000, help="training steps (default: 20000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--render", action="store_true", help="show the test episodes in a window")
    parser.add_argument("--weights", default=f"{name}_pendulum_weights.h5f", help="weights file name (keras-rl style)")
    parser.add_argument("--test-episodes", type=int, default=10, help="noise-free test episodes (default: 10)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per episode")
    parser.add_argument("--log", metavar="PATH", help="write the training episodes to this JSON file (FileLogger)")
    parser.add_argument(
        "--eval-interval",
        type=int,
        default=0,
        metavar="N",
        help="evaluate 5 noise-free episodes every N steps (0: off)",
    )
    parser.add_argument(
        "--envs",
        type=int,
        default=1,
        metavar="N",
        help="train on N sub-environments of a gymnasium SyncVectorEnv; --steps counts the steps of all (default: 1)",
    )
    args = parser.parse_args(argv)
    if args.envs < 1:
        parser.error(f"--envs must be at least 1. Received: --envs {args.envs}")
    if args.render:
        try:
            import pygame  # noqa: F401  # gymnasium draws Pendulum with it
        except ImportError:
            parser.error("--render needs pygame: install it with `pip install -e '.[render]'` from a checkout")

    keras.utils.set_random_seed(args.seed)  # the networks' initial weights
    env = gym.make("Pendulum-v1")
    agent = make(env, args.seed)
    callbacks = []
    if args.eval_interval:  # a separate env, seeded apart from training and testing
        eval_env = gym.make("Pendulum-v1")
        callbacks.append(EvalCallback(eval_env, eval_interval=args.eval_interval, nb_episodes=5, seed=args.seed + 2000))
    if args.log:
        callbacks.append(FileLogger(args.log))
    train_env = env if args.envs == 1 else gym.make_vec("Pendulum-v1", num_envs=args.envs, vectorization_mode="sync")
    agent.fit(
        train_env, nb_steps=args.steps, verbose=args.verbose, log_interval=5000, seed=args.seed, callbacks=callbacks
    )
    agent.save_weights(args.weights, overwrite=True)
    print(f"Saved weights to {', '.join(agent.weights_paths(args.weights))}")

    test_env = gym.make("Pendulum-v1", render_mode="human" if args.render else None)
    history = agent.test(test_env, nb_episodes=args.test_episodes, visualize=args.render, seed=args.seed + 1000)
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
