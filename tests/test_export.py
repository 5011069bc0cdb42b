"""`agent.export`: a SavedModel and a LiteRT file that act as `agent.forward` does in test mode,
loaded in a fresh process where `import rl` fails."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
from agent_builders import build_agent

import rl.export
from rl.core import Processor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

# Run in a fresh process: the library cannot be imported there, only TensorFlow.
CHECKER = r"""
import json, sys
sys.modules["rl"] = None  # `import rl` raises ImportError
import numpy as np
import tensorflow as tf
for folder in sys.argv[1:]:
    x = np.load(f"{folder}/observations.npy")
    loaded = tf.saved_model.load(f"{folder}/policy")
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](observations=tf.constant(x)).items()}
    meta = json.loads(loaded.signatures["metadata"]()["metadata"].numpy().decode())
    runner = tf.lite.Interpreter(model_path=f"{folder}/policy.tflite").get_signature_runner("serving_default")
    lite = runner(observations=x)
    arrays = {**{f"sm_{k}": v for k, v in out.items()}, **{f"lite_{k}": v for k, v in lite.items()}}
    np.savez(f"{folder}/outputs.npz", **arrays)
    with open(f"{folder}/meta.json", "w") as f:
        json.dump(meta, f)
try:
    import rl  # noqa: F401
    print("rl importable")
except ImportError:
    print("rl blocked")
"""


def pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=50)


def cartpole():
    return gym.make("CartPole-v1", max_episode_steps=50)


def make(kind):
    if kind in ("ddpg", "td3", "sac"):
        env = pendulum()
        agent = build_agent(kind, env, warmup=10)
    elif kind == "td3bc":
        from test_offline import build, pendulum_dataset

        data, _ = pendulum_dataset(2, seed=0)
        from rl.memory import SequentialMemory

        agent = build(SequentialMemory.from_arrays(**data))
        env = pendulum()
    elif kind == "naf":
        import naf_pendulum

        keras.utils.set_random_seed(0)
        env = pendulum()
        agent = naf_pendulum.make_agent(env, 0)
    else:
        env = cartpole()
        keras.utils.set_random_seed(0)
        module = {"dqn": "dqn_cartpole", "sarsa": "sarsa_cartpole", "cem": "cem_cartpole"}[kind]
        agent = __import__(module).make_agent(env, 0)
    if kind in ("td3bc",):
        agent.fit_offline(30, verbose=0, action_space=env.action_space)
        agent.check_env(env)
    else:
        agent.fit(env, nb_steps=60, verbose=0, seed=0)  # trained a little, the networks built
    return agent, env


def expected_actions(agent, observations):
    agent.training = False
    out = []
    for obs in observations:
        agent.reset_states()
        out.append(agent.forward(obs))
    return np.asarray(out)


KINDS = ["ddpg", "td3", "td3bc", "sac", "naf", "dqn", "sarsa", "cem"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every kind of agent exported, then loaded and run in one fresh process (one process for all:
    each costs seconds of TensorFlow start-up): kind -> (agent class name, expected actions, folder)."""
    found = {}
    for kind in KINDS:
        agent, env = make(kind)
        folder = tmp_path_factory.mktemp(f"export_{kind}")
        rng = np.random.default_rng(0)
        observations = (rng.normal(size=(1000,) + env.observation_space.shape) * 1.5).astype(np.float32)
        want = expected_actions(agent, observations)
        agent.export(folder / "policy")
        agent.export(folder / "policy.tflite", format="tflite")
        np.save(folder / "observations.npy", observations)
        found[kind] = (type(agent).__name__, want, folder)
    folders = [str(folder) for _, _, folder in found.values()]
    result = subprocess.run(
        [sys.executable, "-c", CHECKER, *folders], capture_output=True, text=True, timeout=600, cwd=folders[0]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rl blocked" in result.stdout
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_the_export_acts_as_forward_does_in_a_process_without_the_library(kind, exported):
    agent_name, want, folder = exported[kind]
    out = np.load(folder / "outputs.npz")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["agent"] == agent_name and meta["window_length"] == 1
    lite_meta = rl.export.read_metadata(folder / "policy.tflite")
    assert lite_meta == dict(meta, format="tflite")  # the LiteRT file carries the same metadata
    if np.issubdtype(want.dtype, np.integer):
        np.testing.assert_array_equal(out["sm_action"], want)
        np.testing.assert_array_equal(out["lite_action"], want)
    else:
        np.testing.assert_allclose(out["sm_action"], want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out["lite_action"], want, atol=1e-4, rtol=0)


def test_load_policy_acts_with_forward_calls(tmp_path):
    agent, env = make("ddpg")
    agent.export(tmp_path / "policy")
    policy = rl.export.load_policy(tmp_path / "policy")
    obs, _ = env.reset(seed=3)
    agent.training = False
    agent.reset_states()
    np.testing.assert_allclose(policy.forward(obs), agent.forward(obs), atol=1e-5)
    assert policy.metadata["outputs"] == ["action"]
    assert rl.export.read_metadata(tmp_path / "policy")["nb_actions"] == 1


def test_windows_are_the_serving_input_when_window_length_is_more_than_one(tmp_path):
    import dqn_cartpole

    from rl.agents import DQNAgent
    from rl.memory import SequentialMemory

    env = cartpole()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3, 4)), keras.layers.Flatten(), keras.layers.Dense(2)])
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(100, window_length=3), nb_steps_warmup=10)
    agent.compile("adam")
    agent.fit(env, nb_steps=20, verbose=0)
    assert dqn_cartpole  # the examples' folder is importable
    agent.export(tmp_path / "policy")
    policy = rl.export.load_policy(tmp_path / "policy")
    assert policy.metadata["input_shape"] == [3, 4]
    obs = [np.full(4, i, np.float32) for i in range(5)]
    agent.training = False
    agent.reset_states()
    policy.reset_states()
    for o in obs:
        assert policy.forward(o) == agent.forward(o)


