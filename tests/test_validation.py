"""Bad input fails early with an error naming the argument and the value received."""

import os

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CountingEnv, small_models
from keras import layers

import rl.engine.xla as xla_module
from rl.agents import DDPGAgent
from rl.memory import SequentialMemory
from rl.random import OrnsteinUhlenbeckProcess


def build(model_actions=1, window_length=1, actor_actions=None, **kwargs):
    keras.utils.set_random_seed(0)
    nb_actions = model_actions
    actor, critic, action_in = small_models((2,), nb_actions=model_actions, window_length=window_length)
    if actor_actions is not None:
        obs_in = keras.Input((window_length, 2))
        actor = keras.Model(obs_in, layers.Dense(actor_actions)(layers.Flatten()(obs_in)))
    args = dict(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=100, window_length=window_length),
    )
    args.update(kwargs)
    return DDPGAgent(**args)


def two_output_critic():
    a, o = keras.Input((1,)), keras.Input((1, 2))
    x = layers.Concatenate()([a, layers.Flatten()(o)])
    return keras.Model([a, o], layers.Dense(2)(x)), a


CONSTRUCTION_CASES = [
    (
        "critic_action_input not an input of the critic",
        {"critic_action_input": keras.Input((1,))},
        ValueError,
        "critic_action_input",
    ),
    ("actor output size != nb_actions", {"actor_actions": 3}, ValueError, r"nb_actions=1"),
    ("actor not a model", {"actor": "actor"}, TypeError, "actor='actor'"),
    ("memory without append/sample", {"memory": [1, 2]}, TypeError, r"memory=\[1, 2\]"),
    ("nb_actions zero", {"nb_actions": 0}, ValueError, "nb_actions=0"),
    ("gamma above 1", {"gamma": 1.5}, ValueError, "gamma=1.5"),
    ("gamma below 0", {"gamma": -0.1}, ValueError, "gamma=-0.1"),
    ("gamma not a number", {"gamma": "high"}, TypeError, "gamma='high'"),
    ("batch_size zero", {"batch_size": 0}, ValueError, "batch_size=0"),
    ("batch_size above the memory limit", {"batch_size": 101}, ValueError, "batch_size=101"),
    ("negative critic warm-up", {"nb_steps_warmup_critic": -1}, ValueError, "nb_steps_warmup_critic=-1"),
    ("negative actor warm-up", {"nb_steps_warmup_actor": -5}, ValueError, "nb_steps_warmup_actor=-5"),
    ("train_interval zero", {"train_interval": 0}, ValueError, "train_interval=0"),
    ("gradient_steps zero", {"gradient_steps": 0}, ValueError, "gradient_steps=0"),
    ("memory_interval zero", {"memory_interval": 0}, ValueError, "memory_interval=0"),
    ("target_model_update zero", {"target_model_update": 0}, ValueError, "target_model_update=0"),
    ("target_model_update negative", {"target_model_update": -1.0}, ValueError, "target_model_update=-1.0"),
    ("delta_clip zero", {"delta_clip": 0.0}, ValueError, "delta_clip=0.0"),
    (
        "noise size != nb_actions",
        {"random_process": OrnsteinUhlenbeckProcess(theta=0.1, size=2)},
        ValueError,
        "random_process.size=2",
    ),
    ("noise without sample()", {"random_process": object()}, TypeError, "random_process="),
    ("processor of the wrong type", {"processor": "scale"}, TypeError, "processor='scale'"),
]


@pytest.mark.parametrize("case, kwargs, error, words", CONSTRUCTION_CASES, ids=[c[0] for c in CONSTRUCTION_CASES])
def test_construction_errors(case, kwargs, error, words):
    with pytest.raises(error, match=words):
        build(**kwargs)


def test_critic_with_two_outputs():
    critic, a = two_output_critic()
    with pytest.raises(ValueError, match=r"single output of shape \(None, 1\)"):
        build(critic=critic, critic_action_input=a)


def test_window_with_memory_interval():
    with pytest.raises(ValueError, match="memory_interval=2"):
        build(window_length=2, memory_interval=2)


def test_window_length_mismatch_between_memory_and_models():
    agent = build(memory=SequentialMemory(limit=100, window_length=3))  # models expect (1, 2)
    agent.compile("adam")
    with pytest.raises(ValueError, match=r"window_length=3.*observation_space.shape=\(2,\)"):
        agent.fit(CountingEnv(), nb_steps=10, verbose=0)


def test_observation_shape_mismatch_is_caught_before_any_step():
    class Wide(CountingEnv):
        def step(self, action):
            raise AssertionError("no step should run")

    agent = build()
    agent.compile("adam")
    with pytest.raises(ValueError, match=r"observation_space.shape=\(5,\)"):
        agent.fit(Wide(obs_dim=5), nb_steps=10, verbose=0)


@pytest.mark.parametrize(
    "optimizer, error, words",
    [
        ([keras.optimizers.Adam(), keras.optimizers.Adam(), keras.optimizers.Adam()], ValueError, "3 optimizers"),
        ("adamx", ValueError, "optimizer='adamx'"),
        (42, TypeError, "optimizer=42"),
        ([keras.optimizers.Adam(), "nope"], ValueError, r"optimizer\[1\]='nope'"),
    ],
)
def test_compile_optimizer_errors(optimizer, error, words):
    with pytest.raises(error, match=words):
        build().compile(optimizer)


