"""Vectorized environments: `fit` and `test` on a `gymnasium.vector.VectorEnv`.

The source lives in `rl.loops.vector` (see its docstring for what a vector run counts and
reports); this module keeps the names it has always exported.
"""

from rl.loops.vector import autoreset_mode, is_vector_env, run_vector

__all__ = ["autoreset_mode", "is_vector_env", "run_vector"]
