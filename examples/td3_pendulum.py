"""Train TD3 on Pendulum-v1, save its weights, then test it without exploration noise.

python examples/td3_pendulum.py                  # 20 000 steps, seed 0
python examples/td3_pendulum.py --seed 1 --steps 30000 --render
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from ddpg_pendulum import build_models  # noqa: E402  (the same actor and critic as the DDPG example)
from ddpg_pendulum import main as run  # noqa: E402

from rl.agents import TD3Agent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.random import GaussianWhiteNoiseProcess  # noqa: E402


def make_agent(env, seed, hidden=(256, 256), batch_size=64):
    """The agent this example trains: the user's critic is cloned into twin critics."""
    nb_actions = env.action_space.shape[0]
    high = float(env.action_space.high[0])
    actor, critic, action_input = build_models(env.observation_space.shape, nb_actions, high, hidden)
    agent = TD3Agent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=SequentialMemory(limit=100_000, window_length=1, seed=seed),
        batch_size=batch_size,
        nb_steps_warmup_critic=1000,
        nb_steps_warmup_actor=1000,
        random_process=GaussianWhiteNoiseProcess(sigma=0.1 * high, size=nb_actions, seed=seed),
        gamma=0.99,
        target_model_update=0.005,
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


def main(argv=None):
    return run(argv, make=make_agent, name="td3", doc=__doc__)


if __name__ == "__main__":
    main()
