"""What a callback that may touch weights costs per step: the models brought up to date before its
hook and the training copy refreshed after it (see `rl.callbacks.Callback.touches_weights`).

Trains the same seeded DDPG on Pendulum-v1 three times in this process, one after the other: without
callbacks, with a callback that overrides `on_step_end` (so the run copies the weights around it),
and with the same callback declaring `touches_weights = False`. Prints steps/s of each and the cost
per hook call.

    python benchmarks/callback_weights.py                      # [256, 256], 3 000 steps
    python benchmarks/callback_weights.py --hidden 64 64 --steps 5000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples"), os.path.dirname(os.path.abspath(__file__))]

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
from machine import describe  # noqa: E402

from rl.callbacks import Callback  # noqa: E402


class StepCounter(Callback):
    """Counts steps: touches no weights, but does not say so."""

    def __init__(self):
        self.calls = 0

    def on_step_end(self, step, logs=None):
        self.calls += 1


class DeclaredStepCounter(StepCounter):
    touches_weights = False


def timed(callbacks, hidden, steps):
    import ddpg_pendulum

    keras.utils.set_random_seed(0)
    env = gym.make("Pendulum-v1")
    agent = ddpg_pendulum.make_agent(env, 0, hidden=tuple(hidden))
    agent.fit(env, nb_steps=200, verbose=0, seed=0)  # traces and compiles the step
    start = time.perf_counter()
    agent.fit(env, nb_steps=steps, verbose=0, callbacks=callbacks)
    return steps / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="(default: 256 256)")
    parser.add_argument("--steps", type=int, default=3000, help="timed steps per run (default: 3000)")
    args = parser.parse_args(argv)
    print(describe())
    plain = timed([], args.hidden, args.steps)
    guarded = timed([StepCounter()], args.hidden, args.steps)
    declared = timed([DeclaredStepCounter()], args.hidden, args.steps)
    print(f"DDPG {args.hidden}, {args.steps} steps after warm-up:")
    for label, rate in (
        ("no callback", plain),
        ("on_step_end, touches_weights=True", guarded),
        ("on_step_end, touches_weights=False", declared),
    ):
        extra = "" if rate is plain else f"  ({1e6 / rate - 1e6 / plain:+.0f} us/step)"
        print(f"  {label:<36} {rate:8.1f} steps/s{extra}")


if __name__ == "__main__":
    main()
