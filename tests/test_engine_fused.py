"""Keras' Adam applied by TensorFlow's one-kernel update (`rl.engine.fused`) computes what Keras does."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CountingEnv
from test_ddpg import make_agent

from rl.engine import fused as fused_module
from rl.engine import layout as layout_module
from rl.engine.fused import apply_adam, fused_adam_fits

SHAPES = [(7,), (3, 5), (16, 4)]


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=s).astype(np.float32)) for s in SHAPES]


def _train(optimizer, apply, steps=25):
    """`steps` updates of three variables by seeded gradients through `apply`; the state after them."""
    variables = _variables(0)
    optimizer.build(variables)
    rng = np.random.default_rng(1)
    grads = [[tf.constant(rng.normal(size=s).astype(np.float32)) for s in SHAPES] for _ in range(steps)]
    step = tf.function(lambda g: apply(optimizer, list(g), variables))
    for g in grads:
        step(g)
    return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize(
    "learning_rate",
    [1e-2, keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=5, decay_rate=0.5)],
    ids=["constant", "schedule"],
)
def test_fused_adam_matches_keras_adam(learning_rate):
    """Same weights, same moments, same iteration count as `Adam.apply` (float tolerance)."""
    keras_state = _train(keras.optimizers.Adam(learning_rate, beta_1=0.8, epsilon=1e-5), lambda o, g, v: o.apply(g, v))
    fused = keras.optimizers.Adam(learning_rate, beta_1=0.8, epsilon=1e-5)
    assert fused_adam_fits(fused, _variables(0)) is False  # not built yet: Keras builds it on first use
    fused_state = _train(fused, apply_adam)
    assert int(fused.iterations.numpy()) == 25
    for a, b in zip(keras_state[0] + keras_state[1], fused_state[0] + fused_state[1]):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)  # float rounding, weights of order 1


@pytest.mark.parametrize(
    "optimizer",
    [
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.Adam(weight_decay=0.01),
        keras.optimizers.Adam(use_ema=True),
        keras.optimizers.Adam(clipvalue=0.5),
        keras.optimizers.Adam(global_clipnorm=1.0),
        keras.optimizers.Adam(gradient_accumulation_steps=2),
        keras.optimizers.AdamW(),
        keras.optimizers.SGD(),
    ],
    ids=["amsgrad", "weight_decay", "ema", "clipvalue", "global_clipnorm", "accumulation", "AdamW", "SGD"],
)
def test_fused_adam_is_used_only_where_it_is_exact(optimizer):
    variables = _variables(0)
    optimizer.build(variables)
    assert not fused_adam_fits(optimizer, variables)
    plain = keras.optimizers.Adam(clipnorm=1.0)  # clipnorm is applied per array before the update
    plain.build(variables)
    assert fused_adam_fits(plain, variables)
    layer = keras.layers.Dense(2, kernel_constraint=keras.constraints.NonNeg())
    layer.build((None, 3))
    plain_c = keras.optimizers.Adam()
    plain_c.build(layer.trainable_variables)
    assert not fused_adam_fits(plain_c, layer.trainable_variables)  # Keras applies the constraint


@pytest.mark.parametrize("clip", [{}, {"clipnorm": 0.05}], ids=["plain", "clipnorm"])
def test_agents_train_to_the_same_weights_with_and_without_the_fused_update(monkeypatch, clip):
    """A DDPG run through the one-kernel Adam ends where the same run through `Adam.apply` does."""
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(layout_module, "fused_adam_fits", lambda optimizer, variables: False)
        env = CountingEnv(terminate_at=20)
        agent = make_agent(env, seed=6)
        agent.compile(keras.optimizers.Adam(learning_rate=1e-2, **clip))
        history = agent.fit(env, nb_steps=120, verbose=0, seed=6)
        iterations = [int(o.iterations.numpy()) for o in agent.optimizers.values()]
        results.append((history.history["episode_reward"], [m.get_weights() for m in agent.layers], iterations))
    assert results[0][2] == results[1][2] and min(results[0][2]) > 50
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    # The kernel rounds differently from Keras' sequence of operations; Adam's division by the
    # root of the second moment magnifies that where gradients are tiny: after 120 steps at
    # learning rate 1e-2 (each moving a weight by up to 1e-2), weights agree to about 1e-5.
    for a, b in zip(sum(results[0][1], []), sum(results[1][1], [])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_fused_module_documents_its_formula():
    assert "ResourceApplyAdam" in fused_module.__doc__
