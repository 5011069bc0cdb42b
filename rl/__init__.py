"""Keras-style reinforcement-learning agents on Keras 3, TensorFlow 2 and gymnasium."""

try:
    import tensorflow  # noqa: F401  (the agents' backend; installed by the `cpu` or `gpu` extra)
except ModuleNotFoundError as error:
    if error.name != "tensorflow":
        raise
    raise ModuleNotFoundError(
        "keras-rl3 trains on TensorFlow, which is not installed in this environment. Install the package "
        'with one of its TensorFlow extras: `pip install -e ".[cpu]"` in a checkout (`.[gpu]` for an NVIDIA '
        'GPU), or `pip install "keras-rl3[cpu]"` once it is on PyPI.',
        name="tensorflow",
    ) from error

from rl import networks
from rl.agents import CrossQAgent, DDPGAgent
from rl.core import Agent, Processor
from rl.export import load_policy
from rl.layers import BatchRenormalization
from rl.memory import SequentialMemory
from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "BatchRenormalization",
    "CrossQAgent",
    "DDPGAgent",
    "GaussianWhiteNoiseProcess",
    "OrnsteinUhlenbeckProcess",
    "Processor",
    "SequentialMemory",
    "load_policy",
    "networks",
    "__version__",
]
