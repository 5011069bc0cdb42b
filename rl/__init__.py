"""Keras-style reinforcement-learning agents on Keras 3, TensorFlow 2 and gymnasium."""

from rl.agents import DDPGAgent
from rl.core import Agent, Processor
from rl.export import load_policy
from rl.memory import SequentialMemory
from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "DDPGAgent",
    "GaussianWhiteNoiseProcess",
    "OrnsteinUhlenbeckProcess",
    "Processor",
    "SequentialMemory",
    "load_policy",
    "__version__",
]