def test_compile_metric_errors():
    with pytest.raises(ValueError, match="metrics="):
        build().compile("adam", metrics=["not_a_metric"])
    with pytest.raises(TypeError, match="metrics='mae'"):
        build().compile("adam", metrics="mae")


def test_fit_before_compile():
    with pytest.raises(ValueError, match="compile"):
        build().fit(CountingEnv(), nb_steps=10)


class DiscreteEnv(CountingEnv):
    def __init__(self):
        super().__init__()
        self.action_space = gym.spaces.Discrete(3)


class UnboundedEnv(CountingEnv):
    def __init__(self):
        super().__init__()
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)


@pytest.mark.parametrize(
    "env, error, words",
    [
        (DiscreteEnv(), TypeError, r"action_space=Discrete\(3\)"),
        (UnboundedEnv(), ValueError, "bounded"),
        (CountingEnv(nb_actions=2), ValueError, r"action_space.shape=\(2,\)"),
    ],
)
def test_action_space_errors(env, error, words):
    agent = build()
    agent.compile("adam")
    with pytest.raises(error, match=words):
        agent.fit(env, nb_steps=10, verbose=0)


def test_nan_reward_names_the_step():
    class NanReward(CountingEnv):
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, (np.nan if self.t == 5 else reward), terminated, truncated, info

    agent = build()
    agent.compile("adam")
    with pytest.raises(ValueError, match=r"non-finite reward at step 4 of episode 0 \(agent step 4\)"):
        agent.fit(NanReward(), nb_steps=10, verbose=0)


def test_weights_of_another_architecture(tmp_path):
    agent = build()
    agent.compile("adam")
    agent.save_weights(tmp_path / "a.weights.h5")
    keras.utils.set_random_seed(0)
    actor, critic, action_in = small_models((2,), hidden=32)
    other = DDPGAgent(1, actor, critic, action_in, SequentialMemory(100))
    with pytest.raises(ValueError, match="another architecture"):
        other.load_weights(tmp_path / "a.weights.h5")


def test_missing_and_truncated_weight_files(tmp_path):
    agent = build()
    with pytest.raises(ValueError, match="does not exist"):
        agent.load_weights(tmp_path / "missing.weights.h5")
    agent.save_weights(tmp_path / "a.weights.h5")
    actor_file = tmp_path / "a_actor.weights.h5"
    actor_file.write_bytes(actor_file.read_bytes()[:300])
    with pytest.raises(ValueError, match="damaged"):
        agent.load_weights(tmp_path / "a.weights.h5")


