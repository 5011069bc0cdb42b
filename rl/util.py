"""Small helpers shared by the package: argument checks, atomic file writes, optimizer cloning."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = [
    "WhiteningNormalizer",
    "atomic_path",
    "check_free_space",
    "check_int",
    "check_number",
    "clone_model",
    "clone_optimizer",
    "get_object_config",
    "get_optimizer",
    "get_soft_target_model_updates",
    "huber_loss",
    "parse_json",
    "read_json",
    "sha256_file",
    "warn_at_caller",
    "write_json_atomic",
]


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Returns `value` as an `int`, or raises if it is not an integer at least `minimum`.

    Args:
        name: the argument's name, used in the error message.
        value: the value received.
        minimum: the smallest accepted value. Defaults to `None` (no lower bound).

    Raises:
        TypeError: if `value` is not an integer (a `bool` is not accepted either).
        ValueError: if `value < minimum`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allow_inf: bool = False,
) -> float:
    """Returns `value` as a `float`, or raises if it is not a number inside the given range.

    Raises:
        TypeError: if `value` is not a real number.
        ValueError: if `value` is NaN, infinite (unless `allow_inf`), or outside `[low, high]`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"`{name}` must be {bound} {low}. Received: {name}={value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        bound = "<=" if high_inclusive else "<"
        raise ValueError(f"`{name}` must be {bound} {high}. Received: {name}={value!r}")
    return value


def check_free_space(folder: str | os.PathLike, nbytes: int, what: str, received: str) -> None:
    """Raises `OSError` (ENOSPC) before a write of about `nbytes` that the disk cannot hold.

    HDF5 (the `.weights.h5` files) may crash the process instead of raising when the disk fills
    during a write, so savers check the free space first. The estimate includes a margin (10 %
    and 1 MiB for the files' headers); a disk that other processes fill during the write is not
    covered.

    Args:
        folder: where the files go (created if needed).
        nbytes: the bytes about to be written.
        what: what is written, for the message (e.g. "the checkpoint").
        received: what the caller received, for the message (e.g. "filepath='ckpt'").

    Raises:
        OSError: with `errno.ENOSPC`, naming both sizes, when the free space is short.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # the free space is not known: let the write try
        return
    needed = int(nbytes * 1.1) + 2**20
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"Not enough free disk space to write {what}: about {needed / 2**20:.1f} MiB needed, "
            f"{free / 2**20:.1f} MiB free in {folder!r}; nothing was written and what was saved before is intact. "
            f"Received: {received}",
        )


@contextlib.contextmanager
def atomic_path(filepath: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path in the same folder; on success it is renamed onto `filepath`.

    A crash or an exception while writing leaves any file already at `filepath` untouched, and
    removes the temporary file. The temporary name keeps `filepath`'s suffixes (Keras checks them):
    `.{name}.{random}.tmp{suffixes}`. A process killed while writing cannot remove its temporary
    file; the next successful write of the same `filepath` removes every such leftover, so none
    survives it. (One writer per `filepath` at a time: a second process writing the same file
    concurrently could see its temporary file removed.)
    """
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(filepath)
    # Keep every suffix (".weights.h5", ".npz"): savers check the ending of the name.
    dot = base.find(".")
    suffix = base[dot:] if dot > 0 else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # Some writers refuse to write over an existing file.
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _remove_stale_temporaries(folder, base, suffix)


def _remove_stale_temporaries(folder: str, base: str, suffix: str) -> None:
    """Removes the temporary files `atomic_path` made for `base` in `folder` and a kill left behind."""
    # mkstemp's random part: letters, digits and "_".
    pattern = re.compile(rf"\.{re.escape(base)}\.[a-z0-9_]+\.tmp{re.escape(suffix)}")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if pattern.fullmatch(entry.name):
            try:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
            except OSError:
                pass


def write_json_atomic(filepath: str | os.PathLike, data: Any) -> None:
    """Writes `data` as JSON to `filepath` atomically (UTF-8)."""
    with atomic_path(filepath) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)


def read_json(filepath: str | os.PathLike, what: str = "file") -> Any:
    """Reads a UTF-8 JSON file.

    Raises:
        ValueError: naming the file, if it is missing, unreadable, not UTF-8 text or not JSON.
    """
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        raise ValueError(f"The {what} does not exist. Received: filepath={filepath!r}")
    try:
        with open(filepath, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"The {what} cannot be read ({e}). Received: filepath={filepath!r}") from e
    return parse_json(data, filepath, what)


