"""Train a dueling DQN on CartPole (200-step episodes) with keras-rl's example settings, then test it.

python examples/duel_dqn_cartpole.py                      # 50 000 steps, seed 0, dueling_type='avg'
python examples/duel_dqn_cartpole.py --seed 2 --dueling-type max

keras-rl's `duel_dqn_cartpole.py` configuration: the same 3 x 16 ReLU network, whose last Dense
layer is replaced by a value-and-advantage head (`enable_dueling_network=True`), a Boltzmann policy,
a 50 000-transition memory, 10 warm-up steps, soft target updates with tau = 0.01, Adam at 1e-3.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from dqn_cartpole import build_model, main  # noqa: E402

from rl.agents import DQNAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.policy import BoltzmannQPolicy  # noqa: E402


def make_agent(env, seed, dueling_type="avg"):
    """The dueling agent this example trains."""
    nb_actions = int(env.action_space.n)
    agent = DQNAgent(
        model=build_model(env.observation_space.shape, nb_actions),
        nb_actions=nb_actions,
        memory=SequentialMemory(limit=50_000, window_length=1, seed=seed),
        nb_steps_warmup=10,
        enable_dueling_network=True,
        dueling_type=dueling_type,
        target_model_update=1e-2,
        policy=BoltzmannQPolicy(seed=seed),
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
    return agent


if __name__ == "__main__":
    main(make=make_agent, name="duel_dqn", doc=__doc__, dueling=True)
