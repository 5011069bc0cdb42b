"""Named input fields packed into one float32 vector, unpacked inside the graph by name.

A compiled call takes one vector (one input tensor is the cheapest call there is); `Fields`
keeps the layout of that vector in one place, so the code that fills it and the graph that
reads it agree by name, never by hand-kept offsets.

Example:

```python
fields = Fields([("state", [(1, 3)]), ("rows", (64, 3))])
flat = np.empty(fields.size, np.float32)
fields.view(flat, "rows")[:] = rows            # numpy views, written in place
parts = fields.unpack(flat_tensor)             # in the graph: {"state": [tensor], "rows": tensor}
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["Fields"]

Shape = tuple[int, ...]


class Fields:
    """An ordered set of named fields, each one shape or a list of shapes (one per model input).

    Args:
        fields: `(name, shape)` pairs in packing order; `shape` is a tuple, or a list of tuples
            for a field that feeds several model inputs (unpacked as a list of tensors).
    """

    def __init__(self, fields: Sequence[tuple[str, Shape | list[Shape]]]):
        self.names: list[str] = []
        self._shapes: dict[str, list[Shape]] = {}
        self._multi: dict[str, bool] = {}
        self._slices: dict[str, list[slice]] = {}
        offset = 0
        for name, shape in fields:
            if name in self._shapes:
                raise ValueError(f"Field names must be unique. Received: {name!r} twice")
            multi = isinstance(shape, list)
            shapes = [tuple(int(d) for d in s) for s in (shape if multi else [shape])]
            slices = []
            for s in shapes:
                n = math.prod(s)
                slices.append(slice(offset, offset + n))
                offset += n
            self.names.append(name)
            self._shapes[name], self._multi[name], self._slices[name] = shapes, multi, slices
        self.size = offset

    def shape(self, name: str) -> Shape | list[Shape]:
        """The shape (or list of shapes) of field `name`."""
        shapes = self._shapes[name]
        return list(shapes) if self._multi[name] else shapes[0]

    def view(self, flat: np.ndarray, name: str) -> Any:
        """Numpy views of field `name` inside `flat` (a list of views for a multi-input field)."""
        views = [flat[sl].reshape(s) for sl, s in zip(self._slices[name], self._shapes[name])]
        return views if self._multi[name] else views[0]

    def pack(self, **arrays: Any) -> np.ndarray:
        """Returns one float32 vector holding every field (each given as an array or list of arrays)."""
        if set(arrays) != set(self.names):
            raise ValueError(f"Expected the fields {self.names}. Received: {sorted(arrays)}")
        flat = np.empty(self.size, np.float32)
        for name in self.names:
            value = arrays[name]
            values = value if self._multi[name] else [value]
            for sl, v in zip(self._slices[name], values):
                flat[sl] = np.asarray(v, dtype=np.float32).reshape(-1)
        return flat

    def unpack(self, flat: tf.Tensor) -> dict[str, Any]:
        """In the graph: `{name: tensor}` (a list of tensors for a multi-input field)."""
        sizes = [sl.stop - sl.start for name in self.names for sl in self._slices[name]]
        pieces = iter(tf.split(flat, sizes))  # one op for all fields
        out: dict[str, Any] = {}
        for name in self.names:
            parts = [tf.reshape(next(pieces), s) for s in self._shapes[name]]
            out[name] = parts if self._multi[name] else parts[0]
        return out
