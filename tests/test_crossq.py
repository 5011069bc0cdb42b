"""CrossQ and its batch renormalisation layer: the layer's maths, the agent's joint pass, bad input,
seeding, exact resume, and learning Pendulum-v1."""

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from crossq_pendulum import build_models, make_agent
from crossq_pendulum import main as crossq_example

from rl.agents import CrossQAgent
from rl.engine import GraphBatch, UpdateStep
from rl.layers import BatchRenormalization
from rl.memory import SequentialMemory

# ----------------------------------------------------------------- the layer


def batches(n, shape=(64, 5), seed=0, loc=3.0, scale=2.0):
    rng = np.random.default_rng(seed)
    return [rng.normal(loc, scale, shape).astype(np.float32) for _ in range(n)]


def test_the_layer_is_batch_normalisation_during_its_warm_up():
    bn = keras.layers.BatchNormalization(momentum=0.9)
    brn = BatchRenormalization(momentum=0.9, warmup_steps=5)
    for layer in (bn, brn):
        layer.build((None, 5))
    for x in batches(5):
        np.testing.assert_allclose(brn(x, training=True), bn(x, training=True), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(brn.moving_mean.numpy(), bn.moving_mean.numpy(), rtol=1e-6)
        np.testing.assert_allclose(brn.moving_variance.numpy(), bn.moving_variance.numpy(), rtol=1e-6)
    test_batch = batches(1, seed=1)[0]
    np.testing.assert_allclose(brn(test_batch), bn(test_batch), rtol=1e-5, atol=1e-5)  # inference
    assert float(brn.steps.numpy()) == 5.0
    after = batches(1, seed=2)[0]  # the 6th training call renormalises: no longer batch normalisation
    assert not np.allclose(brn(after, training=True), bn(after, training=True), atol=1e-3)


def renormalised(x, moving_mean, moving_variance, r_max, d_max, eps=1e-3):
    """The layer's training output past its warm-up (gamma = 1, beta = 0), in numpy."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    sigma = np.sqrt(moving_variance + eps)
    r = np.clip(np.sqrt(var + eps) / sigma, 1 / r_max, r_max)
    d = np.clip((mean - moving_mean) / sigma, -d_max, d_max)
    return (x - mean) / np.sqrt(var + eps) * r + d, r, d


@pytest.mark.parametrize(
    "loc, scale, expect_r, expect_d",
    [(50.0, 100.0, 3.0, 5.0), (-50.0, 0.01, 1 / 3, -5.0), (0.2, 1.5, None, None)],
    ids=["both-clipped-high", "both-clipped-low", "unclipped"],
)
def test_past_the_warm_up_the_correction_is_clipped_to_r_max_and_d_max(loc, scale, expect_r, expect_d):
    layer = BatchRenormalization(warmup_steps=0, r_max=3.0, d_max=5.0, momentum=0.5)
    layer.build((None, 4))
    x = batches(1, shape=(256, 4), seed=3, loc=loc, scale=scale)[0]
    expected, r, d = renormalised(x, np.zeros(4), np.ones(4), 3.0, 5.0)
    if expect_r is not None:  # every feature's correction at its bound
        np.testing.assert_allclose(r, expect_r, rtol=1e-6)
        np.testing.assert_allclose(d, expect_d, rtol=1e-6)
    else:  # inside the bounds, renormalising is normalising by the moving statistics
        assert np.all((r > 1 / 3) & (r < 3)) and np.all(np.abs(d) < 5)
        np.testing.assert_allclose(expected, x / np.sqrt(1 + 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-4, atol=1e-4)
    # The moving statistics move toward the batch's by (1 - momentum).
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * x.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * x.var(axis=0), rtol=1e-4)


def test_the_correction_carries_no_gradient_and_inference_uses_the_moving_statistics():
    layer = BatchRenormalization(warmup_steps=0, center=False, scale=False)
    layer.build((None, 2))
    x = tf.constant(batches(1, shape=(32, 2), seed=4)[0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) * tf.range(32, dtype=tf.float32)[:, None])
    grad = tape.gradient(loss, x).numpy()
    # With r, d constants, y = r * BN(x) + d: its gradient is r times batch normalisation's.
    with tf.GradientTape() as tape:
        tape.watch(x)
        mean, var = tf.nn.moments(x, [0])
        loss = tf.reduce_sum((x - mean) / tf.sqrt(var + 1e-3) * tf.range(32, dtype=tf.float32)[:, None])
    r = np.clip(np.sqrt(var.numpy() + 1e-3) / np.sqrt(1 + 1e-3), 1 / 3, 3)
    expected = r * tape.gradient(loss, x).numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)
    steps, moving_mean = float(layer.steps.numpy()), layer.moving_mean.numpy().copy()
    expected = (x.numpy() - moving_mean) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
    layer.trainable = False  # a frozen layer is in inference even with training=True
    np.testing.assert_allclose(layer(x, training=True), layer(x), rtol=1e-6)
    assert float(layer.steps.numpy()) == steps  # inference counts nothing and moves nothing
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean)


def test_the_layer_saves_and_loads_with_its_statistics(tmp_path):
    x_in = keras.Input((3,))
    model = keras.Model(x_in, keras.layers.Dense(1)(BatchRenormalization(warmup_steps=2, r_max=2.0, d_max=1.0)(x_in)))
    for x in batches(3, shape=(16, 3), seed=5):
        model(x, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # no custom_objects: the layer is registered
    layer = loaded.layers[1]
    assert isinstance(layer, BatchRenormalization)
    assert (layer.warmup_steps, layer.r_max, layer.d_max, layer.momentum) == (2, 2.0, 1.0, 0.99)
    assert float(layer.steps.numpy()) == 3.0
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = batches(1, shape=(16, 3), seed=6)[0]
    np.testing.assert_array_equal(loaded(x), model(x))
    np.testing.assert_array_equal(loaded(x, training=True), model(x, training=True))
    clone = BatchRenormalization.from_config(model.layers[1].get_config())
    assert clone.get_config() == model.layers[1].get_config()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"momentum": 1.5}, ValueError),
        ({"epsilon": 0.0}, ValueError),
        ({"r_max": 0.5}, ValueError),
        ({"d_max": -1.0}, ValueError),
        ({"warmup_steps": -1}, ValueError),
        ({"warmup_steps": 2.5}, TypeError),
        ({"axis": "last"}, TypeError),
        ({"center": "yes"}, TypeError),
    ],
)
def test_the_layer_refuses_bad_arguments_naming_them(kwargs, error):
    name, value = next(iter(kwargs.items()))
    with pytest.raises(error, match=f"{name}={value!r}".replace(".", r"\.")):
        BatchRenormalization(**kwargs)


def test_the_layer_refuses_an_axis_the_input_lacks():
    with pytest.raises(ValueError, match="axis=3"):
        BatchRenormalization(axis=3)(keras.Input((4,)))


# ----------------------------------------------------------------- the agent


def crossq(env=None, seed=0, hidden=16, warmup=20, batch_size=8, bn_warmup=30, **kwargs):
    """A small compiled CrossQ agent for a 1-action environment (Pendulum-v1's shape by default)."""
    keras.utils.set_random_seed(seed)
    shape = env.observation_space.shape if env is not None else (3,)
    actor, critic, action_in = build_models(shape, 1, (hidden, hidden), warmup_steps=bn_warmup)
    args = dict(nb_actions=1, actor=actor, critic=critic, critic_action_input=action_in, batch_size=batch_size)
    args.update(memory=SequentialMemory(limit=1000, seed=seed), nb_steps_warmup=warmup, **kwargs)
    agent = CrossQAgent(**args)
    agent.compile()
    return agent


def renorm_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BatchRenormalization)]


