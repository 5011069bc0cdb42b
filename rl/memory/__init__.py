"""Replay memory: a preallocated numpy ring buffer with vectorised, seeded sampling.

Every name is importable from `rl.memory`. The modules, one job each:

- `rl.memory.rows`: what a transition looks like: the row layout `TransitionRows` and a sampled `Batch`.
- `rl.memory.sequential`: `SequentialMemory`, its ring storage, sampling and n-step returns.
- `rl.memory.prioritized`: `SumTree` and `PrioritizedMemory`.
- `rl.memory.mixed`: `MixedMemory`, offline data and new experience drawn from in a fixed proportion.
- `rl.memory.rollout`: `RolloutBuffer`, the steps an on-policy agent gathers between two updates.
- `rl.memory.episode`: `EpisodeParameterMemory`, for `CEMAgent`.
- `rl.memory.window`: `ObservationWindow`, the state an agent acts on.
- `rl.memory.keras_rl`: keras-rl's names (`Experience`, `Memory`, `RingBuffer`, ...).
- `rl.memory.datasets`: datasets in and out of a `SequentialMemory` (`from_arrays`, `to_arrays`, ...).
- `rl.memory.state`: the `.npz` files that `save` writes and `load` reads.
"""

from rl.memory.episode import EpisodeParameterMemory
from rl.memory.keras_rl import Experience, Memory, RingBuffer, sample_batch_indexes, zeroed_observation
from rl.memory.mixed import MixedMemory
from rl.memory.prioritized import PrioritizedMemory, SumTree
from rl.memory.rollout import RolloutBuffer
from rl.memory.rows import Batch, TransitionRows
from rl.memory.sequential import SequentialMemory
from rl.memory.window import ObservationWindow

__all__ = [
    "Batch",
    "EpisodeParameterMemory",
    "Experience",
    "Memory",
    "MixedMemory",
    "ObservationWindow",
    "PrioritizedMemory",
    "RingBuffer",
    "RolloutBuffer",
    "SequentialMemory",
    "SumTree",
    "TransitionRows",
    "sample_batch_indexes",
    "zeroed_observation",
]
