"""Keras layers the agents' networks may use: `BatchRenormalization`."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from rl.util import check_int, check_number

__all__ = ["BatchRenormalization"]


@keras.saving.register_keras_serializable(package="rl")
class BatchRenormalization(keras.layers.Layer):
    """Batch renormalisation (Ioffe, 2017): batch normalisation corrected toward the moving statistics.

    In training, batch normalisation scales each feature by the statistics of the current batch
    alone, so the output for one sample depends on the rest of its batch, and training and
    inference see differently normalised values. Batch renormalisation corrects the batch's
    normalisation toward the moving statistics, which inference uses:

    ```
    mu_B, var_B = the batch's mean and (biased) variance per feature
    sigma_B = sqrt(var_B + epsilon),  sigma = sqrt(moving_variance + epsilon)
    r = clip(sigma_B / sigma, 1 / r_max, r_max)          # treated as constants: no gradient
    d = clip((mu_B - moving_mean) / sigma, -d_max, d_max)
    y = gamma * ((x - mu_B) / sigma_B * r + d) + beta
    moving_mean     <- momentum * moving_mean     + (1 - momentum) * mu_B
    moving_variance <- momentum * moving_variance + (1 - momentum) * var_B
    ```

    With `r = 1` and `d = 0` this is batch normalisation; unclipped, `y` is the input
    normalised by the moving statistics. For the first `warmup_steps` training calls the layer
    is plain batch normalisation (`r = 1`, `d = 0`) while the moving statistics settle, as
    CrossQ (Bhatt et al., 2024) does; from then on it renormalises. Only calls with
    `training=True` on a trainable layer count, update the moving statistics and use the
    batch's statistics; inference (`training=False` or `None`, or a layer with
    `trainable=False`) normalises with the moving statistics alone: `y = gamma * (x -
    moving_mean) / sigma + beta`, the same in both phases.

    The moving statistics and the count of training calls are non-trainable weights: Keras
    saves them with the model's weights (`save_weights`, `model.save`, checkpoints), so a
    restored layer continues exactly where it stopped. The counter is float32, exact up to
    2**24 calls (past the warm-up it only needs to stay above `warmup_steps`).

    Keras' own `BatchNormalization(renorm=True)`, in recent Keras releases only, renormalises
    from the first step and keeps a second set of moving statistics for the correction; this
    layer has the warm-up and one set of statistics, as CrossQ's reference code.

    Args:
        axis: the feature axis, normalised separately; every other axis is reduced over.
            Defaults to `-1`.
        momentum: the moving statistics' decay per training call, in `[0, 1]`. Defaults to
            `0.99` (CrossQ's).
        epsilon: added to the variances, > 0. Defaults to `1e-3`.
        r_max: the bound of `r`'s clipping to `[1 / r_max, r_max]`, >= 1. Defaults to `3.0`.
        d_max: the bound of `d`'s clipping to `[-d_max, d_max]`, >= 0. Defaults to `5.0`.
        warmup_steps: training calls that use plain batch normalisation before renormalising,
            >= 0. Defaults to `100_000` (CrossQ's).
        center: whether to add the learned offset `beta`. Defaults to `True`.
        scale: whether to multiply by the learned scale `gamma`. Defaults to `True`.
        beta_initializer, gamma_initializer, moving_mean_initializer,
            moving_variance_initializer: initializers of the four weights. Default to zeros,
            ones, zeros and ones.
        **kwargs: `keras.layers.Layer`'s arguments (`name`, `dtype`, ...).

    Raises:
        TypeError, ValueError: at construction, naming the argument and the value received.

    Example:

    ```python
    x = keras.Input((4,))
    h = BatchRenormalization(warmup_steps=1000)(keras.layers.Dense(64, activation="relu")(x))
    model = keras.Model(x, keras.layers.Dense(1)(h))
    ```
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 100_000,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.axis = check_int("axis", axis)
        self.momentum = check_number("momentum", momentum, low=0.0, high=1.0)
        self.epsilon = check_number("epsilon", epsilon, low=0.0, low_inclusive=False)
        self.r_max = check_number("r_max", r_max, low=1.0)
        self.d_max = check_number("d_max", d_max, low=0.0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        for name, value in (("center", center), ("scale", scale)):
            if not isinstance(value, bool):
                raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}")
        self.center, self.scale = center, scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)

    def build(self, input_shape: tuple) -> None:
        """Creates `gamma`, `beta`, the moving statistics and the step counter for `input_shape`.

        Raises:
            ValueError: if `axis` is not an axis of the input, or the feature axis has no size.
        """
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"`axis` must index the input's axes (rank {ndim}). Received: axis={self.axis}, "
                f"input_shape={tuple(input_shape)}"
            )
        self._feature_axis = self.axis % ndim
        width = input_shape[self._feature_axis]
        if width is None:
            raise ValueError(
                f"The feature axis must have a known size. Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        self._reduction_axes = [i for i in range(ndim) if i != self._feature_axis]
        shape = (width,)
        self.gamma = (
            self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer, autocast=False)
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer, autocast=False)
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean", initializer=self.moving_mean_initializer, trainable=False, autocast=False
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        self.steps = self.add_weight(
            shape=(), name="steps", initializer="zeros", dtype="float32", trainable=False, autocast=False
        )
        self.input_spec = keras.layers.InputSpec(ndim=ndim, axes={self._feature_axis: width})

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """Normalises `inputs`: with the batch's statistics corrected by `r`, `d` (after the warm-up)
        when `training` is true and the layer trainable, updating the moving statistics and the
        count; with the moving statistics otherwise."""
        x = ops.cast(inputs, "float32")  # statistics in float32, whatever the compute dtype
        moving_mean = ops.cast(self.moving_mean, "float32")
        moving_variance = ops.cast(self.moving_variance, "float32")
        gamma = ops.ones_like(moving_mean) if self.gamma is None else ops.cast(self.gamma, "float32")
        beta = ops.zeros_like(moving_mean) if self.beta is None else ops.cast(self.beta, "float32")
        if training and self.trainable:
            mean, variance = ops.moments(x, axes=self._reduction_axes)  # [F] each
            sigma = ops.sqrt(moving_variance + self.epsilon)
            r = ops.clip(ops.sqrt(variance + self.epsilon) / sigma, 1.0 / self.r_max, self.r_max)
            d = ops.clip((mean - moving_mean) / sigma, -self.d_max, self.d_max)
            renorm = ops.greater_equal(self.steps, float(self.warmup_steps))  # past the warm-up
            r = ops.stop_gradient(ops.where(renorm, r, ops.ones_like(r)))
            d = ops.stop_gradient(ops.where(renorm, d, ops.zeros_like(d)))
            gamma, beta = gamma * r, beta + gamma * d  # gamma * (x_hat * r + d) + beta
            batch_mean, batch_variance = ops.stop_gradient(mean), ops.stop_gradient(variance)
            self.moving_mean.assign(moving_mean * self.momentum + batch_mean * (1.0 - self.momentum))
            self.moving_variance.assign(moving_variance * self.momentum + batch_variance * (1.0 - self.momentum))
            self.steps.assign(self.steps + 1.0)
        else:
            mean, variance = moving_mean, moving_variance
        outputs = ops.batch_normalization(
            x, mean, variance, axis=self._feature_axis, offset=beta, scale=gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The input's shape: the layer normalises element-wise."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """The layer's arguments, for `from_config` and saved models."""
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "r_max": self.r_max,
            "d_max": self.d_max,
            "warmup_steps": self.warmup_steps,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": keras.initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": keras.initializers.serialize(self.moving_variance_initializer),
        }