def all_weights(agent):
    """Every network's weights, the normalisation statistics included, and every optimizer's state."""
    nets = [w for m in agent.models.values() for w in m.get_weights()]
    return nets + [v.numpy() for o in agent.optimizers.values() for v in o.variables] + [agent.log_ent_coef.numpy()]


def test_the_flat_layout_trains_exactly_as_the_networks_own_variables():
    """The flat layout packs the trainable weights and writes the statistics back to the layers:
    weights and statistics after training, past the renormalisation warm-up (30 calls), are the
    variable layout's, bit for bit."""
    results = []
    for flat in (True, False):
        env = gym.make("Pendulum-v1")
        agent = crossq(env, seed=3)
        agent._flat_allowed = flat
        agent.compile()
        assert agent.flat_weights is flat
        agent.fit(env, nb_steps=300, verbose=0, seed=3)
        layers = renorm_layers(agent.critic)
        assert float(layers[0].steps.numpy()) > 30  # renormalising by now
        results.append([w for m in agent.models.values() for w in m.get_weights()])
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_construction_has_no_target_networks_and_the_papers_optimizers():
    agent = crossq()
    assert list(agent.models) == ["actor", "critic", "critic2"] and agent.targets == {}
    assert agent.optimizer_groups == {"actor": ["actor"], "critic": ["critic", "critic2"], "entropy": ["log_ent_coef"]}
    for group, beta_1 in (("critic", 0.5), ("actor", 0.5), ("entropy", 0.9)):
        optimizer = agent.optimizers[group]
        assert isinstance(optimizer, keras.optimizers.Adam) and optimizer.beta_1 == beta_1, group
        assert float(optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    config = agent.get_config()
    assert config["policy_delay"] == 3 and config["n_critics"] == 2 and "target_model_update" not in config
    # The networks hold normalisation statistics (non-trainable weights), and still train in the flat layout.
    assert agent.critic.non_trainable_weights and agent.flat_weights
    assert renorm_layers(agent.models["critic2"]) and agent.models["critic2"] is not agent.critic
    assert agent.metrics_names == ["critic_loss", "actor_loss", "mean_q", "ent_coef"]


def _narrow_actor():
    x = keras.Input((1, 3))
    return keras.Model(x, keras.layers.Dense(1)(keras.layers.Flatten()(x)))  # nb_actions wide, not 2 * nb_actions


def _wide_critic():
    a, s = keras.Input((1,)), keras.Input((1, 3))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([a, keras.layers.Flatten()(s)]))
    return keras.Model([a, s], out), a


