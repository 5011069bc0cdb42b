"""Train CrossQ on Pendulum-v1, save its weights, then test it with the mean action.

python examples/crossq_pendulum.py                 # 20 000 steps, seed 0
python examples/crossq_pendulum.py --steps 10000 --seed 1
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from ddpg_pendulum import main as run  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import CrossQAgent  # noqa: E402
from rl.layers import BatchRenormalization  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402


def mlp(x, units, hidden, warmup_steps):
    """Dense layers with ReLU, the input and every hidden layer batch-renormalised (as in the paper)."""
    x = BatchRenormalization(warmup_steps=warmup_steps)(x)
    for width in hidden:
        x = BatchRenormalization(warmup_steps=warmup_steps)(layers.Dense(width, activation="relu")(x))
    return layers.Dense(units)(x)


def build_models(observation_shape, nb_actions, hidden=(256, 256), critic_hidden=None, warmup_steps=100_000):
    """An actor with 2 * nb_actions outputs (means, then log standard deviations) and a critic.

    `critic_hidden` defaults to `hidden`; the paper's critics are wider, (2048, 2048).
    """
    observation_input = keras.Input(shape=(1,) + observation_shape, name="observation_input")
    x = layers.Flatten()(observation_input)
    actor = keras.Model(observation_input, mlp(x, 2 * nb_actions, hidden, warmup_steps), name="actor")

    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    critic_observation_input = keras.Input(shape=(1,) + observation_shape, name="critic_observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(critic_observation_input)])
    q_value = mlp(x, 1, critic_hidden or hidden, warmup_steps)
    critic = keras.Model([action_input, critic_observation_input], q_value, name="critic")
    return actor, critic, action_input


def make_agent(env, seed, hidden=(256, 256), batch_size=256):
    """The agent this example trains: the paper's settings, with critics as wide as the actor."""
    nb_actions = env.action_space.shape[0]
    actor, critic, action_input = build_models(env.observation_space.shape, nb_actions, hidden)
    agent = CrossQAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        batch_size=batch_size,
        nb_steps_warmup=1000,
        nb_steps_random=1000,
        policy_delay=3,
        gamma=0.99,
    )
    agent.compile()  # Adam(1e-3, beta_1=0.5) for the actor and the critics, as in the paper
    return agent


def main(argv=None):
    return run(argv, make=make_agent, name="crossq", doc=__doc__)


if __name__ == "__main__":
    main()
