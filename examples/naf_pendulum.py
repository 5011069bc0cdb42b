"""Train NAF (continuous DQN) on Pendulum-v1, then test it.

python examples/naf_pendulum.py                  # 30 000 steps, seed 0
python examples/naf_pendulum.py --seed 1 --steps 20000
python examples/naf_pendulum.py --keras-rl       # keras-rl's example, exactly: 50 000 steps

Both configurations share keras-rl's settings: replay of 100 000, 100 warm-up steps,
Ornstein-Uhlenbeck noise (theta 0.15, sigma 0.3), gamma 0.99, soft target updates with tau 1e-3,
Adam(1e-3, clipnorm=1), rewards divided by 100 (the processor), episodes of 200 steps.

The default networks are those of NAF implementations that learn Pendulum: V, L and mu of two
128-unit ReLU layers, on the observation, mu bounded to the action range by a tanh, batches of 128
and 5 gradient steps per environment step. keras-rl's example (`--keras-rl`) used 3 x 16 units for V
and mu (mu unbounded), 3 x 32 for an L on [action, observation], batches of 32 and one gradient step:
an L that sees the action makes Q(s, a) no longer quadratic in a (mu(s) is then not its maximum), and
with it the agent does not learn; an unbounded mu can also leave the action range, where the
clipped actions no longer tell it which way to move.
The returns printed are Pendulum's own (the processed ones times 100).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import NAFAgent  # noqa: E402
from rl.core import Processor  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.random import OrnsteinUhlenbeckProcess  # noqa: E402

REWARD_SCALE = 100.0


class PendulumProcessor(Processor):
    """Divides rewards by 100: Pendulum's per-step rewards (down to about -16) are large for a Q-network."""

    def process_reward(self, reward):
        return reward / REWARD_SCALE


def build_models(observation_shape, nb_actions, action_high):
    """V, L and mu: two 128-unit ReLU layers each on the observation; mu = action_high * tanh(.)."""

    def mlp(units, name, bounded=False):
        observation_input = keras.Input(shape=(1,) + observation_shape, name=f"{name}_observation_input")
        x = layers.Flatten()(observation_input)
        for _ in range(2):
            x = layers.Dense(128, activation="relu")(x)
        if bounded:
            x = layers.Rescaling(action_high)(layers.Dense(units, activation="tanh")(x))
        else:
            x = layers.Dense(units)(x)
        return keras.Model(observation_input, x, name=name)

    V_model = mlp(1, "V")
    L_model = mlp(nb_actions * (nb_actions + 1) // 2, "L")  # the lower triangle of L, row by row
    mu_model = mlp(nb_actions, "mu", bounded=True)
    return V_model, L_model, mu_model


def build_keras_rl_models(observation_shape, nb_actions):
    """keras-rl's example networks: V and mu of 3 x 16 units, L of 3 x 32 on [action, observation]."""

    def mlp(units, name):
        observation_input = keras.Input(shape=(1,) + observation_shape, name=f"{name}_observation_input")
        x = layers.Flatten()(observation_input)
        for _ in range(3):
            x = layers.Dense(16, activation="relu")(x)
        return keras.Model(observation_input, layers.Dense(units)(x), name=name)

    V_model = mlp(1, "V")
    mu_model = mlp(nb_actions, "mu")
    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    observation_input = keras.Input(shape=(1,) + observation_shape, name="L_observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(observation_input)])
    for _ in range(3):
        x = layers.Dense(32, activation="relu")(x)
    x = layers.Dense(nb_actions * (nb_actions + 1) // 2)(x)
    L_model = keras.Model([action_input, observation_input], x, name="L")
    return V_model, L_model, mu_model


def make_agent(env, seed, keras_rl=False):
    """The agent this example trains (also used by the learning tests)."""
    nb_actions = env.action_space.shape[0]
    if keras_rl:
        V_model, L_model, mu_model = build_keras_rl_models(env.observation_space.shape, nb_actions)
    else:
        V_model, L_model, mu_model = build_models(
            env.observation_space.shape, nb_actions, float(env.action_space.high[0])
        )
    agent = NAFAgent(
        nb_actions=nb_actions,
        V_model=V_model,
        L_model=L_model,
        mu_model=mu_model,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        nb_steps_warmup=100,
        batch_size=32 if keras_rl else 128,
        gradient_steps=1 if keras_rl else 5,
        random_process=OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, mu=0.0, sigma=0.3, seed=seed),
        gamma=0.99,
        target_model_update=1e-3,
        processor=PendulumProcessor(),
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), metrics=["mae"])
    return agent


def main(argv=None):
    """Trains, saves the weights, tests; returns the mean test return (Pendulum's reward)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="training steps (default: 30000, or 50000 with --keras-rl)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--weights", default="cdqn_Pendulum-v1_weights.h5f", help="weights file name (keras-rl style)")
    parser.add_argument("--test-episodes", type=int, default=10, help="noise-free test episodes (default: 10)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per episode")
    parser.add_argument("--keras-rl", action="store_true", help="keras-rl's example networks and batches, exactly")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 50_000 if args.keras_rl else 30_000

    keras.utils.set_random_seed(args.seed)  # the networks' initial weights
    env = gym.make("Pendulum-v1")
    agent = make_agent(env, args.seed, args.keras_rl)
    agent.fit(
        env, nb_steps=args.steps, verbose=args.verbose, log_interval=5000, nb_max_episode_steps=200, seed=args.seed
    )
    agent.save_weights(args.weights, overwrite=True)
    print(f"Saved weights to {', '.join(agent.weights_paths(args.weights))}")

    history = agent.test(
        env, nb_episodes=args.test_episodes, visualize=False, nb_max_episode_steps=200, seed=args.seed + 1000
    )
    mean_return = float(np.mean(history.history["episode_reward"])) * REWARD_SCALE
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