BAD = [
    (lambda: {"target_model_update": 0.005}, TypeError, "no target networks.*target_model_update=0.005"),
    (lambda: {"tau": 0.01}, TypeError, "no target networks.*tau=0.01"),
    (lambda: {"target_actor": True}, TypeError, "target_actor=True"),
    (lambda: {"learning_rate": 1e-3}, TypeError, "unexpected argument `learning_rate`.*learning_rate=0.001"),
    (lambda: {"policy_delay": 0}, ValueError, "policy_delay=0"),
    (lambda: {"policy_delay": 1.5}, TypeError, "policy_delay=1.5"),
    (lambda: {"ent_coef": -0.1}, ValueError, "ent_coef=-0.1"),
    (lambda: {"n_critics": 0}, ValueError, "n_critics=0"),
    (lambda: {"actor": _narrow_actor()}, ValueError, r"single output of shape \(None, 2\)"),
    (lambda: dict(zip(("critic", "critic_action_input"), _wide_critic())), ValueError, r"shape \(None, 1\)"),
]
IDS = [
    "target_model_update",
    "tau",
    "target_actor",
    "unknown",
    "policy_delay_0",
    "policy_delay_float",
    "ent_coef",
    "n_critics",
    "actor_width",
    "critic_width",
]


@pytest.mark.parametrize("make_kwargs, error, words", BAD, ids=IDS)
def test_bad_arguments_are_refused_at_construction_naming_them(make_kwargs, error, words):
    with pytest.raises(error, match=words):
        crossq(**make_kwargs())


def test_a_discrete_action_space_is_refused():
    agent = crossq()
    with pytest.raises(TypeError, match="continuous action space.*Discrete"):
        agent.fit(gym.make("CartPole-v1"), nb_steps=10, verbose=0)


def test_one_update_runs_both_halves_through_the_critics_in_one_training_pass():
    """The critic's first layer normalises [action, observation]: its statistics move once, by the
    mean over the 2B rows of s0 and s1."""
    agent = crossq(batch_size=4)
    agent.prepare_inputs(np.zeros(3, np.float32))
    rng = np.random.default_rng(0)
    s0, s1 = (rng.normal(size=(4, 1, 3)).astype(np.float32) for _ in range(2))
    batch = GraphBatch(
        tf.constant(s0),
        tf.constant(rng.uniform(-2, 2, (4, 1)).astype(np.float32)),
        tf.ones(4),
        tf.zeros(4),
        tf.constant(s1),
    )
    first = renorm_layers(agent.critic)[0]
    actor_first = renorm_layers(agent.actor)[0]
    agent.train_step(agent.nets, batch, UpdateStep(frozenset({"critic", "actor", "entropy"}), 0))
    assert float(first.steps.numpy()) == 1.0  # one pass, not one per half
    both = np.concatenate([s0, s1])[:, 0]  # [2B, 3]
    np.testing.assert_allclose(first.moving_mean.numpy()[1:], 0.01 * both.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy()[1:], 0.99 + 0.01 * both.var(axis=0), rtol=1e-5)
    assert float(actor_first.steps.numpy()) == 0.0  # step 0 of 3: no actor update; a1 sampled in inference
    assert int(agent.critic_optimizer.iterations.numpy()) == 1 and int(agent.actor_optimizer.iterations.numpy()) == 0
    agent.train_step(agent.nets, batch, UpdateStep(frozenset({"critic", "actor", "entropy"}), 2))
    assert float(actor_first.steps.numpy()) == 1.0  # the delayed actor update runs the actor in training mode
    assert int(agent.actor_optimizer.iterations.numpy()) == 1
    assert int(agent.optimizers["entropy"].iterations.numpy()) == 1


