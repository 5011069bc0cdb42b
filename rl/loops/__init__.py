"""Runs: one lifecycle (`rl.loops.run.Run`) and one small source per way of gathering experience.

| module | source |
| --- | --- |
| `rl.loops.run` | `Run`: callbacks, History, loggers, run hooks, nested runs, Ctrl-C, non-finite actions |
| `rl.loops.guards` | the observation, reward and action checks every source applies |
| `rl.loops.episode` | one gymnasium environment (`Agent.fit` / `Agent.test`) |
| `rl.loops.vector` | a gymnasium vector environment |
| `rl.loops.offline` | a fixed dataset in the agent's memory (`OffPolicyAgent.fit_offline`) |
| `rl.loops.workers` | transitions acted elsewhere: rollout workers and their learner (`rl.distributed.fit`) |

Sources use agents through their public protocol only (see `rl.core.Agent`). Import the
submodules themselves: this package imports none of them, so that `rl.core` can use the sources
while `rl.loops.offline` builds on the engine.
"""
