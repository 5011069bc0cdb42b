"""Train DQN on an Atari game (Breakout by default) with keras-rl's `dqn_atari.py` settings, then test it.

pip install -e ".[atari]"        # ale-py, which ships the game ROMs (nothing is downloaded at run time)
python examples/dqn_atari.py                                   # 1 750 000 steps, seed 0: days on a CPU
python examples/dqn_atari.py --steps 20000 --warmup 1000 --memory-limit 50000   # a short look
python examples/dqn_atari.py --mode test --weights dqn_Breakout_weights.h5f     # test saved weights
python examples/dqn_atari.py --mode random --test-steps 10000   # a uniformly random policy's test returns

keras-rl's configuration: frames reduced to 84 x 84 grey levels and stored as uint8, states of 4
frames, rewards clipped to [-1, 1]; Mnih et al.'s network (Conv 32 8x8/4, Conv 64 4x4/2, Conv 64
3x3/1, Dense 512, one output per action); epsilon annealed from 1.0 to 0.1 over 1 000 000 steps; a
1 000 000-frame memory; 50 000 warm-up steps; training every 4 steps; hard target updates every
10 000 steps; Huber loss with delta_clip=1; Adam at 2.5e-4. The game runs as keras-rl's
`BreakoutDeterministic-v4` did: 4 frames per action, no sticky actions.

Testing: keras-rl's example tests greedily (DQNAgent's default test policy; the policy's
`value_test=0.05` is never used), and a greedy Breakout player that never presses FIRE can wait for
the emulator's limit of 27 000 steps with a return of 0. `--test-eps 0.05` tests with epsilon 0.05
(Mnih et al.'s protocol) and `--test-steps` caps the test episodes. Test returns are sums of clipped
rewards (one point per brick in Breakout), as in keras-rl. `--mode random` tests a uniformly
random policy with the same protocol: the baseline a trained network must beat.

Measured on Breakout (a 2-core machine shared with other work, the run pinned to one core), seed 0:

    taskset -c 1 python examples/dqn_atari.py --steps 150000 --warmup 10000 --memory-limit 150000 \
        --anneal-steps 100000 --test-eps 0.05 --test-steps 10000 --seed 0 --verbose 2
    taskset -c 1 python examples/dqn_atari.py --mode random --test-steps 10000 --seed 0

Mean test return over 10 episodes (epsilon 0.05, at most 10 000 steps each): 0.1 after 150 000
steps, against 1.3 for a random policy: no learning shows in the tests at this scale (keras-rl's
run is 1 750 000 steps). Training episodes at epsilon 0.1 rose from 1.5 (100 000-110 000 steps) to
2.1 (140 000-150 000). Training took 58 minutes, at about 40 steps per second; the process held 1.4 GB
at 52 000 steps (each stored frame adds 7 KB).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from rl.agents import DQNAgent  # noqa: E402
from rl.callbacks import FileLogger, ModelIntervalCheckpoint  # noqa: E402
from rl.core import Processor  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.policy import EpsGreedyQPolicy, GreedyQPolicy, LinearAnnealedPolicy  # noqa: E402

INPUT_SHAPE = (84, 84)
WINDOW_LENGTH = 4


class AtariProcessor(Processor):
    """Grey 84 x 84 uint8 frames in memory, scaled to [0, 1] for the network; rewards clipped to [-1, 1]."""

    def __init__(self, frame_shape=(210, 160)):
        # Nearest-neighbour rows and columns of the 84 x 84 picture (no image library needed).
        self.rows = np.linspace(0, frame_shape[0] - 1, INPUT_SHAPE[0]).round().astype(np.intp)
        self.cols = np.linspace(0, frame_shape[1] - 1, INPUT_SHAPE[1]).round().astype(np.intp)

    def process_observation(self, observation):
        frame = np.asarray(observation)  # (210, 160): the emulator renders grey levels (obs_type="grayscale")
        return frame[self.rows][:, self.cols].astype(np.uint8)

    def process_state_batch(self, batch):
        return np.asarray(batch, dtype=np.float32) / 255.0  # kept as uint8 in memory: 4x less RAM

    def process_reward(self, reward):
        return float(np.clip(reward, -1.0, 1.0))


def make_env(game="Breakout", render_mode=None):
    """The game as keras-rl played it: 4 frames per action, no sticky actions, grey frames."""
    try:
        import ale_py
    except ImportError as e:
        raise SystemExit("This example needs ale-py: pip install -e '.[atari]' (or `pip install ale-py`)") from e
    gym.register_envs(ale_py)
    return gym.make(
        f"ALE/{game}-v5",
        obs_type="grayscale",
        frameskip=4,
        repeat_action_probability=0.0,
        full_action_space=False,
        render_mode=render_mode,
    )


def build_model(nb_actions):
    """Mnih et al. (2015)'s network over a (4, 84, 84) state, as in keras-rl's example."""
    state = keras.Input((WINDOW_LENGTH,) + INPUT_SHAPE)
    x = layers.Permute((2, 3, 1))(state)  # frames last: Keras' channels_last convolutions
    x = layers.Conv2D(32, 8, strides=4, activation="relu")(x)
    x = layers.Conv2D(64, 4, strides=2, activation="relu")(x)
    x = layers.Conv2D(64, 3, strides=1, activation="relu")(x)
    x = layers.Dense(512, activation="relu")(layers.Flatten()(x))
    return keras.Model(state, layers.Dense(nb_actions, activation="linear")(x), name="atari_q_network")


def make_agent(env, seed, memory_limit=1_000_000, warmup=50_000, anneal_steps=1_000_000, test_eps=None):
    """The agent this example trains; `test_eps=None` tests greedily (keras-rl), else epsilon-greedily."""
    nb_actions = int(env.action_space.n)
    test_policy = GreedyQPolicy() if test_eps is None else EpsGreedyQPolicy(eps=test_eps, seed=seed + 1000)
    policy = LinearAnnealedPolicy(
        EpsGreedyQPolicy(seed=seed), attr="eps", value_max=1.0, value_min=0.1, value_test=0.05, nb_steps=anneal_steps
    )
    agent = DQNAgent(
        model=build_model(nb_actions),
        nb_actions=nb_actions,
        policy=policy,
        test_policy=test_policy,
        memory=SequentialMemory(limit=memory_limit, window_length=WINDOW_LENGTH, seed=seed),
        processor=AtariProcessor(),
        nb_steps_warmup=warmup,
        gamma=0.99,
        target_model_update=10_000,
        train_interval=4,
        delta_clip=1.0,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=2.5e-4), metrics=["mae"])
    return agent


def main(argv=None):
    """Trains (or loads, or stands in a random policy), tests; returns the mean test return."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--mode", choices=["train", "test", "random"], default="train", help="random: test a uniformly random policy"
    )
    parser.add_argument("--game", default="Breakout", help="ALE game name (default: Breakout)")
    parser.add_argument("--steps", type=int, default=1_750_000, help="training steps (default: 1750000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--warmup", type=int, default=50_000, help="warm-up steps (default: 50000)")
    parser.add_argument(
        "--anneal-steps", type=int, default=1_000_000, help="steps epsilon takes from 1.0 to 0.1 (default: 1000000)"
    )
    parser.add_argument("--memory-limit", type=int, default=1_000_000, help="replay memory size (default: 1000000)")
    parser.add_argument("--weights", default=None, help="weights file (default: dqn_<game>_weights.h5f)")
    parser.add_argument("--test-episodes", type=int, default=10, help="test episodes (default: 10)")
    parser.add_argument("--test-eps", type=float, default=None, help="test epsilon (default: none, greedy)")
    parser.add_argument("--test-steps", type=int, default=None, help="steps per test episode (default: the game's)")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress lines, 2 one line per episode")
    args = parser.parse_args(argv)
    weights = args.weights or f"dqn_{args.game}_weights.h5f"

    keras.utils.set_random_seed(args.seed)
    env = make_env(args.game)
    if args.mode == "random":
        args.test_eps = 1.0  # every test action drawn uniformly; nothing is trained or loaded
    agent = make_agent(env, args.seed, args.memory_limit, args.warmup, args.anneal_steps, args.test_eps)
    if args.mode == "train":
        callbacks = [
            ModelIntervalCheckpoint(f"dqn_{args.game}_weights_{{step}}.h5f", interval=250_000),
            FileLogger(f"dqn_{args.game}_log.json", interval=10_000),
        ]
        agent.fit(
            env, nb_steps=args.steps, log_interval=10_000, verbose=args.verbose, seed=args.seed, callbacks=callbacks
        )
        agent.save_weights(weights, overwrite=True)
    elif args.mode == "test":
        agent.load_weights(weights)
    history = agent.test(
        make_env(args.game),
        nb_episodes=args.test_episodes,
        visualize=False,
        nb_max_episode_steps=args.test_steps,
        seed=args.seed + 1000,
    )
    mean_return = float(np.mean(history.history["episode_reward"]))
    print(f"Mean test return over {args.test_episodes} episodes: {mean_return:.1f}")
    return mean_return


if __name__ == "__main__":
    main()