def parse_json(data: bytes, filepath: str, what: str = "file") -> Any:
    """Parses the UTF-8 JSON bytes read from `filepath`, raising `ValueError` naming the file."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"The {what} is not UTF-8 text ({e}). Received: filepath={filepath!r}") from e
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"The {what} is corrupt or truncated ({e}). Received: filepath={filepath!r}") from e


def sha256_file(filepath: str | os.PathLike) -> str:
    """Returns the SHA-256 of the file's bytes, as 64 lowercase hexadecimal digits."""
    digest = hashlib.sha256()
    with open(filepath, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def get_optimizer(optimizer: Any, name: str = "optimizer") -> keras.optimizers.Optimizer:
    """Resolves a Keras optimizer instance, name (`'adam'`) or config dict; raises on anything else."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if isinstance(optimizer, (str, dict)):
        try:
            return keras.optimizers.get(optimizer)
        except ValueError as e:
            raise ValueError(f"Unknown optimizer. Received: {name}={optimizer!r}") from e
    raise TypeError(
        f"`{name}` must be a Keras optimizer, its name (such as 'adam') or its config. Received: {name}={optimizer!r}"
    )


def clone_optimizer(optimizer: keras.optimizers.Optimizer | str) -> keras.optimizers.Optimizer:
    """Returns a fresh, unbuilt optimizer with the same configuration.

    Keras 3 optimizers are built for the variables they first see, so each network needs its own.

    Args:
        optimizer: a Keras optimizer, or its name (such as `'adam'`), which gives a new one.

    Returns:
        A new optimizer of the same class and configuration, holding no variables.
    """
    if isinstance(optimizer, str):
        return get_optimizer(optimizer)
    return optimizer.__class__.from_config(optimizer.get_config())


# ------------------------------------------------------------ keras-rl's helpers
def clone_model(model: keras.Model, custom_objects: dict | None = None) -> keras.Model:
    """Returns a new model with the same architecture and a copy of the weights.

    keras-rl's `rl.util.clone_model`. The clone shares no variable with `model`, so training one
    leaves the other unchanged (which is how target networks start).

    Args:
        model: a Keras model (Sequential, functional, or a subclass with `get_config`).
        custom_objects: custom layers and functions the model's config refers to, by name.
            Defaults to `None`.

    Returns:
        The clone, with `model`'s weights.

    Raises:
        TypeError: if `model` is not a Keras model.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    with keras.saving.custom_object_scope(dict(custom_objects or {})):
        clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def get_soft_target_model_updates(
    target: keras.Model, source: keras.Model, tau: float
) -> list[tuple[keras.Variable, Any]]:
    """Returns the soft target update `target <- tau * source + (1 - tau) * target`, per variable.

    keras-rl's helper returned update tuples for a Keras 2 training function; Keras 3 has no such
    functions, so the pairs are applied by assigning them:
    `for variable, value in updates: variable.assign(value)`. The agents of this library update
    their targets themselves (`target_model_update=`); this helper is for hand-written code.

    Args:
        target: the target network.
        source: the online network, with the same architecture.
        tau: the fraction of `source` mixed in, in `[0, 1]`.

    Returns:
        A list of `(target variable, new value)` pairs over the trainable and non-trainable
        variables, in the models' order.

    Raises:
        ValueError: if the models hold different numbers of variables, or `tau` is outside `[0, 1]`.
    """
    tau = check_number("tau", tau, low=0.0, high=1.0)
    target_vars = list(target.trainable_weights) + list(target.non_trainable_weights)
    source_vars = list(source.trainable_weights) + list(source.non_trainable_weights)
    if len(target_vars) != len(source_vars):
        raise ValueError(
            "`target` and `source` must have the same variables. "
            f"Received: {len(target_vars)} target variables and {len(source_vars)} source variables"
        )
    return [
        (t, tau * keras.ops.convert_to_tensor(s) + (1.0 - tau) * keras.ops.convert_to_tensor(t))
        for t, s in zip(target_vars, source_vars)
    ]


def get_object_config(o: Any) -> dict[str, Any] | None:
    """Returns `{'class_name': ..., 'config': o.get_config()}`, or `None` for `None`.

    Args:
        o: an object with `get_config()` (a policy, a memory, an optimizer), or `None`.

    Returns:
        The class name and config, or `None`.

    Raises:
        TypeError: if `o` has no `get_config` method.
    """
    if o is None:
        return None
    if not callable(getattr(o, "get_config", None)):
        raise TypeError(f"`o` must have a `get_config()` method. Received: o={o!r}")
    return {"class_name": type(o).__name__, "config": o.get_config()}


def huber_loss(y_true: Any, y_pred: Any, clip_value: float) -> Any:
    """The elementwise Huber loss of `x = y_true - y_pred`, with threshold `clip_value`.

    `0.5 * x**2` where `|x| < clip_value`, `clip_value * (|x| - 0.5 * clip_value)` elsewhere; with
    `clip_value=np.inf` it is `0.5 * x**2` everywhere.

    Args:
        y_true: targets (arrays or tensors).
        y_pred: predictions, broadcastable with `y_true`.
        clip_value: the threshold between the quadratic and the linear part, > 0 (`np.inf` allowed).

    Returns:
        The loss per element, a tensor of the broadcast shape.

    Raises:
        ValueError: if `clip_value` is not > 0.
    """
    clip_value = check_number("clip_value", clip_value, low=0.0, low_inclusive=False, allow_inf=True)
    x = keras.ops.subtract(y_true, y_pred)
    squared = 0.5 * keras.ops.square(x)
    if math.isinf(clip_value):
        return squared
    abs_x = keras.ops.abs(x)
    return keras.ops.where(abs_x < clip_value, squared, clip_value * (abs_x - 0.5 * clip_value))


class WhiteningNormalizer:
    """Running mean and standard deviation of arrays, to whiten them: `(x - mean) / std`.

    Statistics are merged batch by batch (Chan et al.'s parallel update, exact in float64), and
    `std = sqrt(max(eps**2, variance))` so that constant dimensions are not divided by zero.
    Before any update, `mean` is 0 and `std` is 1 (whitening changes nothing).

    Args:
        shape: the shape of one sample.
        eps: the smallest standard deviation, > 0. Defaults to `1e-2`.
        dtype: dtype of the statistics. Defaults to `np.float64`.

    Raises:
        ValueError: if `eps` is not > 0.

    Example:

    >>> n = WhiteningNormalizer(shape=(2,))
    >>> n.update(np.array([[0.0, 10.0], [2.0, 30.0]]))
    >>> n.mean, n.std
    (array([ 1., 20.]), array([ 1., 10.]))
    """

    def __init__(self, shape: tuple | int, eps: float = 1e-2, dtype: Any = np.float64):
        self.shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        self.eps = check_number("eps", eps, low=0.0, low_inclusive=False)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.mean = np.zeros(self.shape, dtype=self.dtype)
        self._m2 = np.zeros(self.shape, dtype=self.dtype)  # sum of squared deviations from the mean
        self.std = np.ones(self.shape, dtype=self.dtype)

    def update(self, x: Any) -> None:
        """Adds the samples of `x` (one sample of `shape`, or a batch `(B,) + shape`) to the statistics.

        Raises:
            ValueError: if `x`'s trailing dimensions are not `shape`.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.shape == self.shape:
            x = x[None]
        if x.shape[1:] != self.shape:
            raise ValueError(
                f"`x` must have shape {self.shape} or (batch,) + {self.shape}. Received: x.shape={x.shape}"
            )
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(axis=0)
        batch_m2 = np.square(x - batch_mean).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + batch_m2 + np.square(delta) * (self.count * n / total)
        self.count = total
        self.std = np.sqrt(np.maximum(self.eps**2, self._m2 / total))

    def normalize(self, x: Any) -> np.ndarray:
        """Returns `(x - mean) / std` (broadcast over leading dimensions)."""
        return (np.asarray(x) - self.mean) / self.std

    def denormalize(self, x: Any) -> np.ndarray:
        """Returns `std * x + mean`, the inverse of `normalize`."""
        return self.std * np.asarray(x) + self.mean

    def get_state(self) -> dict[str, Any]:
        """Returns the statistics as JSON-compatible values (for checkpoints)."""
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self._m2.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned.

        Raises:
            ValueError: if the state does not fit this normalizer's shape or is not valid.
        """
        try:
            count = state["count"]
            mean = np.asarray(state["mean"], dtype=self.dtype)
            m2 = np.asarray(state["m2"], dtype=self.dtype)
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"Not a WhiteningNormalizer state ({e}). Received: state={state!r:.200}") from e
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"`count` must be a non-negative integer. Received: count={count!r}")
        if mean.shape != self.shape or m2.shape != self.shape:
            raise ValueError(
                f"The state's statistics must have shape {self.shape}. Received: mean.shape={mean.shape}, "
                f"m2.shape={m2.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(m2).all()) or (m2 < 0).any():
            raise ValueError("The state's statistics must be finite, with a non-negative `m2`.")
        self.count, self.mean, self._m2 = count, mean, m2
        self.std = np.sqrt(np.maximum(self.eps**2, m2 / count)) if count else np.ones(self.shape, dtype=self.dtype)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the `rl` package's folder


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn(message, category)`, attributed to the first caller outside the `rl` package.

    The library warns from deep inside `fit` and `test` (callbacks, run loops), at depths that
    differ from run to run (an `EvalCallback`'s test runs inside a `fit`). The warning points at
    the user's line that started the run instead, which is where something can be changed, and
    Python's default filters then show it once per such line.

    Args:
        message: the warning's text.
        category: the warning's class. Defaults to `UserWarning`.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 2: the function that called this one
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
