"""Agents: each algorithm in its own module, on the shared engine (`rl.engine`, `rl.agents.off_policy`)."""

from rl.agents.ddpg import DDPGAgent
from rl.agents.sac import SACAgent
from rl.agents.td3 import TD3Agent

__all__ = ["DDPGAgent", "SACAgent", "TD3Agent"]
