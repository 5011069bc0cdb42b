"""Exporting a trained policy: one self-contained artifact that acts without this library.

`agent.export(path)` writes a TensorFlow SavedModel (`format="saved_model"`, for TF Serving,
TensorFlow in any language, or `tf.saved_model.load`) or a LiteRT flatbuffer (`format="tflite"`,
for phones and microcontrollers, run with `tf.lite.Interpreter` or LiteRT). The artifact's serving
function takes a batch of observations `[B, *obs_shape]` (observation windows
`[B, window_length, *obs_shape]` when `window_length > 1`), float32, as `agent.forward` receives
them (after the processor's `process_observation`), and returns what `agent.forward` returns in
test mode:

- DDPG, TD3, TD3+BC, NAF, SAC: `action`, float32 `[B, nb_actions]`, clipped to the action bounds
  (SAC: the mean action, squashed and scaled);
- DQN, SARSA, CEM: `action`, int64 `[B]` (the greedy action), and `q_values` (CEM: `scores`),
  float32 `[B, nb_actions]`.

How it is built: Keras 3's `keras.export.ExportArchive` tracks the networks' variables and writes
the SavedModel with two named signatures, `serving_default` and `action` (the same function), and
`metadata`, which returns a JSON string: the agent class, observation and action spaces, window
length, outputs, library version and export format version. The LiteRT file is converted from that
SavedModel by `tf.lite.TFLiteConverter` (signature `serving_default`); its metadata goes into the
file's own metadata table under the name `rl_metadata`. Both are written to a temporary path beside
`path` and renamed into place, so a failure or Ctrl-C never leaves a half-written artifact.

`load_policy(path)` acts from an export with `forward`-like calls, for code that has the library.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata as _metadata
from typing import Any

import numpy as np

__all__ = [
    "EXPORT_VERSION",
    "FORMATS",
    "ExportedPolicy",
    "ServingPolicy",
    "export_policy",
    "greedy_serving_policy",
    "load_policy",
    "processor_metadata",
    "read_metadata",
]

FORMATS = ("saved_model", "tflite")
"""The formats `export` writes: a TensorFlow SavedModel folder, or one LiteRT (TFLite) file."""

EXPORT_VERSION = 1
"""The version of the artifact's layout (signatures, metadata fields); recorded in its metadata."""
_TFLITE_METADATA = "rl_metadata"


