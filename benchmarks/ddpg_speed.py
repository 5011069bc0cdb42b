"""DDPG training speed on Pendulum-v1, ours and optionally Stable-Baselines3: `agents_speed.py --algo ddpg`.

Kept for the command lines quoted in `docs/benchmarks.md`; every option is `agents_speed.py`'s
(see its docstring for the settings), for example:

    python benchmarks/ddpg_speed.py --setting large --steps 20000 --seeds 0 1 2 --vs sb3
    python benchmarks/ddpg_speed.py --setting small --steps 20000 --seeds 0 1 2 --vs sb3 --threads 1
"""

from __future__ import annotations

import sys

import agents_speed

if __name__ == "__main__":
    sys.argv[1:1] = ["--algo", "ddpg"]  # an explicit --algo later on the line still wins
    agents_speed.main()
