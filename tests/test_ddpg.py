import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CountingEnv, small_models
from keras import layers

import rl.engine.layout as layout_module
from rl.agents import DDPGAgent
from rl.core import Processor
from rl.engine.batch import TrainOptions as _TrainOptions
from rl.memory import SequentialMemory
from rl.random import OrnsteinUhlenbeckProcess


def make_agent(env, window_length=1, warmup=20, seed=0, metrics=None, flatten=True, **kwargs):
    keras.utils.set_random_seed(seed)
    actor, critic, action_in = small_models(env.observation_space.shape, window_length=window_length, flatten=flatten)
    agent = DDPGAgent(
        nb_actions=1,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=SequentialMemory(limit=1000, window_length=window_length, seed=seed),
        nb_steps_warmup_critic=warmup,
        nb_steps_warmup_actor=warmup,
        random_process=OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=1, seed=seed),
        batch_size=8,
        **kwargs,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=metrics)
    return agent


def test_keras_rl_style_script_runs_unchanged():
    """keras-rl's DDPG example, with only the imports and gym -> gymnasium changed."""
    ENV_NAME = "Pendulum-v1"
    env = gym.make(ENV_NAME)
    np.random.seed(123)
    nb_actions = env.action_space.shape[0]

    actor = keras.Sequential()
    actor.add(layers.Flatten(input_shape=(1,) + env.observation_space.shape))
    actor.add(layers.Dense(16))
    actor.add(layers.Activation("relu"))
    actor.add(layers.Dense(nb_actions))
    actor.add(layers.Activation("linear"))

    action_input = keras.Input(shape=(nb_actions,), name="action_input")
    observation_input = keras.Input(shape=(1,) + env.observation_space.shape, name="observation_input")
    flattened_observation = layers.Flatten()(observation_input)
    x = layers.Concatenate()([action_input, flattened_observation])
    x = layers.Dense(32)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dense(1)(x)
    x = layers.Activation("linear")(x)
    critic = keras.Model(inputs=[action_input, observation_input], outputs=x)

    memory = SequentialMemory(limit=100000, window_length=1)
    random_process = OrnsteinUhlenbeckProcess(size=nb_actions, theta=0.15, mu=0.0, sigma=0.3)
    agent = DDPGAgent(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_input,
        memory=memory,
        nb_steps_warmup_critic=100,
        nb_steps_warmup_actor=100,
        random_process=random_process,
        gamma=0.99,
        target_model_update=1e-3,
    )
    agent.compile(keras.optimizers.Adam(learning_rate=0.001, clipnorm=1.0), metrics=["mae"])

    history = agent.fit(env, nb_steps=400, visualize=False, verbose=0, nb_max_episode_steps=200)
    assert agent.metrics_names == ["critic_loss", "actor_loss", "mean_q", "mae"]
    assert history.history["nb_episode_steps"] == [200, 200]
    test_history = agent.test(env, nb_episodes=1, visualize=False, nb_max_episode_steps=200, verbose=0)
    assert len(test_history.history["episode_reward"]) == 1
    assert np.isfinite(test_history.history["episode_reward"][0])


def test_metrics_are_nan_in_warmup_then_finite():
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env, warmup=5, metrics=["mae"])
    seen = []

    from rl.callbacks import Callback

    class Grab(Callback):
        def on_step_end(self, step, logs=None):
            seen.append(np.array(logs["metrics"]))

    agent.fit(env, nb_steps=12, verbose=0, callbacks=[Grab()])
    assert np.isnan(seen[0]).all()
    assert np.isfinite(seen[-1]).all() and seen[-1].shape == (4,)


def test_plain_observation_shape_inputs_work_for_window_one():
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env, flatten=False)
    agent.fit(env, nb_steps=30, verbose=0)
    assert agent.step == 30


def test_window_length_three_trains():
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env, window_length=3)
    agent.fit(env, nb_steps=40, verbose=0)
    batch = agent.memory.sample(4)
    assert batch.state0.shape == (4, 3, 2)


