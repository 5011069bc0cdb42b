"""Datasets in and out of a `SequentialMemory`: flat per-step arrays, Minari datasets, and outside samplers.

`SequentialMemory.from_arrays`, `from_minari`, `to_arrays` and `sampling_arrays` call these
functions; their docstrings there describe the layouts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__: list[str] = []


def dataset_array(name: str, value: Any) -> np.ndarray:
    """`value` as a numeric array of at least one dimension, all finite (for `from_arrays`)."""
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - ragged lists and the like
        raise TypeError(f"`{name}` must be an array of numbers. Received: {name}={value!r:.200}") from e
    if array.dtype.kind not in "biuf" or array.ndim == 0:
        raise TypeError(
            f"`{name}` must be an array of numbers with one row per step. "
            f"Received: {name} of dtype {array.dtype} and shape {array.shape}"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(f"`{name}` must hold finite numbers only. Received: {name}[{where}]={array[tuple(bad)]!r}")
    return array


def dataset_flags(name: str, value: Any, n: int) -> np.ndarray:
    """End flags as booleans of shape `(n,)` (for `from_arrays`)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
        raise TypeError(
            f"`{name}` must hold booleans (or 0/1), one per step. Received: {name} of dtype {array.dtype}"
            + ("" if array.dtype.kind not in "biuf" else f" with values {np.unique(array)[:5].tolist()}")
        )
    if array.shape != (n,):
        raise ValueError(
            f"Every dataset array must have one row per step, as `observations` ({n} rows). "
            f"Received: {name} of shape {array.shape}"
        )
    return array.astype(bool)


def episode_flags(episode: Any, name: str, nb_steps: int) -> np.ndarray:
    """A Minari episode's end flags `episode.<name>` as booleans of shape `(nb_steps,)` (for `from_minari`).

    The flags must be booleans or 0/1, as `from_arrays` requires of `terminals` and `truncations`:
    casting another value (say `0.5`) to `bool` would end an episode without a word.

    Args:
        episode: a Minari episode (with `id` and the flags as attribute `name`).
        name: `"terminations"` or `"truncations"`.
        nb_steps: the episode's number of steps (of actions).

    Returns:
        A boolean array of shape `(nb_steps,)`.

    Raises:
        TypeError: naming the episode, the array and the first value that is not a boolean or 0/1.
        ValueError: if the episode holds another number of flags than of steps.
    """
    value = getattr(episode, name)
    array = np.asarray(value)
    numeric = array.dtype.kind in "biuf"
    ok = np.isin(array, (0, 1)) if numeric else None
    if not numeric or not ok.all():
        if numeric:
            bad = np.argwhere(~ok)[0]
            where = ", ".join(str(int(i)) for i in bad)
            received = f"{name}[{where}]={array[tuple(bad)].item()!r}"
        else:
            received = f"{name} of dtype {array.dtype}: {value!r:.200}"
        raise TypeError(
            f"Episode {episode.id}'s `{name}` must hold booleans (or 0/1), one per step, as `from_arrays` requires "
            f"of its end flags. Received: {received}"
        )
    if array.shape != (nb_steps,):
        raise ValueError(
            f"Episode {episode.id} must hold one `{name}` flag per action ({nb_steps}). "
            f"Received: {name} of shape {array.shape}"
        )
    return array.astype(bool)


