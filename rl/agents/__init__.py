"""Agents: each algorithm in its own module, all built on `rl.core.Agent`."""

from rl.agents.ddpg import DDPGAgent

__all__ = ["DDPGAgent"]