def test_multi_input_models_with_dict_observations_through_a_processor():
    class DictEnv(CountingEnv):
        def __init__(self):
            super().__init__(terminate_at=8, obs_dim=3)
            self.observation_space = gym.spaces.Dict(
                {"pos": gym.spaces.Box(-np.inf, np.inf, (2,)), "vel": gym.spaces.Box(-np.inf, np.inf, (1,))}
            )

        def _obs(self):
            return {"pos": np.array([self.t, 1.0], np.float32), "vel": np.array([-self.t], np.float32)}

    class DictProcessor(Processor):
        def process_observation(self, observation):
            return np.concatenate([observation["pos"], observation["vel"]])

        def process_state_batch(self, batch):
            return [batch[:, 0, :2], batch[:, 0, 2:]]

    keras.utils.set_random_seed(0)
    pos, vel = keras.Input((2,), name="pos"), keras.Input((1,), name="vel")
    actor = keras.Model([pos, vel], layers.Dense(1, activation="tanh")(layers.Concatenate()([pos, vel])))
    a_in, c_pos, c_vel = keras.Input((1,)), keras.Input((2,)), keras.Input((1,))
    critic = keras.Model([c_pos, a_in, c_vel], layers.Dense(1)(layers.Concatenate()([a_in, c_pos, c_vel])))
    agent = DDPGAgent(
        1,
        actor,
        critic,
        a_in,
        SequentialMemory(100, seed=0),
        batch_size=4,
        nb_steps_warmup_actor=5,
        nb_steps_warmup_critic=5,
        processor=DictProcessor(),
    )
    agent.compile("adam")
    history = agent.fit(DictEnv(), nb_steps=24, verbose=0)
    assert history.history["nb_episode_steps"] == [8, 8, 8]
    assert np.isfinite(agent.backward(0.0, False)).all()


def test_td_target_bootstraps_unless_terminal():
    """With a constant critic Q = 5, the TD target is r (terminal) or r + gamma * 5 (truncated)."""

    def td_target(y_true, y_pred):
        return y_true

    for terminal, expected in ((True, 1.0), (False, 1.0 + 0.9 * 5.0)):
        env = CountingEnv()
        agent = make_agent(env, warmup=0, metrics=[td_target], gamma=0.9, target_model_update=1e-12)
        for layer in agent.target_critic.layers:
            if layer.weights:
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
        agent.target_critic.layers[-1].bias.assign([5.0])
        agent.check_env(env)
        agent.training = True
        obs = np.zeros(2, np.float32)
        for _ in range(3):
            agent.forward(obs)
            agent.backward(1.0, terminal=terminal, truncated=not terminal, next_observation=obs + 1)
            agent.step += 1  # as the loop does
            agent.reset_states()
        agent.forward(obs)  # runs the pending training step
        metrics = agent.backward(1.0, terminal, truncated=not terminal, next_observation=obs)
        assert metrics[3] == pytest.approx(expected, rel=1e-6)


def test_soft_target_update_after_one_training_step():
    env = CountingEnv(terminate_at=50)
    agent = make_agent(env, warmup=10, target_model_update=0.1)
    before = agent.actor.get_weights()
    agent.fit(env, nb_steps=13, verbose=0)  # steps 11 and 12 schedule training; the first one runs
    after = agent.actor.get_weights()
    for t, b, a in zip(agent.target_actor.get_weights(), before, after):
        np.testing.assert_allclose(t, 0.1 * a + 0.9 * b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(after, before))


def test_hard_target_update_copies_every_n_steps():
    env = CountingEnv(terminate_at=50)
    agent = make_agent(env, warmup=2, target_model_update=5, train_interval=5)
    before = agent.target_critic.get_weights()
    agent.fit(env, nb_steps=12, verbose=0)  # steps 5 and 10: a training step, then a hard copy
    assert any(not np.allclose(t, b) for t, b in zip(agent.target_critic.get_weights(), before))
    for t, a in zip(agent.target_critic.get_weights(), agent.critic.get_weights()):
        np.testing.assert_allclose(t, a)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env)
    agent.fit(env, nb_steps=40, verbose=0)
    path = str(tmp_path / "ddpg_{}_weights.h5f")
    agent.save_weights(path)
    assert (tmp_path / "ddpg_actor_weights.weights.h5").exists()
    assert (tmp_path / "ddpg_critic_weights.weights.h5").exists()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        agent.save_weights(path)
    agent.save_weights(path, overwrite=True)

    other = make_agent(env, seed=1)
    obs = np.array([3.0, 3.0], np.float32)
    other.reset_states()
    assert not np.allclose(other.forward(obs), agent.forward(obs))
    other.load_weights(path)
    agent.reset_states()
    other.reset_states()
    np.testing.assert_array_equal(other.forward(obs), agent.forward(obs))
    for t, a in zip(other.target_actor.get_weights(), other.actor.get_weights()):
        np.testing.assert_array_equal(t, a)