def from_arrays(
    cls: type,
    observations: Any,
    actions: Any,
    rewards: Any,
    terminals: Any,
    truncations: Any = None,
    next_observations: Any = None,
    window_length: int = 1,
    limit: int | None = None,
    seed: int | None = None,
) -> Any:
    """Builds a memory of class `cls` from flat per-step arrays: `SequentialMemory.from_arrays`."""
    obs = dataset_array("observations", observations)
    act = dataset_array("actions", actions)
    rew = dataset_array("rewards", rewards)
    n = len(obs)
    term = dataset_flags("terminals", terminals, n)
    trunc = np.zeros(n, dtype=bool) if truncations is None else dataset_flags("truncations", truncations, n)
    nxt = None if next_observations is None else dataset_array("next_observations", next_observations)
    named = [("actions", act), ("rewards", rew)] + ([("next_observations", nxt)] if nxt is not None else [])
    for name, a in named:
        if len(a) != n:
            raise ValueError(
                f"Every dataset array must have one row per step, as `observations` ({n} rows). "
                f"Received: {name} of shape {a.shape}"
            )
    if n == 0:
        raise ValueError(f"The dataset is empty. Received: observations of shape {obs.shape}")
    if rew.shape != (n,) and not (rew.ndim == 2 and rew.shape[1] == 1):
        raise ValueError(f"`rewards` must hold one number per step, shape ({n},). Received: rewards.shape={rew.shape}")
    rew = rew.reshape(n)
    if nxt is not None and nxt.shape != obs.shape:
        raise ValueError(
            f"`next_observations` must have the shape of `observations` {obs.shape}. "
            f"Received: next_observations.shape={nxt.shape}"
        )
    ends = term | trunc
    if not ends[-1]:
        trunc = trunc.copy()
        trunc[-1] = True
        ends = term | trunc
        start = int(np.flatnonzero(ends[:-1])[-1]) + 1 if ends[:-1].any() else 0
        warnings.warn(
            f"The dataset's last episode (steps {start} to {n - 1}) has no end flag in `terminals` or "
            "`truncations`: it is kept as truncated"
            + (
                " (its last step bootstraps from next_observations)."
                if nxt is not None
                else ", so its last step is not used as a transition (no next observation is known)."
            ),
            stacklevel=3,  # the caller of SequentialMemory.from_arrays
        )
    if nxt is not None:
        inside = np.flatnonzero(~ends[:-1])  # steps whose next observation is the next row (none if all end)
        same = (nxt[inside] == obs[inside + 1]).all(axis=tuple(range(1, obs.ndim)))  # [len(inside)]
        if not same.all():
            t = int(inside[np.argmin(same)])
            raise ValueError(
                f"`next_observations[{t}]` must equal `observations[{t + 1}]`: the episode does not end at "
                f"step {t} (terminals[{t}] and truncations[{t}] are False). Received: "
                f"next_observations[{t}]={nxt[t]!r:.200}, observations[{t + 1}]={obs[t + 1]!r:.200}"
            )
    # Slots: each step's observation, plus a slot for an episode's final observation, except
    # after a truncated step with no known next observation (that step's own observation is
    # the final one, and the step is no transition).
    dropped = trunc & ~term if nxt is None else np.zeros(n, dtype=bool)
    extra = (ends & ~dropped).astype(np.int64)
    slot = np.arange(n) + np.cumsum(extra) - extra  # slot of each step's observation
    size = n + int(extra.sum())
    if limit is None:
        limit = max(size, window_length + 1)
    memory = cls(limit=limit, window_length=window_length, seed=seed)
    if size > memory.limit:
        raise ValueError(
            f"`limit` is too small for the dataset: it needs {size} slots ({n} steps and {int(extra.sum())} final "
            f"observations). Received: limit={limit}"
        )
    # The observations keep their dtype (and `next_observations`'s, when it is another).
    obs_dtype = obs.dtype if nxt is None else np.promote_types(obs.dtype, nxt.dtype)
    memory._allocate(obs[0], act[0].astype(np.float32), dtype=obs_dtype)
    starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1])  # first step of each episode
    episode_of_step = np.cumsum(np.isin(np.arange(n), starts)) - 1
    position = np.arange(n) - starts[episode_of_step]
    has_final = extra.astype(bool)
    keep = slot[~dropped]
    memory._write(slot, observations=obs, episode_step=position, action=act, reward=rew, terminal=term)
    # A final observation slot: the real s_{t+1} when known (terminated or truncated), else zeros (terminated).
    finals = slot[has_final] + 1
    memory._write(finals, observations=None if nxt is None else nxt[has_final], episode_step=position[has_final] + 1)
    memory._write(keep, valid=True)
    memory._set_counters(size % memory.limit, size, len(keep), size - 1, False)
    return memory