def test_fit_updates_the_actor_every_policy_delay_steps_and_test_changes_no_statistics():
    env = gym.make("Pendulum-v1", max_episode_steps=40)
    agent = crossq(env, warmup=10)
    agent.fit(env, nb_steps=71, verbose=0, seed=0)  # steps 11..70 schedule 60 updates; the last is pending
    assert int(agent.critic_optimizer.iterations.numpy()) == 59
    assert int(agent.actor_optimizer.iterations.numpy()) == 19  # every third update
    assert [float(x.steps.numpy()) for x in renorm_layers(agent.critic)] == [59.0] * 3
    metrics = dict(zip(agent.metrics_names, agent.last_metrics))
    assert np.isnan(metrics.pop("actor_loss"))  # the 59th update is the second of its cycle: no actor update
    assert np.all(np.isfinite(list(metrics.values()))), metrics
    before = all_weights(agent)
    first = agent.test(env, nb_episodes=2, visualize=False, verbose=0, seed=5).history["episode_reward"]
    again = agent.test(env, nb_episodes=2, visualize=False, verbose=0, seed=5).history["episode_reward"]
    assert first == again  # the mean action, on the moving statistics
    for a, b in zip(before, all_weights(agent)):
        np.testing.assert_array_equal(a, b)


def test_the_same_seed_gives_the_same_weights_and_another_seed_others():
    runs = []
    for seed in (3, 3, 4):
        env = gym.make("Pendulum-v1", max_episode_steps=30)
        agent = crossq(env, seed=seed, policy_delay=1)  # one training trace instead of three
        history = agent.fit(env, nb_steps=90, verbose=0, seed=seed)
        runs.append((history.history["episode_reward"], all_weights(agent)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0][1], runs[2][1]))


def test_a_checkpoint_resumes_the_run_exactly_with_the_normalisation_statistics(tmp_path):
    def build(seed):
        env = gym.make("Pendulum-v1", max_episode_steps=50)
        return crossq(env, seed=seed, bn_warmup=40), env

    agent, env = build(seed=0)
    agent.fit(env, nb_steps=100, verbose=0, seed=0)  # two whole episodes; the renormalisation is on from 40 updates
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    saved = all_weights(agent)
    agent.fit(env, nb_steps=60, verbose=0)

    other, other_env = build(seed=1)  # other weights, other seeds
    other.load_checkpoint(tmp_path / "ckpt", env=other_env)
    for a, b in zip(saved, all_weights(other)):
        np.testing.assert_array_equal(a, b)
    assert float(renorm_layers(other.critic)[0].steps.numpy()) == 78.0  # updates after steps 21..99, the last pending
    other.fit(other_env, nb_steps=60, verbose=0)
    assert other.step == agent.step == 160
    for a, b in zip(all_weights(agent), all_weights(other)):
        np.testing.assert_array_equal(a, b)


def test_weights_files_hold_the_statistics_and_vector_environments_train(tmp_path):
    env = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync", max_episode_steps=20)
    agent = crossq(warmup=10, policy_delay=1)
    agent.fit(env, nb_steps=60, verbose=0, seed=0)
    assert int(agent.critic_optimizer.iterations.numpy()) > 0
    agent.save_weights(tmp_path / "crossq.weights.h5")
    other = crossq(seed=1)
    other.load_weights(tmp_path / "crossq.weights.h5")
    for role in ("actor", "critic", "critic2"):
        for a, b in zip(agent.models[role].get_weights(), other.models[role].get_weights()):
            np.testing.assert_array_equal(a, b)
    assert float(renorm_layers(other.critic)[0].steps.numpy()) > 0


# ----------------------------------------------------------------- learning

# A random policy scores about -1 200 on Pendulum-v1. Measured with [64, 64] networks and batch 128: on
# an AMD EPYC, 5 000 steps gave seeds 0 to 3 mean test returns of -200, -176, -207 and -121; on an Intel
# Xeon (family 6, model 167) seed 0 scored -480 after 5 000 steps (seeds 1 and 2: -194, -196) and -190
# after 6 000 (-193 after 8 000): CPUs round differently, and 6 000 steps leave a margin on both.
PENDULUM_THRESHOLD = -400.0


def test_learns_pendulum():
    keras.utils.set_random_seed(0)
    env = gym.make("Pendulum-v1")
    agent = make_agent(env, 0, hidden=(64, 64), batch_size=128)
    agent.fit(env, nb_steps=6000, verbose=0, seed=0)
    history = agent.test(env, nb_episodes=10, visualize=False, verbose=0, seed=100)
    mean_return = float(np.mean(history.history["episode_reward"]))
    assert mean_return > PENDULUM_THRESHOLD, mean_return


# The example as the target states it: 10 000 steps, mean test return >= -200. Measured: seeds 0,
# 1 and 2 gave -84.7, -144.7 and -165.7 (about 4 minutes of CPU time each).
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_example_learns_pendulum_in_10000_steps(seed, tmp_path):
    argv = ["--steps", "10000", "--seed", str(seed), "--verbose", "0", "--weights", str(tmp_path / "crossq.h5f")]
    mean_return = crossq_example(argv)
    assert mean_return >= -200.0, mean_return