def export_policy(agent: Any, path: str | os.PathLike, format: str = "saved_model", overwrite: bool = False) -> str:
    """Writes `agent`'s test-mode policy to `path`; see the module's docstring (and `Agent.export`).

    Returns:
        The path written.
    """
    import tensorflow as tf

    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    path = os.fspath(path)
    if not getattr(agent, "compiled", False):
        raise ValueError(f"You must call `compile()` before calling `export()`. Received: agent={agent!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it. Received: path={path!r}")
    serving = agent.serving_policy()  # raises, naming what cannot be exported
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)  # e.g. TF Serving's version folders: models/pendulum/1
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"The folder to export into cannot be written. Received: path={path!r}")
    meta = dict(serving.metadata, format=format, export_version=EXPORT_VERSION, library_version=_version())
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        saved = os.path.join(staging, "saved_model")
        _write_saved_model(serving, meta, saved)
        if format == "saved_model":
            written = saved
        else:
            written = os.path.join(staging, "policy.tflite")
            converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serving_default"])
            with open(written, "wb") as f:
                f.write(_with_metadata(converter.convert(), json.dumps(meta).encode()))
        _replace(written, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


class ServingPolicy:
    """What an agent exports: its input spec, its graph function and the artifact's metadata.

    Built by an agent's `serving_policy()` (see `OffPolicyAgent.serving_policy`).

    Args:
        function: in the graph, `function(observations) -> {output name: tensor}`.
        input_shape: the shape of one input row (`obs_shape`, or `(window_length, *obs_shape)`).
        models: the Keras models the function reads (their variables go into the artifact).
        metadata: JSON-compatible facts about the policy.
    """

    def __init__(self, function: Callable, input_shape: tuple, models: list, metadata: dict):
        self.function = function
        self.input_shape = tuple(int(d) for d in input_shape)
        self.models = list(models)
        self.metadata = dict(metadata, input_shape=list(self.input_shape))


def greedy_serving_policy(
    agent: Any,
    model: Any,
    input_shapes: list[tuple] | None,
    obs_shape: tuple | None,
    window_length: int,
    scores_name: str = "q_values",
) -> ServingPolicy:
    """The `ServingPolicy` of an agent that acts with `argmax(model(state))` in test mode (SARSA, CEM).

    Raises:
        ValueError: if the agent has not seen an observation yet, or its processor batches states
            in Python only.
    """
    import tensorflow as tf

    from rl.engine.inputs import export_states, model_input

    if input_shapes is None:
        raise ValueError(
            f"{type(agent).__name__} has not seen an observation yet, so its input shapes are unknown: call fit, "
            f"test or forward first. Received: agent={agent!r}"
        )
    processor, w = agent.processor, window_length
    export_states(processor, tf.zeros((1, w) + tuple(obs_shape), tf.float32))  # refuses a Python-only processor

    def function(observations: tf.Tensor) -> dict[str, tf.Tensor]:
        states = observations if w > 1 else observations[:, None]  # [B, W, *obs]
        parts = [
            tf.reshape(tf.cast(p, tf.float32), (-1,) + s)
            for p, s in zip(export_states(processor, states), input_shapes)
        ]
        scores = tf.cast(model(model_input(parts), training=False), tf.float32)  # [B, A]
        return {"action": tf.argmax(scores, axis=1), scores_name: scores}

    metadata = {
        "agent": type(agent).__name__,
        "observation_shape": list(obs_shape),
        "window_length": w,
        "nb_actions": int(agent.nb_actions),
        "action_low": None,
        "action_high": None,
        "discrete": True,
        "outputs": ["action", scores_name],
        "processor": None
        if processor is None
        else {
            "class": type(processor).__name__,
            "caller_applies": [
                n
                for n in ("process_observation", "process_action")
                if getattr(type(processor), n) is not getattr(type(processor).__mro__[-2], n, None)
            ],
        },
    }
    shape = tuple(obs_shape) if w == 1 else (w,) + tuple(obs_shape)
    return ServingPolicy(function, shape, [model], metadata)


def processor_metadata(processor: Any) -> dict | None:
    """What an export says about a processor (`Processor.export_metadata`), or `None` without one."""
    return None if processor is None else processor.export_metadata()


def _write_saved_model(serving: ServingPolicy, meta: dict, folder: str) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    for model in serving.models:
        archive.track(model)
    spec = tf.TensorSpec((None,) + serving.input_shape, tf.float32, name="observations")
    text = json.dumps(meta)

    def serve(observations: tf.Tensor) -> dict[str, tf.Tensor]:
        return serving.function(observations)

    def describe() -> dict[str, tf.Tensor]:
        return {"metadata": tf.constant(text)}

    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.add_endpoint("action", serve, input_signature=[spec])
    archive.add_endpoint("metadata", describe, input_signature=[])
    archive.write_out(folder, verbose=False)


def _with_metadata(flatbuffer: bytes, text: bytes) -> bytes:
    """The LiteRT model with `text` appended as a metadata buffer named `rl_metadata`."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema  # the flatbuffer schema TF ships
    except ImportError:  # pragma: no cover - every TensorFlow with LiteRT has it
        return flatbuffer
    import flatbuffers

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = _TFLITE_METADATA
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _replace(written: str, path: str) -> None:
    """Moves `written` onto `path` (a file or a folder), replacing what is there only once it is complete."""
    if os.path.exists(path):
        old = path + ".old"
        os.replace(path, old) if os.path.isfile(path) else os.rename(path, old)
        try:
            os.replace(written, path) if os.path.isfile(written) else os.rename(written, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.unlink(old)
    else:
        os.replace(written, path) if os.path.isfile(written) else os.rename(written, path)


def _version() -> str:
    try:
        return _metadata.version("keras-rl3")
    except _metadata.PackageNotFoundError:
        return "unknown"


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata an export holds (agent class, spaces, window length, outputs, versions).

    Args:
        path: a SavedModel folder or a `.tflite` file written by `export`.

    Raises:
        ValueError: if `path` holds no export of this library.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        if "metadata" not in loaded.signatures:
            raise ValueError(f"The SavedModel has no `metadata` signature: not an export. Received: path={path!r}")
        return json.loads(loaded.signatures["metadata"]()["metadata"].numpy().decode())
    if os.path.isfile(path):
        from tensorflow.lite.python import schema_py_generated as schema

        with open(path, "rb") as f:
            data = f.read()
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        for entry in model.metadata or []:
            name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            if name == _TFLITE_METADATA:
                return json.loads(bytes(model.buffers[entry.buffer].data).decode())
        raise ValueError(f"The LiteRT file holds no `{_TFLITE_METADATA}`: not an export. Received: path={path!r}")
    raise ValueError(f"No export at this path. Received: path={path!r}")


class ExportedPolicy:
    """A policy loaded from an export: acts as `agent.forward` does in test mode.

    Args:
        path: a SavedModel folder or a `.tflite` file written by `agent.export`.

    Attributes:
        metadata: what `read_metadata(path)` returns.

    Example:

    ```python
    policy = rl.export.load_policy("pendulum_policy")
    action = policy.forward(observation)          # one observation, as agent.forward
    actions = policy(observations)["action"]      # a batch
    ```
    """

    def __init__(self, path: str | os.PathLike):
        import tensorflow as tf

        self.path = os.fspath(path)
        self.metadata = read_metadata(self.path)
        self.window_length = int(self.metadata["window_length"])
        self._window: list[np.ndarray] = []
        if os.path.isdir(self.path):
            self._fn = tf.saved_model.load(self.path).signatures["serving_default"]
            self._lite = None
        else:
            self._lite = _interpreter(self.path).get_signature_runner("serving_default")
            self._fn = None

    def __call__(self, observations: Any) -> dict[str, np.ndarray]:
        """The outputs for a batch of observations (or windows), as numpy arrays by name."""
        x = np.asarray(observations, np.float32)
        want = tuple(self.metadata["input_shape"])
        if x.shape[1:] != want:
            raise ValueError(
                f"`observations` must have shape (B, {', '.join(map(str, want))}). Received: shape {x.shape}"
            )
        if self._lite is not None:
            out = self._lite(observations=x)
        else:
            out = self._fn(observations=x)
        return {k: np.asarray(v) for k, v in out.items()}

    def reset_states(self) -> None:
        """Starts an episode: clears the observation window (with `window_length > 1`)."""
        self._window = []

    def forward(self, observation: Any) -> Any:
        """The action for one observation, as `agent.forward` returns it in test mode."""
        obs = np.asarray(observation, np.float32)
        if self.window_length > 1:
            if not self._window:
                self._window = [np.zeros_like(obs)] * self.window_length
            self._window = self._window[1:] + [obs]
            x = np.stack(self._window)[None]
        else:
            x = obs[None]
        action = self(x)["action"][0]
        return int(action) if action.ndim == 0 else action


def _interpreter(path: str) -> Any:
    """LiteRT's interpreter (`ai_edge_litert`, where installed), else TensorFlow's `tf.lite.Interpreter`."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter(model_path=path)


def load_policy(path: str | os.PathLike) -> ExportedPolicy:
    """Loads an export of `agent.export(path)` to act with it (`forward`, or a batch call).

    Raises:
        ValueError: if `path` holds no export of this library.
    """
    return ExportedPolicy(path)
