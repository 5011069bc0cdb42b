"""Keras' Adam applied by TensorFlow's one-kernel Adam update, where the two compute the same thing.

Keras 3's `Adam.apply` builds about forty graph operations per variable (the bias corrections,
the moment updates, the step), each with its own dispatch cost and its own pass over the
weights. TensorFlow's `ResourceApplyAdam` kernel does the same update in one operation and one
pass: with `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`, `m += (g - m) * (1 - beta_1)`,
`v += (g^2 - v) * (1 - beta_2)`, `w -= m * alpha / (sqrt(v) + epsilon)`, the formulas of Keras'
`Adam.update_step`. It updates the optimizer's own moment variables and iteration counter, so
checkpoints, `get_weights` and a later `optimizer.apply` see exactly the state Keras would have.
Any other optimizer, or an Adam with an option this path does not cover, goes through Keras.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["apply_adam", "fused_adam_fits"]

_PRIVATE = ("_momentums", "_velocities", "_get_variable_index", "_iterations")


def fused_adam_fits(optimizer: keras.optimizers.Optimizer, variables: list[Any]) -> bool:
    """Whether `apply_adam` computes exactly what `optimizer.apply` would on `variables`.

    True for Keras' own `Adam` (not a subclass) without amsgrad, weight decay, moving averages,
    gradient accumulation, loss scaling, value or global-norm clipping, on float32 variables
    without constraints, outside a distribution strategy. (`clipnorm` is applied by the caller.)
    """
    return (
        type(optimizer) is keras.optimizers.Adam
        and all(hasattr(optimizer, name) for name in _PRIVATE)
        and getattr(optimizer, "built", False)
        and not optimizer.amsgrad
        and not optimizer.weight_decay
        and not optimizer.use_ema
        and not optimizer.gradient_accumulation_steps
        and optimizer.loss_scale_factor is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not tf.distribute.has_strategy()
        and all(getattr(v, "constraint", None) is None and v.dtype == "float32" for v in variables)
        and not any(getattr(v, "overwrite_with_gradient", False) for v in variables)
    )


def apply_adam(optimizer: keras.optimizers.Optimizer, grads: list[Any], variables: list[Any]) -> None:
    """In the graph: one Adam step of `variables` by `grads`, on `optimizer`'s own state.

    Call only where `fused_adam_fits(optimizer, variables)`. Variables whose gradient is `None`
    are left alone, as Keras does.
    """
    lr = tf.cast(optimizer.learning_rate, tf.float32)  # the current rate (a schedule is called)
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1, beta_2 = tf.constant(optimizer.beta_1, tf.float32), tf.constant(optimizer.beta_2, tf.float32)
    beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    epsilon = tf.constant(optimizer.epsilon, tf.float32)
    for grad, variable in zip(grads, variables):
        if grad is None:
            continue
        index = optimizer._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(optimizer._momentums[index]),
            v=_handle(optimizer._velocities[index]),
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=lr,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=epsilon,
            grad=tf.cast(grad, tf.float32),
        )
    optimizer.iterations.assign_add(1)


def _handle(variable: Any) -> tf.Tensor:
    # A Keras variable wraps a tf.Variable (`.value` on the TensorFlow backend).
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
