"""Small helpers shared by the package: argument checks, atomic file writes, optimizer cloning."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = [
    "atomic_path",
    "check_int",
    "check_number",
    "clone_optimizer",
    "get_optimizer",
    "parse_json",
    "read_json",
    "sha256_file",
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


def clone_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Returns a fresh, unbuilt optimizer with the same configuration.

    Keras 3 optimizers are built for the variables they first see, so each network needs its own.
    """
    return optimizer.__class__.from_config(optimizer.get_config())