def test_weights_paths_mapping():
    assert DDPGAgent.weights_paths("ddpg_{}_weights.h5f") == (
        "ddpg_actor_weights.weights.h5",
        "ddpg_critic_weights.weights.h5",
    )
    assert DDPGAgent.weights_paths("run/ddpg.weights.h5") == ("run/ddpg_actor.weights.h5", "run/ddpg_critic.weights.h5")
    assert DDPGAgent.weights_paths("ddpg.h5") == ("ddpg_actor.weights.h5", "ddpg_critic.weights.h5")


def test_same_seed_gives_same_returns_and_weights():
    results = []
    for _ in range(2):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=4)
        history = agent.fit(env, nb_steps=80, verbose=0, seed=4)
        results.append((history.history["episode_reward"], agent.actor.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_nothing_is_retraced_after_the_first_steps():
    env = CountingEnv(terminate_at=15)
    agent = make_agent(env, warmup=10)
    agent.fit(env, nb_steps=30, verbose=0)
    agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    traces = agent.trace_count
    assert traces == 3  # acting while training, the training step, acting in test
    agent.fit(env, nb_steps=200, verbose=0)
    agent.test(env, nb_episodes=2, visualize=False, verbose=0)
    assert agent.trace_count == traces


def test_noise_only_while_training_and_actions_clipped():
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env)
    agent.check_env(env)
    obs = np.ones(2, np.float32)
    agent.training = False
    a1, a2 = agent.forward(obs), agent.forward(obs)
    np.testing.assert_array_equal(a1, a2)
    agent.random_process = OrnsteinUhlenbeckProcess(theta=0.15, sigma=1e4, size=1, seed=0)
    agent.training = True
    noisy = agent.forward(obs)
    assert abs(noisy[0]) == 2.0  # huge noise, clipped to the Box bounds


def test_delta_clip_and_deprecated_delta_range():
    env = CountingEnv(terminate_at=10)
    with pytest.warns(DeprecationWarning, match="delta_clip"):
        agent = make_agent(env, delta_range=(-1.0, 1.0))
    assert agent.delta_clip == 1.0
    agent.fit(env, nb_steps=30, verbose=0)
    assert np.isfinite(agent.backward(0.0, False)[0])


def test_compile_accepts_strings_and_pairs():
    env = CountingEnv(terminate_at=10)
    agent = make_agent(env)
    agent.compile("adam")
    assert agent.actor_optimizer is not agent.critic_optimizer
    opt_a, opt_c = keras.optimizers.Adam(1e-4), keras.optimizers.SGD(1e-2)
    agent.compile([opt_a, opt_c])
    assert agent.actor_optimizer is opt_a and agent.critic_optimizer is opt_c
    agent.fit(env, nb_steps=25, verbose=0)


@pytest.mark.parametrize("pack_max", [4096, 20])
def test_flat_and_per_variable_training_give_the_same_weights(monkeypatch, pack_max):
    """The flat weight layout is an implementation detail: the maths must not change.

    With `pack_max=20` the kernels (48 and 16 weights and up) keep their own variables and only
    the small arrays are packed: the mixed layout large networks get.
    """
    monkeypatch.setattr(layout_module, "PACK_MAX_SIZE", pack_max)
    results = []
    for flat in (True, False):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=6, metrics=["mae"])
        agent._flat_allowed = flat
        agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
        assert agent.flat_weights is flat
        if flat:
            own = sum(len(net.own) for net in agent.nets.values())
            packed = sum(len(net.packed) for net in agent.nets.values())
            assert (own == 0) if pack_max == 4096 else (own > 0 and packed > 0)
        history = agent.fit(env, nb_steps=120, verbose=0, seed=6)
        results.append((history.history["episode_reward"], [m.get_weights() for m in agent.layers]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(sum(results[0][1], []), sum(results[1][1], [])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("pack_max", [4096, 20])
def test_xla_and_plain_tensorflow_train_to_the_same_weights(monkeypatch, pack_max):
    """`jit_compile` changes how the training step runs, not what it computes (both weight layouts)."""
    monkeypatch.setattr(layout_module, "PACK_MAX_SIZE", pack_max)
    results = []
    for jit in (True, False):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=6, jit_compile=jit)
        history = agent.fit(env, nb_steps=120, verbose=0, seed=6)
        assert agent.jit_compile is jit  # XLA compiled it: no fallback
        results.append((history.history["episode_reward"], [m.get_weights() for m in agent.layers]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    for a, b in zip(sum(results[0][1], []), sum(results[1][1], [])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_batches_written_in_place_train_like_the_general_path():
    """The memory writes batches straight into the packed input unless a processor reshapes states."""

    class SameStates(Processor):
        def process_state_batch(self, batch):
            return batch + 0.0  # the same values, through the general path

    results = []
    for processor in (None, SameStates()):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=4, processor=processor)
        history = agent.fit(env, nb_steps=120, verbose=0, seed=4)
        assert agent._sample_into is (processor is None)
        results.append((history.history["episode_reward"], [m.get_weights() for m in agent.layers]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6)
    for a, b in zip(sum(results[0][1], []), sum(results[1][1], [])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_metrics_with_python_control_flow_on_tensors_still_work():
    """Traces run without AutoGraph first; a metric function that needs it gets it."""

    def clipped_error(y_true, y_pred):
        err = tf.reduce_mean(tf.abs(y_true - y_pred))
        if err > 1e6:  # a Python `if` on a tensor: needs AutoGraph inside a graph
            return tf.constant(1e6)
        return err

    env = CountingEnv(terminate_at=20)
    agent = make_agent(env, warmup=10, metrics=[clipped_error])
    history = agent.fit(env, nb_steps=60, verbose=0)
    metrics = np.array(agent.backward(0.0, False, next_observation=np.zeros(env.observation_space.shape)))
    assert agent.metrics_names[-1] == "clipped_error"
    assert np.isfinite(metrics[-1]) and 0.0 < metrics[-1] < 1e6
    assert history.history["nb_steps"][-1] == 60


def test_flat_layout_is_chosen_only_where_it_is_exact():
    env = CountingEnv()
    agent = make_agent(env)
    assert agent.flat_weights  # Adam on float32 Dense models
    for clip in ({"clipnorm": 1.0}, {"clipvalue": 0.5}, {"global_clipnorm": 1.0}):
        agent.compile(keras.optimizers.Adam(learning_rate=1e-3, **clip))
        assert agent.flat_weights  # clipping is done per original weight array
    agent.compile(keras.optimizers.Adafactor())
    assert not agent.flat_weights  # its update is not element-wise
    opt = keras.optimizers.AdamW(learning_rate=1e-3)
    opt.exclude_from_weight_decay(var_names=["bias"])
    agent.compile(opt)
    assert not agent.flat_weights


@pytest.mark.parametrize(
    "optimizer, clip",
    [
        ("Adam", {"clipnorm": 0.05}),
        ("SGD", {"clipnorm": 0.05}),
        ("SGD", {"clipvalue": 0.01}),
        # Adam divides by the gradient's scale, so float rounding in the global norm (summed in
        # another order over packed arrays) grows over 100 steps: SGD shows the maths is the same.
        ("SGD", {"global_clipnorm": 0.05}),
    ],
)
@pytest.mark.parametrize("pack_max", [4096, 20])
def test_gradient_clipping_keeps_the_flat_layout_and_its_results(monkeypatch, pack_max, optimizer, clip):
    """keras-rl's example compiles Adam(clipnorm=1.): the flat layout clips each original weight
    array as Keras does per variable, so it trains to the per-variable layout's weights."""
    monkeypatch.setattr(layout_module, "PACK_MAX_SIZE", pack_max)
    results = []
    for flat in (True, False):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=6)
        agent._flat_allowed = flat
        agent.compile(getattr(keras.optimizers, optimizer)(learning_rate=1e-2, **clip), metrics=["mae"])
        assert agent.flat_weights is flat
        history = agent.fit(env, nb_steps=120, verbose=0, seed=6)
        results.append((history.history["episode_reward"], [m.get_weights() for m in agent.layers]))
    unclipped = make_agent(CountingEnv(terminate_at=20), seed=6)
    unclipped.compile(getattr(keras.optimizers, optimizer)(learning_rate=1e-2))
    unclipped.fit(CountingEnv(terminate_at=20), nb_steps=120, verbose=0, seed=6)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    # The flat layout sums each array's squared gradient in another order (one segment sum for
    # all packed arrays): after 120 steps at learning rate 1e-2, weights agree to about 1e-6.
    for a, b in zip(sum(results[0][1], []), sum(results[1][1], [])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # and the clipping did something: without it the weights differ
    plain = sum([m.get_weights() for m in unclipped.layers], [])
    assert any(not np.allclose(a, b, atol=1e-4) for a, b in zip(sum(results[0][1], []), plain))


@pytest.mark.parametrize("pack_max", [4096, 20])
def test_callbacks_see_live_weights_and_loggers_skip_the_copies(monkeypatch, pack_max):
    """With flat weights, a callback's hooks see the current weights, all arrays alike; a callback
    that declares `touches_weights = False` sees the models as `fit` found them (no copies)."""
    from rl.callbacks import Callback

    monkeypatch.setattr(layout_module, "PACK_MAX_SIZE", pack_max)
    env = CountingEnv(terminate_at=20)
    agent = make_agent(env, warmup=10)
    assert agent.flat_weights
    start = [w.copy() for w in agent.actor.get_weights()]
    seen, unsynced = [], []

    class Watch(Callback):
        def on_step_end(self, step, logs=None):
            if self.model.step == 60:
                seen.append(self.model.actor.get_weights())

    class Logs(Callback):
        touches_weights = False

        def on_step_end(self, step, logs=None):
            if self.model.step == 60:
                unsynced.append(self.model.actor.get_weights())

    agent.fit(env, nb_steps=80, verbose=0, callbacks=[Watch()])
    assert len(seen) == 1
    assert all(not np.allclose(a, b) for a, b in zip(seen[0], start))  # trained by step 60
    final = agent.actor.get_weights()
    assert all(not np.allclose(a, b) for a, b in zip(final, seen[0]))  # 20 more steps trained
    other = make_agent(CountingEnv(terminate_at=20), warmup=10)
    start = [w.copy() for w in other.actor.get_weights()]
    other.fit(CountingEnv(terminate_at=20), nb_steps=80, verbose=0, callbacks=[Logs()])
    assert len(unsynced) == 1
    for a, b in zip(unsynced[0], start):  # no copies for it: the models as fit found them
        np.testing.assert_array_equal(a, b)


def test_hand_written_loop_trains_and_acts_with_current_weights():
    env = CountingEnv()
    agent = make_agent(env, warmup=0)
    agent.check_env(env)
    agent.training = True
    obs = np.zeros(2, np.float32)
    before = agent.actor.get_weights()
    for _ in range(5):
        agent.forward(obs)
        agent.backward(1.0, False, next_observation=obs)
        agent.step += 1
    agent.training = False
    agent.forward(obs)  # acting outside training refreshes the models first
    assert any(not np.allclose(a, b) for a, b in zip(agent.actor.get_weights(), before))


@pytest.mark.parametrize("window_length, flat", [(1, True), (3, True), (1, False)])
def test_several_gradient_steps_in_one_call_equal_as_many_single_steps(window_length, flat):
    """`gradient_steps=K` runs K updates, each on its own batch, in one call: the same weights, next
    action and (mean) metrics as K one-step calls on those batches (flat and per-variable layouts)."""
    env = CountingEnv()
    b, w, rng = 8, window_length, np.random.default_rng(3)
    s0, s1 = (rng.normal(size=(2, b, w, 2)).astype(np.float32) for _ in range(2))
    rows = np.concatenate([rng.uniform(-2, 2, (2, b, 1)), rng.normal(size=(2, b, 1)), rng.integers(0, 2, (2, b, 1))], 2)
    act = rng.normal(size=w * 2).astype(np.float32)

    def packed(ks):
        return np.concatenate([act] + [x[ks].ravel() for x in (s0, s1, rows)]).astype(np.float32)

    results = []
    for steps, calls in ((2, [[0, 1]]), (1, [[0], [1]])):
        agent = make_agent(env, window_length=w, seed=5, gradient_steps=steps, target_model_update=0.1)
        agent._flat_allowed = flat
        agent.compile(keras.optimizers.Adam(learning_rate=1e-3), metrics=["mae"])
        assert agent.flat_weights is flat
        agent.check_env(env)
        agent._pull()
        outs = [train_call(agent, packed(ks)) for ks in calls]
        agent._push()
        assert int(agent.critic_optimizer.iterations.numpy()) == 2
        weights = [m.get_weights() for m in (agent.actor, agent.critic, agent.target_actor, agent.target_critic)]
        results.append((outs, sum(weights, [])))
    (one_call,), (first, second) = results[0][0], results[1][0]
    np.testing.assert_allclose(one_call[:1], second[:1], rtol=1e-5, atol=1e-6)  # next action
    np.testing.assert_allclose(one_call[1:], (first[1:] + second[1:]) / 2, rtol=1e-5, atol=1e-6)  # mean metrics
    for a, c in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def train_call(agent, flat):
    """Runs one training call (critic and actor, no target copy) on a packed input."""
    options = _TrainOptions(frozenset({"critic", "actor"}), 0, False)
    return agent.call_compiled("train", options, lambda: agent._train_function(options), flat)


def test_gradient_steps_batches_are_drawn_one_sample_call_each():
    """Each of the K batches is its own draw from the memory (its sampling rules hold per batch)."""

    class SameStates(Processor):
        def process_state_batch(self, batch):
            return batch + 0.0  # the general path, through `sample`

    for processor in (None, SameStates()):
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, warmup=10, gradient_steps=3, processor=processor)
        calls = []
        for name in ("sample", "sample_into"):
            original = getattr(agent.memory, name)

            def spy(batch_size, *args, _original=original, _name=name, _calls=calls):
                _calls.append((_name, batch_size))
                return _original(batch_size, *args)

            setattr(agent.memory, name, spy)
        agent.fit(env, nb_steps=13, verbose=0)  # steps 11 and 12 schedule training; the first one runs
        assert calls == [("sample_into" if processor is None else "sample", 8)] * 3


def test_gradient_steps_with_train_interval_makes_k_updates_per_training_call():
    env = CountingEnv(terminate_at=20)
    agent = make_agent(env, warmup=10, gradient_steps=3, train_interval=3, metrics=["mae"])
    history = agent.fit(env, nb_steps=40, verbose=0)
    # Steps 12, 15, ..., 39 schedule a training call; each runs with the next step's forward, so
    # the last one (step 39) is still pending: 9 calls of 3 gradient steps each.
    assert int(agent.critic_optimizer.iterations.numpy()) == 9 * 3
    assert int(agent.actor_optimizer.iterations.numpy()) == 9 * 3
    assert np.isfinite(history.history["episode_reward"]).all()
    assert agent.get_config()["gradient_steps"] == 3


def test_fast_direct_call_is_active():
    from rl.engine.compiled import _mode_works, direct_mode

    assert direct_mode() == "execute"
    # and each fallback computes the same thing, applying the variable update once
    assert _mode_works("call_flat") and _mode_works("public")


@pytest.mark.parametrize("when", ["before the agent", "after the agent"])
def test_a_frozen_layer_stays_as_it_was_in_either_layout(when):
    """A layer frozen with `trainable = False` holds non-trainable weights: the flat layout packs
    the rest, leaves the frozen weights untouched, and trains what the variable layout trains. A
    layer frozen after the agent cloned its target critic leaves the two split differently: then
    the variable layout is used."""
    results = []
    for flat in (True, False):
        env = CountingEnv(terminate_at=20)
        keras.utils.set_random_seed(4)
        actor, critic, action_in = small_models(env.observation_space.shape)
        frozen = next(layer for layer in critic.layers if isinstance(layer, layers.Dense))
        if when == "before the agent":
            frozen.trainable = False
        agent = DDPGAgent(
            nb_actions=1,
            actor=actor,
            critic=critic,
            critic_action_input=action_in,
            memory=SequentialMemory(limit=1000, seed=4),
            nb_steps_warmup_critic=20,
            nb_steps_warmup_actor=20,
            random_process=OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=1, seed=4),
            batch_size=8,
        )
        frozen.trainable = False
        before = [w.copy() for w in frozen.get_weights()]
        agent._flat_allowed = flat
        agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
        assert agent.flat_weights is (flat and when == "before the agent")
        assert agent.critic.non_trainable_weights
        agent.fit(env, nb_steps=120, verbose=0, seed=4)
        for a, b in zip(before, frozen.get_weights()):
            np.testing.assert_array_equal(a, b)
        results.append([w for m in agent.models.values() for w in m.get_weights()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
