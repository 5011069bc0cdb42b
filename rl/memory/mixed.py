"""`MixedMemory`: offline data and new experience kept apart, each batch drawn from both in a fixed proportion."""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np

from rl.memory import state as saved
from rl.memory.prioritized import PrioritizedMemory
from rl.memory.rows import Batch
from rl.memory.sequential import SequentialMemory
from rl.util import check_int, check_number

__all__ = ["MixedMemory"]

_PARTS = ("offline", "online")


class MixedMemory:
    """Two replay memories used as one: a fixed dataset and the agent's new experience.

    The symmetric sampling of RLPD (Ball et al., "Efficient Online Reinforcement Learning with
    Offline Data", ICML 2023): the offline data stays apart from the transitions an agent stores
    while it acts, and each batch of `B` transitions holds `round(ratio * B)` (halves rounded up)
    drawn uniformly from `offline` followed by the rest drawn from `online`, whatever the sizes of
    the two memories. An agent uses it as any memory: `append` stores into `online`, and the
    offline data is never overwritten (a `SequentialMemory` that holds both would evict the
    dataset once its ring buffer is full, and draw from the two in proportion to their sizes).

    Each part draws with its own generator (its `seed`), so runs are reproducible and a
    checkpoint resumes exactly: `save` writes both parts and `ratio` into one `.npz` file.
    Either part may be a `PrioritizedMemory`: its share of a batch is drawn by priority, the
    agent's TD errors update the priorities of that share only, and the importance weights are
    those of the prioritized draw (`1` for a uniform part's share). n-step returns need the same
    `n_step` in both parts.

    `OffPolicyAgent.fit_offline` trains on the offline part while the online part holds no
    transition (the usual order: `fit_offline`, then `fit`), and refuses the memory afterwards.

    Args:
        offline: the dataset, a `SequentialMemory` (e.g. `SequentialMemory.from_arrays(...)`)
            or `PrioritizedMemory`.
        online: the memory new experience goes to, a `SequentialMemory` or `PrioritizedMemory`
            (another object than `offline`).
        ratio: the share of each batch drawn from `offline`, in `[0, 1]`: `0.5` is RLPD's
            symmetric sampling, `1` trains on the dataset alone, `0` on new experience alone.
            Defaults to `0.5`.

    Raises:
        TypeError: if a part is not a `SequentialMemory` (or `PrioritizedMemory`).
        ValueError: if `ratio` lies outside `[0, 1]`, the two parts are one object, or they
            differ in `window_length`, `n_step`, `gamma` (when both set), the observation shape
            or the action width (when both hold data).

    Example:

    >>> offline = SequentialMemory.from_arrays(**dataset, seed=0)
    >>> memory = MixedMemory(offline, SequentialMemory(limit=100_000, seed=1), ratio=0.5)
    >>> agent = TD3BCAgent(..., memory=memory)
    >>> agent.fit_offline(10_000)     # the dataset alone (the online part is empty)
    >>> agent.fit(env, nb_steps=10_000)  # half of each batch from the dataset, half from new steps
    """

    def __init__(self, offline: Any, online: Any, ratio: float = 0.5):
        for name, part in (("offline", offline), ("online", online)):
            if not isinstance(part, SequentialMemory):
                raise TypeError(
                    f"`{name}` must be a SequentialMemory or PrioritizedMemory. Received: {name}={part!r:.200}"
                )
        if offline is online:
            raise ValueError(
                "`offline` and `online` must be two memories: new experience would overwrite the dataset. "
                f"Received: the same object {offline!r:.100} twice"
            )
        self.offline = offline
        self.online = online
        self.ratio = ratio
        self._prioritized = isinstance(offline, PrioritizedMemory) or isinstance(online, PrioritizedMemory)
        for attribute in ("window_length", "n_step"):
            a, b = getattr(offline, attribute), getattr(online, attribute)
            if a != b:
                raise ValueError(
                    f"`offline` and `online` must have the same `{attribute}`. "
                    f"Received: offline.{attribute}={a}, online.{attribute}={b}"
                )
        if offline.gamma is not None and online.gamma is not None and offline.gamma != online.gamma:
            raise ValueError(
                "`offline` and `online` must have the same n-step `gamma`. "
                f"Received: offline.gamma={offline.gamma}, online.gamma={online.gamma}"
            )
        if offline.gamma is not None or online.gamma is not None:
            self.gamma = offline.gamma if offline.gamma is not None else online.gamma
        self._checked: tuple | None = None  # the storage shapes last found compatible
        self._check_shapes()
        self.last_indices = np.zeros(0, dtype=np.int64)
        self.last_weights = np.zeros(0, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"MixedMemory(offline={type(self.offline).__name__}(limit={self.offline.limit}), "
            f"online={type(self.online).__name__}(limit={self.online.limit}), ratio={self.ratio})"
        )

    # ------------------------------------------------------------------ settings
    @property
    def ratio(self) -> float:
        """The share of each batch drawn from `offline`, in `[0, 1]` (settable between batches)."""
        return self._ratio

    @ratio.setter
    def ratio(self, value: float) -> None:
        self._ratio = check_number("ratio", value, low=0.0, high=1.0)

    @property
    def window_length(self) -> int:
        """Observations per state (the same in both parts)."""
        return self.offline.window_length

    @property
    def ignore_episode_boundaries(self) -> bool:
        """The offline part's setting (what `fit_offline`'s sampler follows)."""
        return self.offline.ignore_episode_boundaries

    @property
    def n_step(self) -> int:
        """Steps per sampled transition (the same in both parts; setting it sets both)."""
        return self.offline.n_step

    @n_step.setter
    def n_step(self, value: int) -> None:
        value = check_int("n_step", value, minimum=1)
        self.offline.n_step = self.online.n_step = value

    @property
    def gamma(self) -> float | None:
        """The discount of the n-step sums (the same in both parts; setting it sets both)."""
        return self.offline.gamma

    @gamma.setter
    def gamma(self, value: float | None) -> None:
        value = None if value is None else check_number("gamma", value, low=0.0, high=1.0)
        self.offline.gamma = self.online.gamma = value

    @property
    def limit(self) -> int:
        """Slots of both parts together."""
        return self.offline.limit + self.online.limit

    @property
    def nb_entries(self) -> int:
        """Slots in use in both parts together."""
        return self.offline.nb_entries + self.online.nb_entries

    @property
    def nb_transitions(self) -> int:
        """Transitions of both parts together."""
        return self.offline.nb_transitions + self.online.nb_transitions

    @property
    def nbytes(self) -> int:
        """Bytes held by both parts' arrays."""
        return self.offline.nbytes + self.online.nbytes

    def split(self, batch_size: int) -> tuple[int, int]:
        """`(from offline, from online)` for a batch of `batch_size`: `round(ratio * batch_size)`
        (halves rounded up), and the rest.

        Raises:
            ValueError: if `batch_size` is not a positive integer.
        """
        b = check_int("batch_size", batch_size, minimum=1)
        k = min(b, math.floor(self._ratio * b + 0.5))
        return k, b - k

    # ------------------------------------------------------------------ writing
    def append(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        next_observation: Any = None,
        truncated: bool = False,
        training: bool = True,
    ) -> None:
        """Stores a transition in `online` (see `SequentialMemory.append`); the offline data never changes.

        Raises:
            ValueError: if `next_observation` is missing (keras-rl's four-argument `append` is
                not supported here).
        """
        if next_observation is None:
            raise ValueError(
                "MixedMemory.append needs `next_observation` (keras-rl's four-argument form is not supported). "
                "Received: next_observation=None"
            )
        self.online.append(observation, action, reward, terminal, next_observation, truncated, training)

    def end_episode(self) -> None:
        """Ends the online part's open episode (see `SequentialMemory.end_episode`)."""
        self.online.end_episode()

    def get_recent_state(self, current_observation: Any) -> list:
        """keras-rl's recent state, from the online part (see `SequentialMemory.get_recent_state`)."""
        return self.online.get_recent_state(current_observation)

    # ----------------------------------------------------------------- sampling
    def _check_shapes(self) -> None:
        """Refuses parts whose stored observations or actions differ in shape (once both hold data)."""
        a, b = self.offline, self.online
        if a._observations is None or b._observations is None:
            return
        if self._checked is not None and self._checked[0] is a._observations and self._checked[1] is b._observations:
            return  # the storage arrays checked last time (replaced only when a part is loaded or refilled)
        key = (a._observations.shape[1:], a._layout.width, b._observations.shape[1:], b._layout.width)
        if key[0] != key[2]:
            raise ValueError(
                "`offline` and `online` must store observations of one shape. "
                f"Received: offline observations of shape {key[0]}, online observations of shape {key[2]}"
            )
        if key[1] != key[3]:
            raise ValueError(
                "`offline` and `online` must store actions of one width. "
                f"Received: offline actions of {key[1] - 2} values, online actions of {key[3] - 2} values"
            )
        self._checked = (a._observations, b._observations)

    def _prepare(self, batch_size: int) -> tuple[int, int]:
        """The split of a batch, after every check that could refuse it (so a refused call draws nothing)."""
        k, m = self.split(batch_size)
        self._check_shapes()
        for name, part, n in (("offline", self.offline, k), ("online", self.online, m)):
            if n and (n > part.limit or not part._nb_valid):
                try:
                    part._check_batch_size(n)
                except ValueError as e:
                    raise ValueError(
                        f"The {name} memory cannot give its {n} of the batch's {batch_size} transitions "
                        f"(ratio={self._ratio}): {e}"
                    ) from e
        return k, m

    def _record(self, k: int, m: int) -> None:
        """Keeps the last draw's slots and importance weights (`-1` and `1` for a uniform part's share)."""
        if not self._prioritized:
            return
        indices, weights = [], []
        for part, n, offset in ((self.offline, k, 0), (self.online, m, self.offline.limit)):
            if not n:
                continue
            if isinstance(part, PrioritizedMemory):
                indices.append(part.last_indices + offset)
                weights.append(part.last_weights)
            else:
                indices.append(np.full(n, -1, dtype=np.int64))
                weights.append(np.ones(n, dtype=np.float32))
        self.last_indices = np.concatenate(indices)
        self.last_weights = np.concatenate(weights)

    def sample(self, batch_size: int) -> Batch:
        """Draws `round(ratio * batch_size)` transitions from `offline`, then the rest from `online`.

        Returns:
            One `Batch`: the offline transitions first. With a prioritized part,
            `last_indices` and `last_weights` then describe the draw.

        Raises:
            ValueError: if `batch_size` is not a positive integer, or a part that has to give
                transitions cannot (empty, or its share exceeds its `limit`); nothing is drawn then.
        """
        k, m = self._prepare(batch_size)
        batches = []
        if k:
            batches.append(self.offline._sample(k))
        if m:
            batches.append(self.online._sample(m))
        self._record(k, m)
        if len(batches) == 1:
            return batches[0]
        return Batch(*(np.concatenate(fields) for fields in zip(*batches)))

    def sample_into(self, batch_size: int, state0: np.ndarray, state1: np.ndarray, rows: np.ndarray) -> None:
        """Samples like `sample` (the same draws), writing into arrays you provide (see
        `SequentialMemory.sample_into`): rows `[:k]` from `offline`, `[k:]` from `online`."""
        k, m = self._prepare(batch_size)
        if k:
            self.offline.sample_into(k, state0[:k], state1[:k], rows[:k])
        if m:
            self.online.sample_into(m, state0[k:], state1[k:], rows[k:])
        self._record(k, m)

    @property
    def update_priorities(self) -> Any:
        """`update_priorities(indices, td_errors)` when a part is a `PrioritizedMemory`, else `None`
        (so that an agent weights its losses only when a part has priorities).

        The function takes `last_indices` as the draw gave them: slots of `offline` as they are,
        slots of `online` shifted by `offline.limit`, and `-1` (skipped) for a uniform part's share.
        """
        if not self._prioritized:
            return None
        return self._update_priorities

    def _update_priorities(self, indices: Any, td_errors: Any) -> None:
        idx = np.asarray(indices)
        err = np.asarray(td_errors, dtype=np.float64).reshape(-1)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or err.shape != idx.shape:
            raise ValueError(
                "`indices` must be a 1-D integer array as long as `td_errors`. "
                f"Received: indices.shape={idx.shape}, td_errors.shape={np.shape(td_errors)}"
            )
        split = self.offline.limit
        for part, lo, hi in ((self.offline, 0, split), (self.online, split, split + self.online.limit)):
            mine = (idx >= lo) & (idx < hi)
            if isinstance(part, PrioritizedMemory) and mine.any():
                part.update_priorities(idx[mine] - lo, err[mine])

    def sampling_arrays(self) -> dict[str, np.ndarray]:
        """The offline part's storage, for `fit_offline`'s sampler (see `SequentialMemory.sampling_arrays`).

        Raises:
            TypeError: once the online part holds transitions (the sampler would leave them out),
                or as `SequentialMemory.sampling_arrays` does.
        """
        if self.online.nb_transitions:
            raise TypeError(
                "fit_offline samples the offline part of a MixedMemory only, and this one's online part holds "
                f"{self.online.nb_transitions} transitions it would leave out. Train offline before `fit`, or on "
                f"`memory.offline` alone. Received: online.nb_transitions={self.online.nb_transitions}"
            )
        return self.offline.sampling_arrays()

    # ------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        """The ratio and each part's class name and constructor arguments."""
        return {
            "ratio": self._ratio,
            **{
                name: {"class_name": type(part).__name__, "config": part.get_config()}
                for name, part in zip(_PARTS, (self.offline, self.online))
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MixedMemory:
        """An empty memory of the same configuration (`get_config()`'s output)."""
        classes = {"SequentialMemory": SequentialMemory, "PrioritizedMemory": PrioritizedMemory}
        parts = []
        for name in _PARTS:
            entry = config[name]
            if entry.get("class_name") not in classes:
                raise ValueError(
                    f"`{name}` must be a SequentialMemory or PrioritizedMemory. "
                    f"Received: class_name={entry.get('class_name')!r}"
                )
            parts.append(classes[entry["class_name"]].from_config(entry["config"]))
        return cls(*parts, ratio=config["ratio"])

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes both parts (contents, sampling states, priorities) and `ratio` to one `.npz` file, atomically.

        The file holds `mixed_ratio` and each part's arrays (see `rl.memory.state`) under the
        prefixes `offline.` and `online.`; numpy's format without pickled objects.
        """
        arrays = {"mixed_ratio": np.array([self._ratio], dtype=np.float64)}
        for name, part in zip(_PARTS, (self.offline, self.online)):
            arrays.update({f"{name}.{key}": value for key, value in part._state_arrays().items()})
        saved.write_npz(filepath, arrays)

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, without changing the memory.

        Each part is checked as its own `read_state` checks it (against that part's `limit`
        and `window_length`).

        Returns:
            The state, for `set_state`.

        Raises:
            ValueError: naming the file (and the part), if it is missing, not a `MixedMemory`
                file, or a part's contents are wrong.
        """
        filepath = os.fspath(filepath)
        try:
            with np.load(filepath, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as e:  # missing, truncated or damaged: numpy and zipfile raise many types
            raise ValueError(f"The memory file is missing or damaged ({e}). Received: filepath={filepath!r}") from e
        ratio = arrays.pop("mixed_ratio", None)
        if ratio is None:
            raise ValueError(f"Not a MixedMemory file: `mixed_ratio` is missing. Received: filepath={filepath!r}")
        if ratio.shape != (1,) or ratio.dtype != np.float64 or not 0.0 <= float(ratio[0]) <= 1.0:
            raise ValueError(
                "The memory file is invalid: `mixed_ratio` must be one float64 in [0, 1]. "
                f"Received: mixed_ratio={ratio.tolist()!r} in filepath={filepath!r}"
            )
        state: dict[str, Any] = {"ratio": float(ratio[0])}
        with tempfile.TemporaryDirectory() as tmp:
            for name, part in zip(_PARTS, (self.offline, self.online)):
                prefix = f"{name}."
                part_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                path = os.path.join(tmp, f"{name}.npz")
                with open(path, "wb") as f:
                    np.savez(f, **part_arrays)
                try:
                    state[name] = part.read_state(path)
                except ValueError as e:
                    raise ValueError(
                        f"The {name} part of the memory file is invalid: {e} (filepath={filepath!r})"
                    ) from e
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces both parts' contents and sampling states, and `ratio`, as `read_state` returned them."""
        self.offline.set_state(state["offline"])
        self.online.set_state(state["online"])
        self._ratio = state["ratio"]
        self._checked = None

    def load(self, filepath: str | os.PathLike) -> None:
        """Restores what `save` wrote: `set_state(read_state(filepath))`; nothing changes unless the file is valid."""
        self.set_state(self.read_state(filepath))
