"""The engine every deep agent shares: weight layouts, packed inputs, compiled functions, networks by role.

- `rl.engine.batch`: `GraphBatch`, `UpdateStep` and `TrainOptions`, the types a training step works with.
- `rl.engine.layout`: how a network's weights are held while training (flat or per variable).
- `rl.engine.fields`: named inputs packed into one vector and unpacked in the graph by name.
- `rl.engine.compiled`: the registry of compiled functions (traced once per signature, called directly).
- `rl.engine.xla`: the rule behind `jit_compile="auto"`.
- `rl.engine.deep_agent`: `DeepAgent`, networks, targets and optimizers by role; weights and checkpoints.
"""

from rl.engine.batch import GraphBatch, TrainOptions, UpdateStep
from rl.engine.compiled import CompiledFunctions, Signature
from rl.engine.deep_agent import DeepAgent, Nets, SeedStream, weights_paths
from rl.engine.fields import Fields
from rl.engine.layout import FlatWeights, ParameterWeights, VariableWeights, apply_gradients, flat_layout_fits

__all__ = [
    "CompiledFunctions",
    "DeepAgent",
    "Fields",
    "GraphBatch",
    "FlatWeights",
    "Nets",
    "ParameterWeights",
    "SeedStream",
    "Signature",
    "TrainOptions",
    "UpdateStep",
    "VariableWeights",
    "apply_gradients",
    "flat_layout_fits",
    "weights_paths",
]
