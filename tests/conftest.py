import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))


class CountingEnv(gym.Env):
    """A tiny env whose observation encodes (episode, step): obs = [1000 * episode + t, t].

    The action is a 1-D Box in [-2, 2]; the reward is the action's first component (so a good
    policy pushes it to the top). The episode terminates after `terminate_at` steps (if given);
    a time limit comes from gymnasium's TimeLimit wrapper or the loop's nb_max_episode_steps.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, terminate_at=None, obs_dim=2, render_mode=None, nb_actions=1):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, shape=(nb_actions,), dtype=np.float32)
        self.terminate_at = terminate_at
        self.render_mode = render_mode
        self.episode = -1
        self.t = 0
        self.obs_dim = obs_dim

    def _obs(self):
        obs = np.zeros(self.obs_dim, dtype=np.float32)
        obs[0] = 1000 * self.episode + self.t
        obs[1 % self.obs_dim] = self.t
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(np.asarray(action).ravel()[0]), terminated, False, {"t": self.t}

    def render(self):
        return np.zeros((4, 4, 3), dtype=np.uint8)


@pytest.fixture
def counting_env():
    return CountingEnv


def small_models(obs_shape, nb_actions=1, window_length=1, hidden=16, flatten=True, actor_layer=None):
    """A keras-rl style actor and critic (Flatten over a (window,) + obs input).

    `actor_layer`, if given, is applied after the actor's hidden layer.
    """
    shape = (window_length,) + tuple(obs_shape) if flatten else tuple(obs_shape)
    obs_in = keras.Input(shape=shape, name="obs")
    x = layers.Flatten()(obs_in) if flatten else obs_in
    x = layers.Dense(hidden, activation="relu")(x)
    if actor_layer is not None:
        x = actor_layer(x)
    x = layers.Dense(nb_actions, activation="tanh")(x)
    actor = keras.Model(obs_in, layers.Rescaling(2.0)(x), name="actor")
    action_in = keras.Input(shape=(nb_actions,), name="action")
    critic_obs_in = keras.Input(shape=shape, name="critic_obs")
    y = layers.Flatten()(critic_obs_in) if flatten else critic_obs_in
    y = layers.Concatenate()([action_in, y])
    y = layers.Dense(hidden, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(y), name="critic")
    return actor, critic, action_in


@pytest.fixture
def models():
    return small_models
