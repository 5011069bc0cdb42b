"""Agents: each algorithm in its own module, on the shared engine and bases (`rl.engine`, `rl.agents.off_policy`,
`rl.agents.on_policy`)."""

from rl.agents.cem import CEMAgent
from rl.agents.crossq import CrossQAgent
from rl.agents.ddpg import DDPGAgent
from rl.agents.dqn import DQNAgent
from rl.agents.naf import ContinuousDQNAgent, NAFAgent
from rl.agents.ppo import PPOAgent
from rl.agents.sac import SACAgent
from rl.agents.sarsa import SARSAAgent, SarsaAgent
from rl.agents.td3 import TD3Agent
from rl.agents.td3bc import TD3BCAgent

__all__ = [
    "CEMAgent",
    "ContinuousDQNAgent",
    "CrossQAgent",
    "DDPGAgent",
    "DQNAgent",
    "NAFAgent",
    "PPOAgent",
    "SACAgent",
    "SARSAAgent",
    "SarsaAgent",
    "TD3Agent",
    "TD3BCAgent",
]
