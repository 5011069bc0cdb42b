"""Train SAC on Pendulum-v1, save its weights, then test it with the mean action.

python examples/sac_pendulum.py                  # 20 000 steps, seed 0
python examples/sac_pendulum.py --seed 1 --steps 30000 --render
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from ddpg_pendulum import main as run  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import SACAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402


def build_models(observation_shape, nb_actions, hidden=(256, 256)):
    """An actor with 2 * nb_actions outputs (means, then log standard deviations) and a critic."""
    observation_input = keras.Input(shape=(1,) + observation_shape, name="observation_input")
    x = layers.Flatten()(observation_input)
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    actor = keras.Model(observation_input, layers.Dense(2 * nb_actions)(x), name="actor")

    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    critic_observation_input = keras.Input(shape=(1,) + observation_shape, name="critic_observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(critic_observation_input)])
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    critic = keras.Model([action_input, critic_observation_input], layers.Dense(1)(x), name="critic")
    return actor, critic, action_input


def make_agent(env, seed, hidden=(256, 256), batch_size=64):
    """The agent this example trains: the agent squashes and scales the actor's Gaussian."""
    nb_actions = env.action_space.shape[0]
    actor, critic, action_input = build_models(env.observation_space.shape, nb_actions, hidden)
    agent = SACAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        batch_size=batch_size,
        nb_steps_warmup=1000,
        gamma=0.99,
        target_model_update=0.005,
        ent_coef="auto",
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


def main(argv=None):
    return run(argv, make=make_agent, name="sac", doc=__doc__)


if __name__ == "__main__":
    main()
