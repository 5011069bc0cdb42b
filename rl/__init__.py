"""Keras-style reinforcement-learning agents on Keras 3, TensorFlow 2 and gymnasium."""

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
