"""`SequentialMemory`: transitions in a preallocated numpy ring buffer, with seeded uniform and n-step sampling."""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np

from rl.memory import datasets
from rl.memory import state as saved
from rl.memory.keras_rl import Experience, experiences, recent_state
from rl.memory.rows import Batch, TransitionRows
from rl.util import check_int, check_number

__all__ = ["SequentialMemory"]


# Rounds of cheap rejection draws before `_sample_indices` computes the sampleable slots exactly.
_DRAW_ROUNDS = 8


class SequentialMemory:
    """Replay memory of transitions in preallocated numpy arrays, used as a ring buffer.

    Each observation is stored once: a transition's next observation is the slot that follows it.
    When an episode ends (terminated or truncated) its final observation gets a slot of its own, so
    a time-limit truncation keeps the real `s_{t+1}` to bootstrap from, and no sampled transition
    ever runs from one episode into the next. Memory use is proportional to `limit`; sampling is
    O(batch_size), vectorised, and seeded, and always returns: when few stored transitions can be
    sampled, the memory finds them exactly (O(limit)), and when none can, `sample` raises.

    Observations are stored in the dtype of the first one stored (`from_arrays`: of the dataset's
    arrays), so that they come back with the values they went in with: float64 stays float64
    (twice the bytes of float32), float32 stays float32, uint8 images stay uint8. Later
    observations are converted to that dtype. Agents feed their networks float32 whatever the
    stored dtype; to store float64 observations as float32, convert them before they reach the
    memory (e.g. `gymnasium.wrappers.DtypeObservation(env, np.float32)`). Actions and rewards
    are stored as float32 (see `TransitionRows`).

    Rewards therefore read back rounded to float32, on purpose: the networks train in float32,
    and one float32 row per transition (action, reward and terminal flag together) is what makes
    sampling a single gather. A reward of `0.4` comes back as `np.float32(0.4)`, which is
    `0.4000000059604645` as a Python float (keras-rl kept the Python float): compare sampled
    rewards with a tolerance (`pytest.approx`, `np.isclose`) or with `np.float32(value)`. Sums of
    many rewards (episode returns) are computed by the run loops in float64, not read back from
    the memory.

    `nb_entries` counts the observations the memory holds, as keras-rl counted them: one per
    stored step, plus each finished episode's final observation; with keras-rl's four-argument
    `append`, the observation of the newest call counts as soon as it is appended, although its
    transition waits for the next call's observation. `nb_transitions` counts what `sample` can
    return.

    Args:
        limit: number of slots (transitions plus one final observation per finished episode), at
            least `window_length + 1`.
        window_length: number of consecutive observations that make one state. Windows never mix
            two episodes: slots before an episode's first observation are zeros. Defaults to `1`.
        ignore_episode_boundaries: if `True`, windows may reach back into the previous episode
            instead of being zero-padded (transitions themselves still never cross). Defaults to
            `False`.
        seed: seed of the sampling generator. Defaults to `None` (fresh entropy).
        n_step: steps per sampled transition, >= 1. With `n_step > 1` a sampled transition's
            reward is the discounted sum `r_t + gamma r_{t+1} + ... ` of up to `n_step` stored
            rewards of its episode, and it bootstraps from the observation `k` steps later with
            `gamma^k`, where `k <= n_step` is the number of steps taken: fewer at a termination
            (no bootstrap) or where the episode was truncated or stopped (the real final
            observation). Transitions are stored one step each, so `n_step` can be changed at any
            time. Defaults to `1`.
        gamma: discount of the n-step sums, in `[0, 1]`, or `None` for the discount of the agent
            that uses the memory (an off-policy agent sets it). Defaults to `None`.

    Raises:
        ValueError: if `limit < window_length + 1`: no window and next observation would fit.

    Example:

    >>> memory = SequentialMemory(limit=100_000, window_length=1, seed=0)
    >>> memory.append(obs, action, reward, terminal=False, next_observation=next_obs)
    >>> batch = memory.sample(64)
    >>> batch.state0.shape
    (64, 1, 3)
    """

    def __init__(
        self,
        limit: int,
        window_length: int = 1,
        ignore_episode_boundaries: bool = False,
        seed: int | None = None,
        n_step: int = 1,
        gamma: float | None = None,
    ):
        self.limit = check_int("limit", limit, minimum=2)
        self.n_step = check_int("n_step", n_step, minimum=1)
        self.gamma = None if gamma is None else check_number("gamma", gamma, low=0.0, high=1.0)
        self.window_length = check_int("window_length", window_length, minimum=1)
        if self.limit < self.window_length + 1:
            raise ValueError(
                "`limit` must leave room for one transition: a window of `window_length` observations and the "
                f"next one, so at least window_length + 1 = {self.window_length + 1} slots. "
                f"Received: limit={self.limit}, window_length={self.window_length}"
            )
        self.ignore_episode_boundaries = bool(ignore_episode_boundaries)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # The storage arrays, written by `_write` only. One observation per slot:
        self._observations: np.ndarray | None = None
        # One row per slot, laid out by `_layout` ([action..., reward, terminal]), gathered in one go when sampling.
        self._rows: np.ndarray | None = None
        self._layout: TransitionRows | None = None
        # `_valid[i]`: slot i starts a transition whose next observation is in slot i + 1.
        self._valid = np.zeros(self.limit, dtype=bool)
        # Position of each slot's observation inside its episode (for zero-padding windows).
        self._episode_step = np.zeros(self.limit, dtype=np.int32)
        self._next = 0  # slot written next
        self._size = 0  # slots in use
        self._nb_valid = 0
        self._pending = -1  # slot holding the last next_observation, -1 if none
        self._open = False  # the last transition did not end its episode
        self._last_next_obs: Any = None
        # keras-rl's API: the observations appended last, for `get_recent_state`; a transition
        # appended without its next observation waits for the next `append`.
        self._recent: deque = deque(maxlen=self.window_length)
        self._keras_rl_pending: tuple | None = None
        self._keras_rl_waiting = False  # the pending transition's observation is in no slot yet
        self._keras_rl_appends = False  # `append` was called keras-rl's way: `sample` returns Experiences

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A memory pickled before the row layout was an object of its own holds its action size instead.
        if "_layout" not in state:
            state = dict(state)
            nb_actions = state.pop("_nb_actions", 0)
            state["_layout"] = None if state.get("_rows") is None else TransitionRows(nb_actions)
        if "_keras_rl_waiting" not in state:  # pickled before `nb_entries` counted a waiting observation
            state = {**state, "_keras_rl_waiting": False}
        self.__dict__.update(state)

    # ------------------------------------------------------------------ writing
    @property
    def nb_entries(self) -> int:
        """Number of observations held, as keras-rl counted them, at most `limit`.

        One per stored step plus one per finished episode (its final observation): the slots in
        use. With keras-rl's four-argument `append`, the newest call's observation counts too
        while its transition waits for the next call (after one `append`, `nb_entries` is `1`
        and `nb_transitions` `0`). `nb_transitions` is the number of transitions `sample` can
        return.
        """
        waiting = self._keras_rl_waiting and self._keras_rl_pending is not None
        return min(self.limit, self._size + waiting)

    @property
    def nbytes(self) -> int:
        """Bytes held by the memory's arrays (allocated at the first `append`)."""
        arrays = (self._observations, self._rows, self._valid, self._episode_step)
        return sum(a.nbytes for a in arrays if a is not None)

    @property
    def nb_transitions(self) -> int:
        """Number of transitions that `sample` can return."""
        return self._nb_valid

    def _allocate(self, observation: np.ndarray, action: np.ndarray, dtype: np.dtype | None = None) -> None:
        """Creates the observation and row arrays, shaped for `observation` and `action`.

        The observations are stored in `dtype`, by default `observation`'s own: float64 stays
        float64, float32 float32, uint8 uint8 (see the class docstring).
        """
        obs_dtype = observation.dtype if dtype is None else np.dtype(dtype)
        self._observations = np.zeros((self.limit,) + observation.shape, dtype=obs_dtype)
        self._action_shape = action.shape
        self._layout = TransitionRows(int(np.prod(action.shape)))
        self._rows = self._layout.zeros(self.limit)

    def _write(
        self,
        slots: int | np.ndarray,
        observations: Any = None,
        episode_step: Any = None,
        action: Any = None,
        reward: Any = None,
        terminal: Any = None,
        valid: bool | None = None,
    ) -> None:
        """Writes into the storage arrays at `slots`: the only code that changes what they hold.

        `append` writes one slot at a time, `from_arrays` a whole dataset at once; `_allocate` and
        `set_state` only put new arrays in place. A field left `None` is not written. The callers
        keep the ring's counters (`_take_slot` one slot at a time, `_set_counters` in bulk).

        Args:
            slots: a slot, or an int array of distinct slots.
            observations: the observations of `slots`.
            episode_step: each observation's position in its episode (`0` for its first).
            action, reward, terminal: the fields of the slots' rows (see `TransitionRows.write`).
            valid: whether the slots start a transition (their next observation is in the next slot).
        """
        if observations is not None:
            self._observations[slots] = observations
        if episode_step is not None:
            self._episode_step[slots] = episode_step
        if action is not None or reward is not None or terminal is not None:
            if isinstance(slots, (int, np.integer)):  # one slot: its row is a view, written in place
                self._layout.write(self._rows[slots], action, reward, terminal)
            else:
                rows = self._rows[slots]
                self._layout.write(rows, action, reward, terminal)
                self._rows[slots] = rows
        if valid is not None:
            self._valid[slots] = valid

    def _counters(self) -> tuple[int, int, int, int, bool]:
        """The ring's bookkeeping, as saved files hold it: `(next, size, nb_valid, pending, open)`."""
        return self._next, self._size, self._nb_valid, self._pending, self._open

    def _set_counters(self, next_slot: int, size: int, nb_valid: int, pending: int, is_open: bool) -> None:
        """Sets the ring's bookkeeping (see `_counters`), for contents written or restored in bulk."""
        self._next, self._size, self._nb_valid, self._pending, self._open = next_slot, size, nb_valid, pending, is_open

    def _take_slot(self) -> int:
        i = self._next
        if self._valid[i]:
            self._write(i, valid=False)
            self._nb_valid -= 1
        self._next = (i + 1) % self.limit
        if self._size < self.limit:
            self._size += 1
        return i

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
        """Stores the transition `(observation, action, reward, next_observation)`.

        Args:
            observation: the observation the action was taken in, `s_t`.
            action: the action taken, `a_t`.
            reward: the reward received, `r_t`.
            terminal: whether `next_observation` is terminal (the episode *terminated*): the
                learner does not bootstrap from it.
            next_observation: the observation after the step, `s_{t+1}`.
                Without it (keras-rl's `append(observation, action, reward, terminal)`), the
                transition is completed by the next call's `observation`, and the call after a
                terminal one only gives the episode's final observation, as keras-rl's loop does;
                `sample` then returns keras-rl's `Experience` list. Defaults to `None`.
            truncated: whether the episode stopped here without terminating (a time limit). The
                transition still bootstraps from `next_observation`. Defaults to `False`.
            training: `False` records `observation` for `get_recent_state` only, storing nothing
                (keras-rl's argument). Defaults to `True`.

        When `observation` is the `next_observation` of the previous call (same object or equal
        values) and that call did not end the episode, the slot already holding it is reused.
        """
        if next_observation is None:
            self._append_keras_rl(observation, action, reward, terminal, training)
            return
        ended = bool(terminal or truncated)
        self._recent.append((observation, ended))
        if ended:
            self._recent.append((next_observation, False))
        if training:
            self._store(observation, action, reward, terminal, next_observation, truncated)

    def _append_keras_rl(self, observation: Any, action: Any, reward: float, terminal: bool, training: bool) -> None:
        self._keras_rl_appends = True
        self._recent.append((observation, bool(terminal)))
        if not training:
            return
        pending, self._keras_rl_pending = self._keras_rl_pending, None
        if pending is None:
            self._keras_rl_pending = (np.asarray(observation), action, reward, bool(terminal))
            self._keras_rl_waiting = True  # stored with its transition, at the next call
            return
        self._store(*pending, observation)
        self._keras_rl_waiting = False
        if not pending[3]:  # after a terminal step, `observation` was only the episode's final one
            # Its transition waits for the next call; the observation itself was just stored.
            self._keras_rl_pending = (np.asarray(observation), action, reward, bool(terminal))

    def get_recent_state(self, current_observation: Any) -> list:
        """Returns keras-rl's state for `current_observation`: the `window_length` observations
        ending with it, those appended before it in its episode, zero-padded in front.

        Args:
            current_observation: the newest observation, not appended yet.

        Returns:
            A list of `window_length` observations, oldest first.
        """
        return recent_state(self._recent, current_observation, self.window_length, self.ignore_episode_boundaries)

    def _store(
        self,
        observation: Any,
        action: Any,
        reward: float,
        terminal: bool,
        next_observation: Any,
        truncated: bool = False,
    ) -> None:
        observation = np.asarray(observation)
        action = np.asarray(action, dtype=np.float32)
        if self._observations is None:
            self._allocate(observation, action)
        obs_store = self._observations
        if observation.shape != obs_store.shape[1:]:
            raise ValueError(
                "`observation` has a different shape from the ones already stored "
                f"{obs_store.shape[1:]}. Received: observation.shape={observation.shape}"
            )
        if action.shape != self._action_shape:
            raise ValueError(
                "`action` has a different shape from the ones already stored "
                f"{self._action_shape}. Received: action.shape={action.shape}"
            )
        continuing = (
            self._open
            and self._pending >= 0
            and (observation is self._last_next_obs or np.array_equal(observation, obs_store[self._pending]))
        )
        if continuing:  # slot i holds `observation` already, as the last transition's next observation
            i, new_observation, step = self._pending, None, None
        else:
            i, new_observation, step = self._take_slot(), observation, 0
        # Slot i starts the transition; its next observation goes to the next slot, j.
        self._write(i, new_observation, step, action, reward, 1.0 if terminal else 0.0, valid=True)
        j = self._take_slot()
        self._write(j, observations=next_observation, episode_step=self._episode_step[i] + 1)
        self._nb_valid += 1
        self._pending = j
        self._open = not (terminal or truncated)
        self._last_next_obs = next_observation

    def end_episode(self) -> None:
        """Marks the current episode as over, so the next `append` starts a new one.

        Call it when an episode is abandoned without a terminal or truncated step (for example
        when training stops in the middle of an episode).
        """
        self._open = False
        self._last_next_obs = None
        self._keras_rl_pending = None
        self._keras_rl_waiting = False

    # ----------------------------------------------------------------- sampling
    def _sample_indices(self, batch_size: int) -> np.ndarray:
        # Some slots cannot start a transition (final observations, the newest slot): draw a few
        # spare indices up front and keep the first `batch_size` valid ones, so that a redraw is rare.
        # Raw 64-bit draws modulo `size`: uniform up to a bias below size / 2**64, and several times
        # cheaper than `Generator.integers` for a few dozen draws.
        raw, valid, size = self.rng.bit_generator.random_raw, self._valid, self._size
        draws = batch_size + 8 + batch_size // 16
        idx = np.empty(0, dtype=np.int64)
        for _ in range(_DRAW_ROUNDS):
            new = (raw(draws) % size).view(np.int64)
            ok = valid[new]
            if self.window_length > 1:
                ok &= self._window_fits(new)
            idx = new[ok] if not idx.size else np.concatenate([idx, new[ok]])
            if idx.size >= batch_size:
                return idx[:batch_size]
        # Few slots (or none) can start a transition: draw the rest from the exact set, which
        # keeps the draws uniform over the sampleable transitions and always terminates.
        candidates = np.flatnonzero(valid[:size])
        if self.window_length > 1:
            candidates = candidates[self._window_fits(candidates)]
        if not candidates.size:
            raise ValueError(
                f"None of the memory's {self._nb_valid} transitions can be sampled yet: each needs a window of "
                f"window_length={self.window_length} observations"
                + (
                    ", and with ignore_episode_boundaries=True the window reaches back over the "
                    f"{self.window_length - 1} slots before it, which must already be filled"
                    if self.ignore_episode_boundaries
                    else " from slots that still hold its episode"
                )
                + ". Append more transitions before sampling (an agent's warm-up should be at least "
                f"window_length={self.window_length} steps). Received: nb_entries={self.nb_entries}"
            )
        extra = candidates[self.rng.integers(0, candidates.size, batch_size - idx.size)]
        return np.concatenate([idx, extra])

    def _window_fits(self, idx: np.ndarray) -> np.ndarray:
        """Whether the slots a window of `idx` reaches back to still hold that window's data."""
        back = np.full(idx.shape, self.window_length - 1)
        if not self.ignore_episode_boundaries:
            back = np.minimum(back, self._episode_step[idx])
        oldest = self._next if self._size == self.limit else 0
        return (idx - oldest) % self.limit >= back

    def _windows(self, idx: np.ndarray, episode_step: np.ndarray) -> np.ndarray:
        w = self.window_length
        offsets = np.arange(-(w - 1), 1)  # [W]
        positions = (idx[:, None] + offsets[None, :]) % self.limit  # [B, W]
        states = np.take(self._observations, positions, axis=0)  # [B, W, *obs]
        if not self.ignore_episode_boundaries:
            before_start = -offsets[None, :] > episode_step[:, None]  # [B, W]
            states[before_start] = 0
        return states

    def _check_batch_size(self, batch_size: int) -> int:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > self.limit:
            raise ValueError(
                f"`batch_size` cannot exceed the memory's limit ({self.limit}). Received: batch_size={batch_size}"
            )
        if self._nb_valid == 0:
            raise ValueError("The memory holds no transition yet: append some before calling `sample`.")
        return batch_size

    def _states(self, idx: np.ndarray, k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        # The next observation sits in the next slot; slot `limit` wraps to 0 (`mode="wrap"`, `% limit`).
        if k is not None:  # n-step transitions: the next state is `k` slots on
            if self.window_length == 1:
                obs = self._observations
                return obs.take(idx, axis=0)[:, None], obs.take(idx + k, axis=0, mode="wrap")[:, None]
            step = self._episode_step[idx]
            return self._windows(idx, step), self._windows(idx + k, step + k)
        if self.window_length == 1:
            # ndarray.take gathers rows several times faster than fancy indexing.
            obs = self._observations
            return obs.take(idx, axis=0)[:, None], obs.take(idx + 1, axis=0, mode="wrap")[:, None]  # [B, 1, *obs]
        step = self._episode_step[idx]
        return self._windows(idx, step), self._windows(idx + 1, step + 1)

    def sample(self, batch_size: int, batch_idxs: Any = None) -> Batch | list[Experience]:
        """Samples `batch_size` transitions uniformly (with replacement).

        Args:
            batch_size: number of transitions.
            batch_idxs: the transitions to return instead of a random draw, by position in
                `[0, nb_entries)` (`0` is the oldest stored observation). As in keras-rl, a position
                that starts no transition (an episode's final observation, the newest one) is
                replaced by a random transition. Defaults to `None`.

        Returns:
            A `Batch` of numpy arrays; a list of keras-rl `Experience`s when the memory was filled
            with keras-rl's four-argument `append` (see `sample_experiences`).

        Raises:
            ValueError: if `batch_size` is not a positive integer, exceeds `limit`, or the memory
                holds no transition that can be sampled yet (none at all, or, with
                `ignore_episode_boundaries=True`, fewer than `window_length` stored steps); if
                `batch_idxs` does not hold `batch_size` positions in `[0, nb_entries)`.
        """
        batch = self._sample(batch_size, batch_idxs)
        return experiences(batch) if self._keras_rl_appends else batch

    def sample_experiences(self, batch_size: int, batch_idxs: Any = None) -> list[Experience]:
        """Samples like `sample`, as a list of keras-rl `Experience` namedtuples.

        Returns:
            `batch_size` `Experience(state0, action, reward, state1, terminal1)`s.
        """
        return experiences(self._sample(batch_size, batch_idxs))

    def _indices_at(self, batch_size: int, batch_idxs: Any) -> np.ndarray:
        idx = np.asarray(batch_idxs)
        entries = self.nb_entries
        if idx.shape != (batch_size,) or idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= entries).any():
            raise ValueError(
                f"`batch_idxs` must hold batch_size={batch_size} integers in [0, nb_entries={entries}). "
                f"Received: batch_idxs={batch_idxs!r:.200}"
            )
        oldest = self._next if self._size == self.limit else 0
        # A position past the slots in use (keras-rl's waiting observation) lands on an unused slot,
        # which starts no transition: it is redrawn like an episode's final observation.
        idx = (oldest + idx.astype(np.int64)) % self.limit
        ok = self._valid[idx]
        if self.window_length > 1:
            ok &= self._window_fits(idx)
        if not ok.all():
            idx[~ok] = self._sample_indices(int((~ok).sum()))
        return idx

    def _n_step_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n-step transitions at slots `idx`: their rows and the steps `k` each takes.

        Each row's reward is the discounted sum of up to `n_step` rewards of its episode; its
        terminal column holds `1 - gamma^(k-1) * (1 - terminal)`, so that a learner's
        `gamma * (1 - terminal)` is the bootstrap discount `gamma^k` (`0` at a termination).
        """
        if self.gamma is None:
            raise ValueError(
                "`gamma` must be set to sample n-step transitions: pass it to the memory, or give the memory "
                f"to an agent, which sets its own. Received: gamma=None, n_step={self.n_step}"
            )
        layout, limit, gamma = self._layout, self.limit, self.gamma
        rows = self._rows.take(idx, axis=0)  # [B, width]
        reward = layout.reward(rows).astype(np.float64)
        done = layout.terminal(rows) > 0
        k = np.ones(len(idx), dtype=np.int64)
        discount = np.ones(len(idx))
        oldest = self._next if self._size == self.limit else 0
        age = (idx - oldest) % limit  # the following slots of the same episode are newer
        step = self._episode_step[idx]
        active = ~done
        for j in range(1, self.n_step):
            nxt = (idx + j) % limit
            active &= self._valid[nxt] & (self._episode_step[nxt] == step + j) & (age + j < self._size)
            if not active.any():
                break
            nrows = self._rows.take(nxt[active], axis=0)
            discount[active] *= gamma
            reward[active] += discount[active] * layout.reward(nrows)
            k[active] = j + 1
            ended = layout.terminal(nrows) > 0
            done[active] = ended
            active[np.flatnonzero(active)[ended]] = False
        layout.write(rows, reward=reward, terminal=1.0 - discount * (~done))  # discount is gamma^(k-1)
        return rows, k

    def _sample(self, batch_size: int, batch_idxs: Any = None) -> Batch:
        batch_size = self._check_batch_size(batch_size)
        idx = self._sample_indices(batch_size) if batch_idxs is None else self._indices_at(batch_size, batch_idxs)
        if self.n_step > 1:
            rows, k = self._n_step_rows(idx)
            state0, state1 = self._states(idx, k)
        else:
            state0, state1 = self._states(idx)
            rows = self._rows.take(idx, axis=0)  # [B, width]
        action, reward, terminal = self._layout.split(rows)
        return Batch(state0, action.reshape((len(idx),) + self._action_shape), reward.copy(), state1, terminal.copy())

    def sample_into(self, batch_size: int, state0: np.ndarray, state1: np.ndarray, rows: np.ndarray) -> None:
        """Samples like `sample` (same draws for the same seed), writing into arrays you provide.

        For agents that pack a batch into one buffer: nothing is allocated per batch beyond the
        indices.

        Args:
            batch_size: number of transitions, `B`.
            state0: receives `s_t`, shape `(B, window_length) + obs_shape`.
            state1: receives `s_{t+1}`, same shape.
            rows: receives each transition's row (see `TransitionRows`): its flattened action, then its
                reward, then `1.0` where `s_{t+1}` is terminal; shape `(B, nb_actions + 2)`, float32.
        """
        b = self._check_batch_size(batch_size)  # checked before drawing: a refused call draws nothing
        shape = (b, self.window_length) + self._observations.shape[1:]
        for name, out in (("state0", state0), ("state1", state1)):
            if out.shape != shape:
                raise ValueError(f"`{name}` must have shape {shape}. Received: {name}.shape={out.shape}")
        if rows.shape != (b, self._layout.width) or rows.dtype != TransitionRows.dtype:
            raise ValueError(
                f"`rows` must be float32 of shape {(b, self._layout.width)}. "
                f"Received: rows.shape={rows.shape}, rows.dtype={rows.dtype}"
            )
        idx = self._sample_indices(b)
        if self.n_step > 1:
            rows[...], k = self._n_step_rows(idx)
            state0[...], state1[...] = self._states(idx, k)
            return
        obs = self._observations
        if self.window_length == 1 and state0.dtype == state1.dtype == obs.dtype:
            # mode="clip" writes straight into `out` (the indices are in range anyway).
            obs.take(idx, axis=0, out=state0[:, 0], mode="clip")
            obs.take(idx + 1, axis=0, out=state1[:, 0], mode="wrap")
        else:
            state0[...], state1[...] = self._states(idx)
        self._rows.take(idx, axis=0, out=rows, mode="clip")

    # ----------------------------------------------------------------- datasets
    @classmethod
    def from_arrays(
        cls,
        observations: Any,
        actions: Any,
        rewards: Any,
        terminals: Any,
        truncations: Any = None,
        next_observations: Any = None,
        window_length: int = 1,
        limit: int | None = None,
        seed: int | None = None,
    ) -> SequentialMemory:
        """Builds a memory from a dataset of flat per-step arrays (d3rlpy's layout).

        Row `t` of every array describes one step: the observation `s_t`, the action `a_t`
        taken in it, the reward `r_t`, and whether the episode ended after that step. Episodes
        end where `terminals | truncations`. A terminated step is stored without bootstrap. For a
        truncated step (a time limit), the learner bootstraps from the episode's real final
        observation: `next_observations[t]` when given; without `next_observations` that
        observation is unknown, so the truncated episode's last step is kept only as the final
        observation of the step before it, not as a transition of its own. When the last
        episode has no end flag it is kept as truncated, with a warning.

        The observations are stored in their own dtype, so that sampled and exported values are
        the dataset's exactly: float64 stays float64 (8 bytes per value, twice float32's),
        float32 stays float32, integers and uint8 images keep their dtype. When
        `next_observations` has another dtype, both are stored in the dtype numpy promotes the
        two to (`np.promote_types`: float64 for float32 and float64). Cast the
        arrays first to store less (e.g. `observations.astype(np.float32)`). Actions and rewards
        are stored as float32.

        Args:
            observations: `s_t`, shape `(N,) + obs_shape`, numbers, stored in their dtype.
            actions: `a_t`, shape `(N,) + action_shape` (e.g. `(N, nb_actions)`), numbers.
            rewards: `r_t`, shape `(N,)`.
            terminals: `True` (or 1) where the episode terminated after step `t`, shape `(N,)`.
            truncations: `True` where a time limit cut the episode after step `t`, shape `(N,)`,
                or `None` (no truncations). Defaults to `None`.
            next_observations: `s_{t+1}`, shape `(N,) + obs_shape`, or `None`. Inside an
                episode it must equal `observations[t + 1]`. Defaults to `None`.
            window_length: observations per state, as in the constructor. Defaults to `1`.
            limit: slots of the memory, or `None` for exactly the slots the dataset needs (one
                per step plus one per episode). Defaults to `None`.
            seed: seed of the memory's sampling generator. Defaults to `None`.

        Returns:
            A `SequentialMemory` holding the dataset's transitions, in order.

        Raises:
            TypeError: if an array is not numeric (or the end flags are not booleans or 0/1).
            ValueError: naming the array, if the arrays have different lengths, the dataset is
                empty, a value is NaN or infinite, `next_observations` disagrees with
                `observations` inside an episode, or `limit` is too small for the dataset.

        Example:

        >>> memory = SequentialMemory.from_arrays(obs, actions, rewards, terminals, truncations,
        ...                                       next_observations=next_obs)
        >>> memory.nb_transitions
        1000
        """
        return datasets.from_arrays(
            cls,
            observations,
            actions,
            rewards,
            terminals,
            truncations,
            next_observations,
            window_length=window_length,
            limit=limit,
            seed=seed,
        )

    @classmethod
    def from_minari(
        cls, dataset: Any, window_length: int = 1, limit: int | None = None, seed: int | None = None
    ) -> SequentialMemory:
        """Builds a memory from a Minari dataset (`minari.MinariDataset`, the `minari` extra).

        Each Minari episode holds `T + 1` observations, `T` actions and rewards, and separate
        `terminations` and `truncations`; every step becomes a transition, and a truncated
        episode bootstraps from its real final observation.

        Args:
            dataset: a `minari.MinariDataset` (anything with `iterate_episodes()` yielding
                episodes with `observations`, `actions`, `rewards`, `terminations` and
                `truncations` arrays).
            window_length: observations per state. Defaults to `1`.
            limit: slots of the memory, or `None` for exactly what the dataset needs.
                Defaults to `None`.
            seed: seed of the memory's sampling generator. Defaults to `None`.

        Returns:
            A `SequentialMemory` holding every episode of `dataset`.

        Raises:
            TypeError: if `dataset` is not a Minari dataset, its observations or actions are
                not arrays (flatten dictionary spaces first), or an episode's `terminations` or
                `truncations` hold a value other than a boolean or 0/1 (naming the episode, the
                array and the value), as `from_arrays` refuses such end flags.
            ValueError: as `from_arrays`, or if an episode's arrays do not fit together.

        Example:

        >>> dataset = minari.load_dataset("pendulum/expert-v0")
        >>> memory = SequentialMemory.from_minari(dataset)
        """
        return datasets.from_minari(cls, dataset, window_length=window_length, limit=limit, seed=seed)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Returns the stored transitions as a dataset of flat per-step arrays, oldest first.

        The layout is `from_arrays`'s: `SequentialMemory.from_arrays(**memory.to_arrays())`
        rebuilds the same transitions. An episode still running in the memory ends with a
        truncation; a step stored without a next observation (see `from_arrays`) is not a
        transition and is left out.

        Returns:
            A dict of `observations` `(N,) + obs_shape`, `actions` `(N,) + action_shape`
            (float32), `rewards` `(N,)` (float32), `terminals` and `truncations` `(N,)` (bool),
            and `next_observations` `(N,) + obs_shape`.
        """
        return datasets.to_arrays(self)

    def sampling_arrays(self) -> dict[str, np.ndarray]:
        """The storage a sampler needs, for samplers that run outside this class (`fit_offline`'s).

        Returns:
            A dict of `observations` (one row per slot), `rows` (`[action..., reward, terminal]`
            per slot, float32, as `TransitionRows` lays them out), `episode_step` (each slot's
            position in its episode) and `indices`: the slots that `sample` may draw (a
            transition whose window is complete), as int64. A transition at slot `i` has its next
            observation in slot `(i + 1) % limit`. The arrays are the memory's own (not copies):
            do not change them.

        Raises:
            TypeError: if the memory samples n-step transitions (`n_step > 1`), which such a
                sampler does not build.
        """
        return datasets.sampling_arrays(self)

    # ------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "limit": self.limit,
            "window_length": self.window_length,
            "ignore_episode_boundaries": self.ignore_episode_boundaries,
            "seed": self.seed,
            "n_step": self.n_step,
            "gamma": self.gamma,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequentialMemory:
        """Creates an empty memory from `get_config()`'s output."""
        return cls(**config)

    def save(self, filepath: str | os.PathLike) -> None:
        """Writes the memory's contents and sampling state to a `.npz` file, atomically.

        The file uses numpy's format without pickled objects.
        """
        saved.write_npz(filepath, self._state_arrays())

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The arrays `save` writes (a subclass adds its own)."""
        return saved.sequential_arrays(self)

    def load(self, filepath: str | os.PathLike) -> None:
        """Restores what `save` wrote: `set_state(read_state(filepath))`.

        The memory must have the same `limit` and `window_length`; the file's
        `ignore_episode_boundaries` is restored with its contents. Nothing is changed unless the
        whole file is valid.

        Raises:
            ValueError: if the file is missing, truncated, not a memory file, was saved by a
                memory of another configuration, or holds inconsistent contents.
        """
        self.set_state(self.read_state(filepath))

    def read_state(self, filepath: str | os.PathLike) -> dict[str, Any]:
        """Reads and checks a file that `save` wrote, without changing the memory.

        Everything is checked against this memory and against itself: the configuration (`limit`,
        `window_length`), the ring-buffer counters (in range and consistent with the arrays), the
        shapes and dtypes of every array, and the sampling generator's state.

        Returns:
            The memory's state, for `set_state`.

        Raises:
            ValueError: naming the file and the field, if anything is missing or wrong.
        """
        return saved.read_sequential_state(filepath, self.limit, self.window_length)

    def set_state(self, state: dict[str, Any]) -> None:
        """Replaces the memory's contents and sampling state with `state`, as `read_state` returned it.

        `read_state` checked everything, so this cannot fail part-way.
        """
        self.ignore_episode_boundaries = state["ignore_episode_boundaries"]
        self._set_counters(state["next"], state["size"], state["nb_valid"], state["pending"], state["open"])
        self._episode_step = state["episode_step"]
        self._valid = state["valid"]
        self._observations = state["observations"]
        self._rows = state["rows"]
        self._action_shape = state["action_shape"]
        self._layout = TransitionRows(int(np.prod(self._action_shape))) if self._rows is not None else None
        self._last_next_obs = None
        self.rng.bit_generator.state = state["rng_state"]