def from_minari(
    cls: type, dataset: Any, window_length: int = 1, limit: int | None = None, seed: int | None = None
) -> Any:
    """Builds a memory of class `cls` from a Minari dataset: `SequentialMemory.from_minari`."""
    if not callable(getattr(dataset, "iterate_episodes", None)):
        raise TypeError(
            "`dataset` must be a Minari dataset (minari.MinariDataset; install the `minari` extra). "
            f"Received: dataset={dataset!r:.200}"
        )
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
    for episode in dataset.iterate_episodes():
        observations, actions = episode.observations, episode.actions
        for name, value in (("observations", observations), ("actions", actions)):
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    f"Episode {episode.id}'s {name} must be an array; flatten dictionary or tuple spaces (e.g. "
                    f"gymnasium.wrappers.FlattenObservation) before collecting. Received: {type(value).__name__}"
                )
        t = len(actions)
        if len(observations) != t + 1:
            raise ValueError(
                f"Episode {episode.id} must hold one more observation than actions. "
                f"Received: {len(observations)} observations, {t} actions"
            )
        parts["obs"].append(observations[:-1])
        parts["next"].append(observations[1:])
        parts["act"].append(actions)
        parts["rew"].append(np.asarray(episode.rewards))
        parts["term"].append(episode_flags(episode, "terminations", t))
        parts["trunc"].append(episode_flags(episode, "truncations", t))
    if not parts["obs"]:
        raise ValueError(f"The Minari dataset holds no episode. Received: dataset={dataset!r:.200}")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return cls.from_arrays(
        arrays["obs"],
        arrays["act"],
        arrays["rew"],
        arrays["term"],
        arrays["trunc"],
        next_observations=arrays["next"],
        window_length=window_length,
        limit=limit,
        seed=seed,
    )


def to_arrays(memory: Any) -> dict[str, np.ndarray]:
    """A memory's transitions as flat per-step arrays, oldest first: `SequentialMemory.to_arrays`."""
    if memory._observations is None:
        raise ValueError("The memory is empty: there is nothing to export. Received: nb_entries=0")
    oldest = memory._next if memory._size == memory.limit else 0
    order = (oldest + np.arange(memory._size)) % memory.limit
    slots = order[memory._valid[order]]  # transitions, oldest first
    following = (slots + 1) % memory.limit
    continues = np.zeros(len(slots), dtype=bool)
    continues[:-1] = following[:-1] == slots[1:]  # the next transition starts where this one ended
    action, reward, terminal = memory._layout.split(memory._rows[slots])
    terminals = terminal > 0.5
    return {
        "observations": memory._observations[slots].copy(),
        "actions": action.reshape((len(slots),) + memory._action_shape).copy(),
        "rewards": reward.copy(),
        "terminals": terminals,
        "truncations": ~continues & ~terminals,
        "next_observations": memory._observations[following].copy(),
    }


def sampling_arrays(memory: Any) -> dict[str, np.ndarray]:
    """The storage an outside sampler needs: `SequentialMemory.sampling_arrays`."""
    if memory.n_step > 1:
        raise TypeError(
            "Samplers outside the memory draw one-step transitions; this memory samples n-step ones. "
            f"Use a memory with n_step=1. Received: n_step={memory.n_step}"
        )
    if memory._observations is None:
        empty = np.zeros(0, dtype=np.int64)
        return {"observations": None, "rows": None, "episode_step": memory._episode_step, "indices": empty}
    candidates = np.flatnonzero(memory._valid[: memory._size])
    if memory.window_length > 1:
        candidates = candidates[memory._window_fits(candidates)]
    return {
        "observations": memory._observations,
        "rows": memory._rows,
        "episode_step": memory._episode_step,
        "indices": candidates.astype(np.int64),
    }
