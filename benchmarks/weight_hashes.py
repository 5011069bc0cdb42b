"""SHA-256 of the weights (and histories) that short seeded runs end with, one line per run.

A change that must keep behaviour (a refactor of the run loop, the memory or the engine) is
checked by running this script before and after it on the same machine: every line must be the
same. Each run is seeded (`keras.utils.set_random_seed`, the memory's, policy's and noise's
seeds, `fit(seed=...)`) and runs in this one process, one after the other.

    python benchmarks/weight_hashes.py                 # every run
    python benchmarks/weight_hashes.py --runs ddpg td3 # some of them

Covers one environment (DDPG, TD3, SAC, DQN, NAF, SARSA, CEM, with a test run each), a vector
environment (DDPG, DQN), offline training (TD3BC) and rl.distributed's in-process workers (DDPG).
The figures are only comparable on one machine: TensorFlow's kernels may differ between CPUs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples"), os.path.dirname(os.path.abspath(__file__))]

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from machine import describe  # noqa: E402


def digest(agent, history=None) -> str:
    """SHA-256 over every network's weights, the optimizers' state and the History."""
    h = hashlib.sha256()
    for model in agent.layers:
        for w in model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
    for opt in getattr(agent, "optimizers", {}).values():
        for v in opt.variables:
            h.update(np.ascontiguousarray(v.numpy()).tobytes())
    if history is not None:
        for key in sorted(set(history.history) - {"updates_per_second"}):  # a timing, not a result
            h.update(key.encode())
            h.update(np.asarray(history.history[key], dtype=np.float64).tobytes())
    h.update(str((agent.step, agent.episode)).encode())
    return h.hexdigest()[:16]


def pendulum(seed=0):
    return gym.make("Pendulum-v1", max_episode_steps=100)


def cartpole(seed=0):
    return gym.make("CartPole-v1", max_episode_steps=100)


def small(make, env, hidden=(32, 32), **kwargs):
    keras.utils.set_random_seed(0)
    return make(env, 0, hidden=hidden, **kwargs)


def online(agent, env, steps=600):
    history = agent.fit(env, nb_steps=steps, verbose=0, seed=0)
    test = agent.test(env, nb_episodes=2, visualize=False, verbose=0, seed=1)
    return digest(agent, history) + " " + digest(agent, test)


def run_ddpg():
    import ddpg_pendulum

    env = pendulum()
    return online(small(ddpg_pendulum.make_agent, env, batch_size=16), env)


def run_td3():
    import td3_pendulum

    env = pendulum()
    return online(small(td3_pendulum.make_agent, env, batch_size=16), env)


def run_sac():
    import sac_pendulum

    env = pendulum()
    return online(small(sac_pendulum.make_agent, env, batch_size=16), env)


def run_dqn():
    import dqn_cartpole

    env = cartpole()
    keras.utils.set_random_seed(0)
    return online(dqn_cartpole.make_agent(env, 0, double=True), env)


def run_naf():
    import naf_pendulum

    env = pendulum()
    keras.utils.set_random_seed(0)
    return online(naf_pendulum.make_agent(env, 0), env, steps=400)


def run_sarsa():
    import sarsa_cartpole

    env = cartpole()
    keras.utils.set_random_seed(0)
    return online(sarsa_cartpole.make_agent(env, 0), env, steps=400)


def run_cem():
    import cem_cartpole

    env = cartpole()
    keras.utils.set_random_seed(0)
    return online(cem_cartpole.make_agent(env, 0), env, steps=1000)


def run_ddpg_vector():
    import ddpg_pendulum

    env = gym.make_vec("Pendulum-v1", num_envs=3, vectorization_mode="sync", max_episode_steps=100)
    agent = small(ddpg_pendulum.make_agent, pendulum(), batch_size=16)
    history = agent.fit(env, nb_steps=600, verbose=0, seed=0)
    test = agent.test(env, nb_episodes=3, verbose=0, seed=1)
    return digest(agent, history) + " " + digest(agent, test)


def run_dqn_vector():
    import dqn_cartpole

    env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=100)
    keras.utils.set_random_seed(0)
    agent = dqn_cartpole.make_agent(cartpole(), 0)
    history = agent.fit(env, nb_steps=400, verbose=0, seed=0, updates_per_vector_step=1)
    return digest(agent, history)


def run_td3bc_offline():
    from keras import layers

    from rl.agents import TD3BCAgent
    from rl.memory import SequentialMemory

    rng = np.random.default_rng(0)
    n = 2000
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    actions = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    rewards = -np.square(obs).sum(axis=1)
    terminals = np.zeros(n, bool)
    truncations = np.zeros(n, bool)
    truncations[99::100] = True
    keras.utils.set_random_seed(0)
    memory = SequentialMemory.from_arrays(obs, actions, rewards, terminals, truncations, limit=n)
    obs_in = keras.Input((1, 3))
    actor = keras.Model(obs_in, layers.Dense(1, activation="tanh")(layers.Dense(32, "relu")(layers.Flatten()(obs_in))))
    action_in = keras.Input((1,))
    critic_obs = keras.Input((1, 3))
    x = layers.Concatenate()([action_in, layers.Flatten()(critic_obs)])
    critic = keras.Model([action_in, critic_obs], layers.Dense(1)(layers.Dense(32, "relu")(x)))
    agent = TD3BCAgent(
        nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, memory=memory, batch_size=32
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    history = agent.fit_offline(
        500, verbose=0, log_interval=100, updates_per_call=50, action_space=gym.spaces.Box(-2.0, 2.0, (1,))
    )
    return digest(agent, history)


def run_ddpg_distributed():
    import ddpg_pendulum

    from rl import distributed

    agent = small(ddpg_pendulum.make_agent, pendulum(), batch_size=16)
    history = distributed.fit(
        agent, pendulum, nb_steps=600, num_workers=2, seed=0, backend="inprocess", steps_per_sample=50, verbose=0
    )
    return digest(agent, history)


RUNS = {name[4:]: fn for name, fn in sorted(globals().items()) if name.startswith("run_")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=sorted(RUNS), help="(default: all)")
    args = parser.parse_args(argv)
    print(describe())
    for name in args.runs:
        print(f"{name}: {RUNS[name]()}", flush=True)


if __name__ == "__main__":
    main()
