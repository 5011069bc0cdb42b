"""A light check of an install: `python -m pytest -m smoke` runs these in about a minute.

They need only the package with its `cpu` (or `gpu`) extra and pytest: every public module
imports, a DDPG agent on small Keras models of your own trains a few hundred steps on Pendulum,
acts, and its weights and a full checkpoint load back into a new agent that then acts the same.
The full suite (`python -m pytest -q`) runs them too.
"""

import importlib
import importlib.metadata
import pkgutil
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras import layers

import rl
from rl.agents import DDPGAgent
from rl.memory import SequentialMemory
from rl.random import OrnsteinUhlenbeckProcess

pytestmark = pytest.mark.smoke


def test_every_public_module_imports():
    names = [
        info.name
        for info in pkgutil.walk_packages(rl.__path__, "rl.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    assert {"rl.agents", "rl.core", "rl.memory", "rl.callbacks", "rl.engine", "rl.loops"} <= set(names)
    for name in names:
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", ()):
            assert hasattr(module, public), f"{name}.__all__ names {public!r}, which the module lacks"


def test_without_tensorflow_the_import_error_names_the_extra_to_install():
    # `pip install keras-rl3` without an extra installs no TensorFlow; the error must say what to do.
    code = "import sys; sys.modules['tensorflow'] = None; import rl"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: keras-rl3 trains on TensorFlow"), result.stderr[-2000:]
    assert '".[cpu]"' in last and "keras-rl3[cpu]" in last


def test_installed_version_is_the_package_version():
    try:
        installed = importlib.metadata.version("keras-rl3")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("keras-rl3 is imported from a source tree without being installed")
    assert installed == rl.__version__


def pendulum_agent(env, seed=0):
    """keras-rl's way: your own actor and critic, a replay memory and a noise process."""
    keras.utils.set_random_seed(seed)
    nb_actions = env.action_space.shape[0]
    obs_in = keras.Input((1,) + env.observation_space.shape)
    x = layers.Dense(32, activation="relu")(layers.Flatten()(obs_in))
    actor = keras.Model(obs_in, layers.Rescaling(2.0)(layers.Dense(nb_actions, activation="tanh")(x)))
    action_in = keras.Input((nb_actions,))
    critic_obs_in = keras.Input((1,) + env.observation_space.shape)
    y = layers.Concatenate()([action_in, layers.Flatten()(critic_obs_in)])
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(layers.Dense(32, activation="relu")(y)))
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=10_000, window_length=1, seed=seed),
        random_process=OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, sigma=0.3, seed=seed),
        nb_steps_warmup_critic=50,
        nb_steps_warmup_actor=50,
        batch_size=32,
        target_model_update=0.005,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An agent trained 300 steps on Pendulum-v1, its weights and a checkpoint saved."""
    folder = tmp_path_factory.mktemp("smoke")
    env = gym.make("Pendulum-v1")
    agent = pendulum_agent(env)
    history = agent.fit(env, nb_steps=300, verbose=0, nb_max_episode_steps=100, seed=0)
    agent.save_weights(str(folder / "ddpg.weights.h5"), overwrite=True)
    agent.save_checkpoint(folder / "checkpoint", env=env)
    return agent, env, history, folder


def test_an_agent_trains_a_few_steps_on_pendulum(trained):
    agent, env, history, _ = trained
    assert agent.step == 300
    rewards = history.history["episode_reward"]
    assert len(rewards) == 3 and np.all(np.isfinite(rewards))
    result = agent.test(env, nb_episodes=1, visualize=False, nb_max_episode_steps=20, verbose=0)
    assert np.isfinite(result.history["episode_reward"]).all()


def test_weights_and_checkpoints_load_into_a_new_agent(trained):
    agent, env, _, folder = trained
    observation = np.asarray(env.observation_space.sample(), dtype=np.float32)
    expected = np.asarray(agent.forward(observation))

    from_weights = pendulum_agent(gym.make("Pendulum-v1"), seed=1)
    from_weights.load_weights(str(folder / "ddpg.weights.h5"))
    np.testing.assert_allclose(np.asarray(from_weights.forward(observation)), expected, rtol=1e-6, atol=1e-6)

    resumed_env = gym.make("Pendulum-v1")
    resumed = pendulum_agent(resumed_env, seed=2)
    resumed.load_checkpoint(folder / "checkpoint", env=resumed_env)
    assert resumed.step == 300
    np.testing.assert_allclose(np.asarray(resumed.forward(observation)), expected, rtol=1e-6, atol=1e-6)
    resumed.fit(resumed_env, nb_steps=50, verbose=0, nb_max_episode_steps=100)  # 50 more steps
    assert resumed.step == 350
