"""`RolloutBuffer`: the experience an on-policy agent gathers between two updates.

An on-policy agent (`rl.agents.on_policy.OnPolicyAgent`) acts `n_steps` times in each of `n_envs`
environments, then learns from those `n_steps * n_envs` steps once and forgets them. Each row `t`
holds, for every environment, the observation acted on, the action taken, and the step's outcome:
reward, whether the episode terminated, whether it ended (terminated or truncated), the observation
after the step (an episode's real final observation where it ended, so that a truncated episode
bootstraps from it) and whether the step counts (`valid`: a vector environment's reset steps, which
take no action, do not).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["RolloutBuffer"]

_FIELDS = ("observations", "actions", "rewards", "terminated", "ended", "next_observations", "valid")


class RolloutBuffer:
    """Fixed-size storage of one rollout: `n_steps` rows of `n_envs` environments.

    Args:
        n_steps: steps per environment in a rollout, >= 1.
        n_envs: environments acting side by side, >= 1.
        obs_shape: one observation's shape.
        action_shape: one action's shape (`()` for a discrete action).
        action_dtype: the actions' dtype (`int64` for discrete actions, `float32` otherwise).
    """

    def __init__(self, n_steps: int, n_envs: int, obs_shape: tuple, action_shape: tuple, action_dtype: Any):
        self.n_steps, self.n_envs = int(n_steps), int(n_envs)
        self.obs_shape, self.action_shape = tuple(obs_shape), tuple(action_shape)
        t, n = self.n_steps, self.n_envs
        self.observations = np.zeros((t, n) + self.obs_shape, np.float32)
        self.next_observations = np.zeros((t, n) + self.obs_shape, np.float32)
        self.actions = np.zeros((t, n) + self.action_shape, action_dtype)
        self.rewards = np.zeros((t, n), np.float32)
        self.terminated = np.zeros((t, n), bool)
        self.ended = np.zeros((t, n), bool)
        self.valid = np.zeros((t, n), bool)
        self.pos = 0  # rows complete (each has its observation, action and outcome)

    @property
    def full(self) -> bool:
        """Whether every row holds a complete step."""
        return self.pos >= self.n_steps

    def fits(self, n_envs: int, obs_shape: tuple, action_shape: tuple) -> bool:
        """Whether this buffer stores steps of `n_envs` environments with these shapes."""
        return (self.n_envs, self.obs_shape, self.action_shape) == (n_envs, tuple(obs_shape), tuple(action_shape))

    def add_action(self, observations: np.ndarray, actions: np.ndarray) -> None:
        """Writes the observations acted on and the actions taken into the current row."""
        self.observations[self.pos] = observations
        self.actions[self.pos] = actions

    def add_outcome(
        self,
        rewards: np.ndarray,
        terminated: np.ndarray,
        ended: np.ndarray,
        next_observations: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Completes the current row with the step's outcome and moves to the next one."""
        i = self.pos
        self.rewards[i] = rewards
        self.terminated[i] = terminated
        self.ended[i] = ended
        self.next_observations[i] = next_observations
        self.valid[i] = valid
        self.pos = i + 1

    def clear(self) -> None:
        """Starts a new rollout (the rows are overwritten as it fills)."""
        self.pos = 0

    # ------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> None:
        """Writes the rows gathered so far (and the buffer's shapes) to the `.npz` file `path`."""
        rows = {name: getattr(self, name)[: self.pos] for name in _FIELDS}
        meta = np.array([self.n_steps, self.n_envs, self.pos], np.int64)
        with open(path, "wb") as f:
            np.savez(f, meta=meta, **rows)

    @staticmethod
    def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
        """Reads what `save` wrote; raises a `ValueError` naming `path` if it is missing or damaged."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as e:  # missing, truncated or damaged file
            raise ValueError(f"The rollout file {path} is missing or damaged ({e}).") from e
        if set(arrays) != {"meta", *_FIELDS} or arrays["meta"].shape != (3,):
            raise ValueError(f"The rollout file {path} does not hold a rollout. Received: keys {sorted(arrays)}")
        return arrays

    def check(self, arrays: dict[str, np.ndarray], path: str | os.PathLike) -> None:
        """Raises a `ValueError` naming `path` if `arrays` (from `read`) do not fit this buffer."""
        n_steps, n_envs, pos = (int(x) for x in arrays["meta"])
        if (n_steps, n_envs) != (self.n_steps, self.n_envs) or not 0 <= pos < self.n_steps:
            raise ValueError(
                f"The rollout in {path} has n_steps={n_steps}, n_envs={n_envs} and {pos} rows; this agent gathers "
                f"n_steps={self.n_steps} in {self.n_envs} environment(s)."
            )
        for name in _FIELDS:
            want = (pos,) + getattr(self, name).shape[1:]
            if arrays[name].shape != want:
                raise ValueError(f"The rollout's {name} in {path} have shape {arrays[name].shape}, expected {want}.")

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Puts back the rows `read` returned (checked by `check`)."""
        pos = int(arrays["meta"][2])
        for name in _FIELDS:
            getattr(self, name)[:pos] = arrays[name]
        self.pos = pos