def test_existing_weights_are_not_overwritten_and_failed_saves_keep_the_old_file(tmp_path, monkeypatch):
    agent = build()
    agent.save_weights(tmp_path / "a.weights.h5")
    good = (tmp_path / "a_actor.weights.h5").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.save_weights(tmp_path / "a.weights.h5")

    def crash(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(agent.actor, "save_weights", crash)
    with pytest.raises(OSError, match="disk full"):
        agent.save_weights(tmp_path / "a.weights.h5", overwrite=True)
    assert (tmp_path / "a_actor.weights.h5").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_actor.weights.h5", "a_critic.weights.h5"]


def test_missing_and_damaged_checkpoints(tmp_path):
    env = CountingEnv(terminate_at=10)
    agent = build(nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
    agent.compile("adam")
    with pytest.raises(ValueError, match="checkpoint index does not exist"):
        agent.load_checkpoint(tmp_path / "nothing")
    agent.fit(env, nb_steps=20, verbose=0)
    folder = agent.save_checkpoint(tmp_path / "ckpt")
    memory_file = tmp_path / "ckpt" / folder.split("/")[-1] / "memory.npz"
    memory_file.write_bytes(memory_file.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"damaged.*memory\.npz"):
        agent.load_checkpoint(tmp_path / "ckpt")


def wide_actor(units=64, inner=64, trainable=True):
    """An actor whose second hidden kernel holds `inner * units` values."""
    obs_in = keras.Input((1, 2))
    x = layers.Dense(inner, activation="relu")(layers.Flatten()(obs_in))
    hidden = layers.Dense(units, activation="relu", trainable=trainable)
    return keras.Model(obs_in, layers.Dense(1)(hidden(x)))


def test_jit_compile_auto(monkeypatch):
    """One rule: XLA on a GPU or TPU; on CPUs for small networks in training that reaches `XLA_MIN_STEPS`."""
    assert build().get_config()["jit_compile"] == "auto"
    monkeypatch.setattr(xla_module, "accelerator_visible", lambda: True)
    assert build().jit_compile is True
    assert build(actor=wide_actor()).jit_compile is True
    monkeypatch.setattr(xla_module, "accelerator_visible", lambda: False)
    monkeypatch.setattr(xla_module, "XLA_MIN_STEPS", 30)
    env = CountingEnv(terminate_at=10)
    agent = build(nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
    agent.compile("adam")
    assert agent.jit_compile is False  # nothing trained yet
    agent.fit(env, nb_steps=20, verbose=0)
    assert agent.jit_compile is False  # a run ending at step 20
    traces = agent.trace_count
    agent.fit(env, nb_steps=10, verbose=0)
    assert agent.jit_compile is True  # this one ends at step 30: compiled again, with XLA
    assert agent.trace_count > traces
    traces = agent.trace_count
    agent.fit(env, nb_steps=10, verbose=0)
    assert agent.jit_compile is True and agent.trace_count == traces  # kept, not traced again
    for actor, xla in (
        (wide_actor(), False),
        (wide_actor(units=63, inner=65), True),
        (wide_actor(trainable=False), True),
    ):
        # a 64 x 64 kernel (4 096 values) is large; 63 x 65 (4 095) is not; a frozen layer is not trained
        other = build(actor=actor, nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
        other.compile("adam")
        other.fit(CountingEnv(terminate_at=10), nb_steps=30, verbose=0)
        assert other.jit_compile is xla
    # An explicit choice is kept whatever the run's length.
    for jit in (True, False):
        explicit = build(jit_compile=jit, nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
        explicit.compile("adam")
        assert explicit.jit_compile is jit
        explicit.fit(CountingEnv(terminate_at=10), nb_steps=30 if not jit else 10, verbose=0)
        assert explicit.jit_compile is jit


def test_jit_compile_auto_decides_offline_runs_by_their_end_too(monkeypatch):
    monkeypatch.setattr(xla_module, "accelerator_visible", lambda: False)
    monkeypatch.setattr(xla_module, "XLA_MIN_STEPS", 60)
    env = CountingEnv(terminate_at=10)
    agent = build(nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
    agent.compile("adam")
    agent.fit(env, nb_steps=30, verbose=0)  # fills the memory
    assert agent.jit_compile is False
    agent.fit_offline(20, verbose=0)  # ends at step 50
    assert agent.jit_compile is False and agent.step == 50
    agent.fit_offline(20, verbose=0)  # ends at step 70
    assert agent.jit_compile is True and agent.step == 70


def test_the_library_changes_no_process_wide_setting(monkeypatch):
    """Building, compiling and training change neither XLA_FLAGS nor TensorFlow's thread counts."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    threads = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    env = CountingEnv(terminate_at=10)
    agent = build(jit_compile=True, nb_steps_warmup_actor=5, nb_steps_warmup_critic=5, batch_size=4)
    agent.compile("adam")
    agent.fit(env, nb_steps=20, verbose=0)
    assert "XLA_FLAGS" not in os.environ
    assert threads == (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def test_jit_compile_rejects_bad_values():
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        build(jit_compile="yes")


@keras.saving.register_keras_serializable(package="tests")
class NumpyIdentity(layers.Layer):
    """An identity through `tf.numpy_function`, which XLA cannot compile."""

    def call(self, x):
        y = tf.numpy_function(lambda a: a, [x], tf.float32)
        return tf.reshape(y, tf.shape(x))

    def compute_output_shape(self, input_shape):
        return input_shape


def agent_xla_cannot_compile(jit_compile):
    keras.utils.set_random_seed(0)
    env = CountingEnv(terminate_at=20)
    actor, critic, action_in = small_models(env.observation_space.shape, hidden=8, actor_layer=NumpyIdentity())
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=100),
        nb_steps_warmup_critic=5,
        nb_steps_warmup_actor=5,
        batch_size=4,
        jit_compile=jit_compile,
    )
    agent.compile("adam")
    return env, agent


def test_auto_jit_falls_back_when_xla_cannot_compile(monkeypatch):
    monkeypatch.setattr(xla_module, "accelerator_visible", lambda: True)  # where "auto" picks XLA
    env, agent = agent_xla_cannot_compile("auto")
    assert agent.jit_compile is True
    with pytest.warns(UserWarning, match="XLA could not compile"):
        agent.fit(env, nb_steps=20, verbose=0)
    assert agent.jit_compile is False and agent.step == 20


def test_auto_jit_on_cpu_only_trains_without_xla(monkeypatch, recwarn):
    monkeypatch.setattr(xla_module, "accelerator_visible", lambda: False)
    # a short run on a CPU: plain TensorFlow
    env, agent = agent_xla_cannot_compile("auto")
    agent.fit(env, nb_steps=20, verbose=0)
    assert agent.jit_compile is False and agent.step == 20
    assert not [w for w in recwarn if "XLA" in str(w.message)]


def test_explicit_jit_raises_when_xla_cannot_compile():
    env, agent = agent_xla_cannot_compile(True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        agent.fit(env, nb_steps=20, verbose=0)


def test_explicit_jit_applies_to_training_only():
    # Acting alone is never compiled with XLA: warm-up steps and `test` run with such an actor.
    env, agent = agent_xla_cannot_compile(True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        agent.fit(env, nb_steps=20, verbose=0)
    assert agent.step == 7  # every step before the first training call acted without XLA
    history = agent.test(env, nb_episodes=1, verbose=0)
    assert history.history["nb_steps"] == [20]
