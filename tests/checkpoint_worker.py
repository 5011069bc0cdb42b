"""Runs one part of a checkpoint test in its own process (see test_checkpoint.py)."""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import DDPGAgent  # noqa: E402
from rl.callbacks import Checkpoint  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.random import OrnsteinUhlenbeckProcess  # noqa: E402


def build():
    keras.utils.set_random_seed(0)
    env = gym.make("Pendulum-v1")
    obs_in = keras.Input((1, 3))
    x = layers.Dense(16, activation="relu")(layers.Flatten()(obs_in))
    actor = keras.Model(obs_in, layers.Rescaling(2.0)(layers.Dense(1, activation="tanh")(x)))
    action_in, critic_obs_in = keras.Input((1,)), keras.Input((1, 3))
    y = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)])
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(layers.Dense(16, activation="relu")(y)))
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=50_000, seed=0),
        batch_size=32,
        nb_steps_warmup_critic=300,
        nb_steps_warmup_actor=300,
        random_process=OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=1, seed=0),
        target_model_update=0.01,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    return env, agent


def dump(agent, path):
    weights = [
        w for model in (agent.actor, agent.critic, agent.target_actor, agent.target_critic) for w in model.get_weights()
    ]
    np.savez(path, *weights)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["straight", "first", "resume", "forever"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pack-max", type=int, default=None, help="weight arrays this large keep their own variable")
    args = parser.parse_args()
    if args.pack_max is not None:
        import rl.agents.ddpg

        rl.agents.ddpg._PACK_MAX_SIZE = args.pack_max
    env, agent = build()
    ckpt = os.path.join(args.dir, "ckpt")
    if args.mode == "straight":
        agent.fit(env, nb_steps=2 * args.steps, verbose=0, seed=0)
        dump(agent, os.path.join(args.dir, "straight.npz"))
    elif args.mode == "first":
        agent.fit(env, nb_steps=args.steps, verbose=0, seed=0)
        agent.save_checkpoint(ckpt, env=env)
    elif args.mode == "resume":
        agent.load_checkpoint(ckpt, env=env)
        agent.fit(env, nb_steps=args.steps, verbose=0)
        dump(agent, os.path.join(args.dir, "resumed.npz"))
    else:
        agent.fit(env, nb_steps=10**7, verbose=0, seed=0, callbacks=[Checkpoint(ckpt, interval=250)])


if __name__ == "__main__":
    main()
