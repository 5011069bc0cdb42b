"""Offline training's names at their old home: `GraphDataset` lives in `rl.engine.dataset`, the
run in `rl.loops.offline` (`run_offline`), the training calls on `OffPolicyAgent`
(`load_dataset`, `train_offline`)."""

from rl.engine.dataset import GraphDataset
from rl.loops.offline import run_offline

__all__ = ["GraphDataset", "run_offline"]
