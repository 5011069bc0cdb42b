"""Train SARSA on CartPole (200-step episodes) with keras-rl's example settings, save its weights, test it.

python examples/sarsa_cartpole.py                  # 50 000 steps, seed 0
python examples/sarsa_cartpole.py --seed 1 --steps 20000

keras-rl's `sarsa_cartpole.py` configuration: three hidden layers of 16 ReLU units over the
flattened observation, a Boltzmann policy, 10 warm-up steps, Adam at 1e-3, one update per step
on the transition just made (SARSA keeps no replay memory).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from dqn_cartpole import build_model, main  # noqa: E402

from rl.agents import SARSAAgent  # noqa: E402
from rl.policy import BoltzmannQPolicy  # noqa: E402


def make_agent(env, seed):
    """The SARSA agent this example trains."""
    nb_actions = int(env.action_space.n)
    agent = SARSAAgent(
        model=build_model(env.observation_space.shape, nb_actions),
        nb_actions=nb_actions,
        nb_steps_warmup=10,
        policy=BoltzmannQPolicy(seed=seed),
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


if __name__ == "__main__":
    main(make=make_agent, name="sarsa", doc=__doc__)
