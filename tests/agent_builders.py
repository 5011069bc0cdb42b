"""Small DDPG, TD3 and SAC agents on the tiny test environments, built the same way for every test."""

import keras
from conftest import small_models
from keras import layers

from rl.agents import DDPGAgent, SACAgent, TD3Agent
from rl.memory import SequentialMemory
from rl.random import GaussianWhiteNoiseProcess


def sac_models(obs_shape, nb_actions=1, hidden=16):
    obs_in = keras.Input((1,) + tuple(obs_shape), name="obs")
    x = layers.Dense(hidden, activation="relu")(layers.Flatten()(obs_in))
    actor = keras.Model(obs_in, layers.Dense(2 * nb_actions)(x), name="actor")
    action_in = keras.Input((nb_actions,), name="action")
    critic_obs = keras.Input((1,) + tuple(obs_shape), name="critic_obs")
    y = layers.Dense(hidden, activation="relu")(layers.Concatenate()([action_in, layers.Flatten()(critic_obs)]))
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(y), name="critic")
    return actor, critic, action_in


def build_agent(kind, env, seed=0, warmup=20, batch_size=8, limit=1000, lr=1e-3, **kwargs):
    """`kind` in {"ddpg", "td3", "sac"}: a compiled agent for `env` (a 1-action Box env)."""
    keras.utils.set_random_seed(seed)
    shape = env.observation_space.shape
    memory = SequentialMemory(limit=limit, seed=seed)
    common = dict(nb_actions=1, memory=memory, batch_size=batch_size, **kwargs)
    if kind == "sac":
        actor, critic, action_in = sac_models(shape)
        agent = SACAgent(actor=actor, critic=critic, critic_action_input=action_in, nb_steps_warmup=warmup, **common)
    else:
        actor, critic, action_in = small_models(shape)
        cls = DDPGAgent if kind == "ddpg" else TD3Agent
        common.setdefault("random_process", GaussianWhiteNoiseProcess(sigma=0.3, size=1, seed=seed))
        agent = cls(
            actor=actor,
            critic=critic,
            critic_action_input=action_in,
            nb_steps_warmup_critic=warmup,
            nb_steps_warmup_actor=warmup,
            **common,
        )
    agent.compile(keras.optimizers.Adam(learning_rate=lr), metrics=["mae"])
    return agent
