"""Train PPO on Pendulum-v1 with 4 vector environments, save its weights, test it with the mean action.

python examples/ppo_pendulum.py                   # 200 000 steps, 4 environments, seed 0
python examples/ppo_pendulum.py --seed 1 --steps 100000 --envs 8

The settings are the RL Zoo's for Pendulum-v1 where this library has them: 4 environments, rollouts
of 1 024 steps each, minibatches of 64, 10 epochs, gamma 0.9, GAE lambda 0.95, learning rate 1e-3,
clip range 0.2, no entropy bonus. The Zoo also uses generalized state-dependent exploration and
normalizes observations and rewards; this example uses a plain Gaussian policy with a learned
state-independent standard deviation and the raw observations and rewards.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from ppo_cartpole import build_models  # noqa: E402
from ppo_cartpole import main as run  # noqa: E402

from rl.agents import PPOAgent  # noqa: E402


def make_agent(env, seed):
    """The agent this example trains: a Gaussian policy (one mean per action, a learned log std)."""
    space = env.single_action_space if hasattr(env, "single_action_space") else env.action_space
    obs_space = env.single_observation_space if hasattr(env, "single_observation_space") else env.observation_space
    actor, critic = build_models(obs_space.shape, space.shape[0])
    agent = PPOAgent(
        actor,
        critic,
        space,
        n_steps=1024,
        batch_size=64,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-5))
    return agent


def main(argv=None):
    return run(argv, make=make_agent, env_id="Pendulum-v1", doc=__doc__, default_steps=200_000, default_envs=4)


if __name__ == "__main__":
    main()