def test_export_errors_name_the_argument(tmp_path):
    agent, env = make("ddpg")
    with pytest.raises(
        ValueError, match=r"`format` must be one of \('saved_model', 'tflite'\). Received: format='onnx'"
    ):
        agent.export(tmp_path / "p", format="onnx")
    agent.export(tmp_path / "p")
    with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
        agent.export(tmp_path / "p")
    agent.export(tmp_path / "p", overwrite=True)
    agent.export(tmp_path / "models" / "pendulum" / "1")  # TF Serving's layout: missing folders are created
    fresh = build_agent("ddpg", pendulum())
    with pytest.raises(ValueError, match=r"has not seen an observation yet"):
        fresh.export(tmp_path / "q")
    assert sorted(os.listdir(tmp_path)) == ["models", "p"]  # nothing half-written


def test_a_processor_that_batches_in_python_must_say_how_to_export(tmp_path):
    class Scale(Processor):
        def process_state_batch(self, batch):
            return batch * 2.0

    class ScaleForExport(Scale):
        def export_state_batch(self, batch):
            return batch * 2.0

    for processor, ok in ((Scale(), False), (ScaleForExport(), True)):
        agent = build_agent("ddpg", pendulum(), processor=processor)
        agent.fit(pendulum(), nb_steps=20, verbose=0)
        if ok:
            agent.export(tmp_path / "ok")
            policy = rl.export.load_policy(tmp_path / "ok")
            obs = np.ones(3, np.float32)
            agent.training = False
            agent.reset_states()
            np.testing.assert_allclose(policy.forward(obs), agent.forward(obs), atol=1e-5)
        else:
            with pytest.raises(
                ValueError, match=r"Scale\.process_state_batch runs in Python: implement Scale\.export_state_batch"
            ):
                agent.export(tmp_path / "no")


def test_a_test_policy_that_is_not_greedy_cannot_be_exported(tmp_path):
    from rl.policy import EpsGreedyQPolicy

    agent, env = make("dqn")
    agent.test_policy = EpsGreedyQPolicy(eps=0.1)
    with pytest.raises(ValueError, match=r"test_policy=EpsGreedyQPolicy"):
        agent.export(tmp_path / "p")


def test_a_multi_input_agent_exports_through_its_processor(tmp_path):
    from test_keras_rl_cases import RandomObsEnv, _fit_ddpg

    from rl.processors import MultiInputProcessor

    keras.utils.set_random_seed(0)
    a1, a2 = keras.Input((2, 3)), keras.Input((2, 4))
    actor = keras.Model([a1, a2], keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Concatenate()([a1, a2]))))
    action_input = keras.Input((2,))
    c1, c2 = keras.Input((2, 3)), keras.Input((2, 4))
    x = keras.layers.Concatenate()([action_input, keras.layers.Flatten()(keras.layers.Concatenate()([c1, c2]))])
    critic = keras.Model([action_input, c1, c2], keras.layers.Dense(1)(x))
    env = RandomObsEnv([(3,), (4,)])
    agent, _ = _fit_ddpg(actor, critic, action_input, env, processor=MultiInputProcessor(nb_inputs=2))
    agent.export(tmp_path / "policy")
    policy = rl.export.load_policy(tmp_path / "policy")
    assert policy.metadata["window_length"] == 2 and policy.metadata["input_shape"] == [2, 7]
    assert policy.metadata["processor"] == {"class": "MultiInputProcessor", "caller_applies": ["process_observation"]}
    agent.training = False
    agent.reset_states()
    policy.reset_states()
    for _ in range(4):
        obs = agent.processor.process_observation(env._obs())
        np.testing.assert_allclose(policy.forward(obs), agent.forward(obs), atol=1e-5)
