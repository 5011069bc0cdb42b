"""Helpers of the checkpoint tests: a small agent, snapshots of its state, damaging a checkpoint."""

import json
import shutil

import numpy as np
import pytest


def small_agent(seed=0, limit=100, optimizer="adam", critic_hidden=16):
    import keras
    from conftest import small_models

    from rl.agents import DDPGAgent
    from rl.memory import SequentialMemory
    from rl.random import OrnsteinUhlenbeckProcess

    keras.utils.set_random_seed(seed)
    actor, critic, action_in = small_models((2,))
    if critic_hidden != 16:
        _, critic, action_in = small_models((2,), hidden=critic_hidden)
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=limit, seed=seed),
        nb_steps_warmup_critic=5,
        nb_steps_warmup_actor=5,
        batch_size=4,
        random_process=OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=1, seed=seed),
    )
    agent.compile(optimizer)
    return agent


def trained_agent(seed=1, steps=17, **kwargs):
    """Agent B, with its environment: different weights, memory, counters and RNG states from A's."""
    from conftest import CountingEnv

    agent = small_agent(seed=seed, **kwargs)
    env = CountingEnv(terminate_at=7)
    agent.fit(env, nb_steps=steps, verbose=0, seed=seed)
    return agent, env


def core_snapshot(agent, env=None):
    """What the base class and the memory own: counters, RNG states, the memory's contents."""
    m = agent.memory
    snap = {
        "step": agent.step,
        "episode": agent.episode,
        "rng": agent._rng.bit_generator.state,
        "memory": [np.array(a) for a in (m._observations, m._rows, m._valid, m._episode_step)],
        "memory_counters": (m._next, m._size, m._nb_valid, m._pending, m.ignore_episode_boundaries),
        "memory_rng": m.rng.bit_generator.state,
    }
    if env is not None:
        snap["env_rng"] = (env.np_random.bit_generator.state, env.action_space.np_random.bit_generator.state)
    return snap


def agent_snapshot(agent):
    """What the agent owns: the four networks, both optimizers, the noise process."""
    nets = (agent.actor, agent.critic, agent.target_actor, agent.target_critic)
    return {
        "weights": [w.copy() for net in nets for w in net.get_weights()],
        "optimizers": [v.numpy().copy() for o in (agent.actor_optimizer, agent.critic_optimizer) for v in o.variables],
        "random_process": agent.random_process.get_state(),
    }


def assert_same(a, b, where="snapshot"):
    """Equal snapshots: the same keys, and equal values (arrays element by element, NaN equal to NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def assert_differ(a, b):
    with pytest.raises(AssertionError):
        assert_same(a, b)


@pytest.fixture(scope="module", name="saved")
def saved_fixture(tmp_path_factory):
    """A's checkpoint and A's state."""
    from conftest import CountingEnv

    agent = small_agent(seed=0)
    env = CountingEnv(terminate_at=10)
    agent.fit(env, nb_steps=30, verbose=0, seed=0)
    ckpt = tmp_path_factory.mktemp("saved") / "ckpt"
    agent.save_checkpoint(ckpt, env=env)
    return ckpt, core_snapshot(agent, env), agent_snapshot(agent)


@pytest.fixture(name="ckpt")
def ckpt_fixture(saved, tmp_path):
    """A fresh copy of A's checkpoint folder, free to damage."""
    return shutil.copytree(saved[0], tmp_path / "ckpt")


def subfolder(ckpt):
    return ckpt / json.loads((ckpt / "checkpoint.json").read_text())["latest"]


def rewrite_state(ckpt, edit=None, data=None):
    """Hand-edits `state.json` as a tool would, keeping `checkpoint.json`'s SHA-256 consistent, so
    that only the edited field (not the checksum) can be refused."""
    import hashlib

    path = subfolder(ckpt) / "state.json"
    if data is None:
        state = json.loads(path.read_text())
        edit(state)
        data = json.dumps(state).encode()
    path.write_bytes(data)
    index = json.loads((ckpt / "checkpoint.json").read_text())
    index["state_sha256"] = hashlib.sha256(data).hexdigest()
    (ckpt / "checkpoint.json").write_text(json.dumps(index))


def flip_byte(path, at=None):
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


CHECKPOINT_FILES = [
    "actor.weights.h5",
    "critic.weights.h5",
    "target_actor.weights.h5",
    "target_critic.weights.h5",
    "actor_optimizer.npz",
    "critic_optimizer.npz",
    "memory.npz",
    "parameters.npz",
    "state.json",
]


def pop(key):
    return lambda state: state.pop(key)


def put(field, value):
    def edit(state):
        *path, last = field.split(".")
        target = state
        for key in path:
            target = target[key]
        target[last] = value

    return edit
