"""`EpisodeParameterMemory`: parameter vectors with their episodes' returns, the memory of `CEMAgent`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rl.memory import state as saved
from rl.memory.keras_rl import Memory
from rl.util import check_int, check_number, warn_at_caller

__all__ = ["EpisodeParameterMemory"]


class EpisodeParameterMemory(Memory):
    """Parameter vectors, each with the total reward of the episode it played: `CEMAgent`'s memory.

    While an episode runs, `append` adds up its rewards; `finalize_episode(params)` stores the
    parameters the episode was played with and its total reward, in a ring buffer of `limit`
    episodes (the oldest is dropped first). `sample` draws stored episodes uniformly.

    Args:
        limit: number of episodes kept, >= 1.
        window_length: number of consecutive observations that make one state (the agent
            builds its states with it; `get_recent_state` returns them). Defaults to `1`.
        ignore_episode_boundaries: whether `get_recent_state` may reach into the previous
            episode. Defaults to `False`.
        seed: seed of the sampling generator. Defaults to `None` (fresh entropy).

    Raises:
        TypeError, ValueError: naming the argument, for a non-integer or non-positive `limit`
            or `window_length`.

    Example:

    >>> memory = EpisodeParameterMemory(limit=1000, window_length=1, seed=0)
    >>> memory.append(observation, action, reward=1.0, terminal=False)
    >>> memory.finalize_episode(params)           # params: the flat parameter vector played
    >>> params_batch, returns = memory.sample(50)
    """

    def __init__(
        self, limit: int, window_length: int = 1, ignore_episode_boundaries: bool = False, seed: int | None = None
    ):
        super().__init__(window_length, ignore_episode_boundaries)
        self.limit = check_int("limit", limit, minimum=1)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._params: np.ndarray | None = None  # (limit, nb_params) float32, allocated by the first episode
        self._returns = np.zeros(self.limit, dtype=np.float64)
        self._next = 0  # slot written next
        self._size = 0  # slots in use
        self._episode_reward = 0.0  # the running episode's rewards so far

    @property
    def nb_entries(self) -> int:
        """Number of episodes stored."""
        return self._size

    @property
    def episode_reward(self) -> float:
        """The sum of the rewards appended since the last finished episode."""
        return self._episode_reward

    def append(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        training: bool = True,
        truncated: bool = False,
        next_observation: Any = None,
    ) -> None:
        """Adds `reward` to the running episode's total (when `training`).

        Takes the arguments of a transition, as other memories do; only `reward` is kept, and
        the last `window_length` observations for `get_recent_state`.

        Args:
            observation: the observation acted on (not stored).
            action: the action taken (not stored).
            reward: the step's reward.
            terminal: whether the episode terminated (not stored: `finalize_episode` ends it).
            training: whether the step belongs to training; other steps are not counted.
                Defaults to `True`.
            truncated: whether a time limit cut the episode (not stored). Defaults to `False`.
            next_observation: the next observation (not stored). Defaults to `None`.

        Raises:
            ValueError: if `reward` is not a finite number.
        """
        if training:
            self._episode_reward += check_number("reward", reward)
        super().append(observation, action, reward, bool(terminal or truncated), training)

    def finalize_episode(self, params: np.ndarray) -> None:
        """Stores the running episode: `params` (the parameters it was played with) and its total reward.

        Args:
            params: a 1-D array of parameters, the same size for every episode.

        Raises:
            ValueError: if `params` is not a finite 1-D array of the size stored before.
        """
        params = np.asarray(params)
        if params.ndim != 1 or params.dtype.kind not in "biuf" or not np.isfinite(params).all():
            raise ValueError(
                f"`params` must be a finite 1-D array of numbers. Received: params of shape {params.shape}, "
                f"dtype {params.dtype}"
            )
        if self._params is None:
            self._params = np.zeros((self.limit, params.size), dtype=np.float32)
        elif params.size != self._params.shape[1]:
            raise ValueError(
                f"`params` must have the size of the stored ones ({self._params.shape[1]}). "
                f"Received: params of shape {params.shape}"
            )
        self._params[self._next] = params
        self._returns[self._next] = self._episode_reward
        self._next = (self._next + 1) % self.limit
        self._size = min(self._size + 1, self.limit)
        self._episode_reward = 0.0

    def end_episode(self) -> None:
        """Abandons the running episode (a run stopped in its middle): its rewards are forgotten."""
        self._episode_reward = 0.0

    def sample(self, batch_size: int, batch_idxs: Any = None) -> tuple[list[np.ndarray], list[float]]:
        """Draws stored episodes uniformly: without replacement when `batch_size <= nb_entries`,
        with replacement (and a warning) otherwise.

        Args:
            batch_size: number of episodes, >= 1.
            batch_idxs: the episodes to return instead of a random draw, as indices in
                `[0, nb_entries)`, oldest first. Defaults to `None`.

        Returns:
            `(params, returns)`: a list of `batch_size` parameter vectors and the list of
            their episodes' total rewards.

        Raises:
            ValueError: if the memory is empty, or `batch_idxs` does not hold `batch_size`
                indices in range.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if self._size == 0:
            raise ValueError(
                "The memory holds no finished episode yet: call finalize_episode first. "
                f"Received: batch_size={batch_size}"
            )
        if batch_idxs is None:
            if batch_size <= self._size:
                idx = self.rng.choice(self._size, size=batch_size, replace=False)
            else:
                warn_at_caller(
                    f"Only {self._size} episodes are stored, fewer than batch_size={batch_size}: sampling with "
                    "replacement. A longer warm-up avoids it.",
                )
                idx = self.rng.integers(0, self._size, size=batch_size)
        else:
            idx = np.asarray(batch_idxs)
            if idx.shape != (batch_size,) or idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= self._size).any():
                raise ValueError(
                    f"`batch_idxs` must hold batch_size={batch_size} integers in [0, {self._size}). "
                    f"Received: batch_idxs={batch_idxs!r:.200}"
                )
        slots = (idx + (self._next if self._size == self.limit else 0)) % self.limit  # oldest first
        return [self._params[s].copy() for s in slots], [float(self._returns[s]) for s in slots]

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {**super().get_config(), "limit": self.limit, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EpisodeParameterMemory:
        """Creates an empty memory from `get_config()`'s output."""
        return cls(**config)

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes the memory's contents and sampling state to a `.npz` file, atomically (no pickles)."""
        saved.write_npz(filepath, saved.episode_arrays(self))

    def load(self, filepath: str | os.PathLike) -> None:
        """Restores what `save` wrote: `set_state(read_state(filepath))`.

        Raises:
            ValueError: if the file is missing, damaged, or does not fit this memory.
        """
        self.set_state(self.read_state(filepath))

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, without changing the memory.

        Returns:
            The memory's state, for `set_state`.

        Raises:
            ValueError: naming the file and the field, if anything is missing or wrong.
        """
        return saved.read_episode_state(filepath, self.limit, self.window_length)

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the memory's contents and sampling state with `state`, as `read_state` returned it."""
        self._next, self._size = state["next"], state["size"]
        self._returns = state["returns"]
        self._episode_reward = state["episode_reward"]
        self._params = state["params"]
        self.rng.bit_generator.state = state["rng_state"]
