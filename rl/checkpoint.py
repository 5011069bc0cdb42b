"""The checkpoint format: one folder, one complete checkpoint, verified and loaded all or nothing.

`Agent.save_checkpoint` and `Agent.load_checkpoint` hand off to `save` and `load` here. A
checkpoint folder holds `checkpoint.json`, which names the current sub-folder
`step-<12 digits>-<8 hex>` and the SHA-256 of its `state.json`; `state.json` holds the base
class's state (format, agent class, `step`, `episode`, the RNG states, the processor's state) and
the SHA-256 of every other file of the sub-folder, which the agent writes through its
`save_checkpoint_files` hook. Format 2 is the current one; earlier formats are refused by name.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import uuid
from typing import Any

import numpy as np

from rl.loops.guards import short_repr as _short_repr
from rl.util import parse_json, read_json, sha256_file, write_json_atomic

__all__ = ["FORMAT", "load", "save"]

INDEX = "checkpoint.json"
STATE = "state.json"
FORMAT = 2
"""The checkpoint format this version writes (and the newest it reads). Format 2: `state.json` lists
the SHA-256 of every file, `checkpoint.json` holds the SHA-256 of `state.json`."""
NAME = re.compile(r"step-[0-9]{12}-[0-9a-f]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHECKPOINT_INDEX, _CHECKPOINT_STATE, _CHECKPOINT_FORMAT, _CHECKPOINT_NAME = INDEX, STATE, FORMAT, NAME


def save(agent: Any, dirpath: str | os.PathLike, env: Any = None) -> str:
    """Writes `agent`'s checkpoint into the folder `dirpath`; see `Agent.save_checkpoint`.

    Returns:
        The path of the sub-folder written.
    """
    dirpath = os.fspath(dirpath)
    os.makedirs(dirpath, exist_ok=True)
    name = f"step-{agent.step:012d}-{uuid.uuid4().hex[:8]}"
    tmp = os.path.join(dirpath, f".{name}.tmp")
    final = os.path.join(dirpath, name)
    index_path = os.path.join(dirpath, INDEX)
    previous = _written_index(index_path)
    # The index records what this save is about to write before it writes it: if the save is killed,
    # the next one removes exactly that, and nothing else in the folder is ever deleted. (Before the
    # first checkpoint there is no index to record it in: a killed first save may leave its hidden
    # `.step-*.tmp` folder behind.)
    pending = [p for p in previous.get("pending", []) if p not in (name, f".{name}.tmp")] + [f".{name}.tmp", name]
    if "latest" in previous:
        write_json_atomic(index_path, {**{k: v for k, v in previous.items() if k != "pending"}, "pending": pending})
    os.makedirs(tmp)
    try:
        state = {
            "format": FORMAT,
            "agent": type(agent).__name__,
            "step": agent.step,
            "episode": agent.episode,
            "rng": agent.np_random.bit_generator.state,
            "agent_state": agent.save_checkpoint_files(tmp),
        }
        if env is not None:
            state["env_rng"] = _env_rng_state(env)
        processor = agent.processor
        if callable(getattr(processor, "get_state", None)):  # e.g. whitening statistics
            state["processor"] = processor.get_state()
        files = _folder_files(tmp)
        for path in files.values():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        state["files"] = {rel: sha256_file(path) for rel, path in files.items()}
        state_path = os.path.join(tmp, STATE)
        write_json_atomic(state_path, state)
        state_digest = sha256_file(state_path)
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(dirpath)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(index_path, {"latest": name, "state_sha256": state_digest})
    # What the library wrote before: the previous checkpoint, and what killed saves recorded as pending.
    written = ([previous["latest"]] if "latest" in previous else []) + pending
    for entry in written:
        path = os.path.join(dirpath, entry)
        if entry != name and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
    return final


def _written_index(index_path: str) -> dict:
    """What a previous save recorded in `checkpoint.json`: `latest` and `pending` names it wrote
    (only names of the library's own form), or `{}` when there is no readable index."""
    try:
        index = read_json(index_path, what="checkpoint index")
    except ValueError:
        return {}
    if not isinstance(index, dict):
        return {}
    out: dict = {}
    if isinstance(index.get("latest"), str) and NAME.fullmatch(index["latest"]):
        out["latest"] = index["latest"]
        if isinstance(index.get("state_sha256"), str):
            out["state_sha256"] = index["state_sha256"]
    pending = index.get("pending")
    if isinstance(pending, list):
        out["pending"] = [
            p
            for p in pending
            if isinstance(p, str)
            and (NAME.fullmatch(p) or (p.startswith(".") and p.endswith(".tmp") and NAME.fullmatch(p[1:-4])))
        ]
    return out


def load(agent: Any, dirpath: str | os.PathLike, env: Any = None) -> None:
    """Restores `agent` from the checkpoint in `dirpath`, all or nothing; see `Agent.load_checkpoint`."""
    dirpath = os.fspath(dirpath)
    folder, state = _read_checkpoint_state(dirpath, type(agent).__name__)
    rng_state = _checked_rng_state(state, "rng", type(agent.np_random.bit_generator), folder)
    env_rng = _checked_env_rng_state(state, env, folder)
    _verify_files(folder, state["files"])
    staged = agent.read_checkpoint_files(folder, state["agent_state"])
    processor = agent.processor
    processor_state = state.get("processor")
    restore_processor = processor_state is not None and callable(getattr(processor, "set_state", None))
    if restore_processor:
        try:  # on a copy: the processor changes only when the whole load succeeds
            copy.deepcopy(processor).set_state(processor_state)
        except Exception as e:  # noqa: BLE001 - any failure means the state is unusable
            raise ValueError(
                f"The checkpoint state file is invalid: `processor` does not fit {type(processor).__name__} "
                f"({e}). Received: processor={_short_repr(processor_state)} in "
                f"filepath={os.path.join(folder, STATE)!r}"
            ) from e
    # Everything is checked: from here on nothing can fail on the checkpoint's contents.
    agent.apply_checkpoint_files(staged)
    if restore_processor:
        processor.set_state(processor_state)
    agent.step = state["step"]
    agent.episode = state["episode"]
    agent.np_random.bit_generator.state = rng_state
    if env is not None:
        _set_env_rng_state(env, env_rng)


def _folder_files(folder: str) -> dict[str, str]:
    """Every file under `folder` but `state.json`: {path relative to `folder`, with "/": path}."""
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel != _CHECKPOINT_STATE:
                files[rel] = path
    return files


def _read_checkpoint_state(dirpath: str, agent_class: str) -> tuple[str, dict]:
    """Reads `checkpoint.json` and the `state.json` it names; checks both (but not the other files)."""
    index_path = os.path.join(dirpath, _CHECKPOINT_INDEX)
    index = read_json(index_path, what="checkpoint index")

    def bad_index(field: str, expected: str, value: Any) -> ValueError:
        return ValueError(
            f"The checkpoint index is invalid: `{field}` must be {expected}. "
            f"Received: {field}={_short_repr(value)} in filepath={index_path!r}"
        )

    if not isinstance(index, dict):
        raise ValueError(
            f"The checkpoint index is invalid: it must hold a JSON object. Received: {_short_repr(index)} "
            f"in filepath={index_path!r}"
        )
    latest = index.get("latest")
    if not isinstance(latest, str) or not _CHECKPOINT_NAME.fullmatch(latest):
        raise bad_index("latest", "the name of a checkpoint sub-folder, such as 'step-000000001000-1a2b3c4d'", latest)
    digest = index.get("state_sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise bad_index("state_sha256", "a SHA-256 in hexadecimal (checkpoints of format 2 and later)", digest)
    folder = os.path.join(dirpath, latest)
    if not os.path.isdir(folder):
        raise ValueError(
            f"The checkpoint sub-folder named by the checkpoint index does not exist. Received: latest={latest!r} "
            f"in filepath={index_path!r}"
        )
    state_path = os.path.join(folder, _CHECKPOINT_STATE)
    if not os.path.isfile(state_path):
        raise ValueError(f"The checkpoint state file does not exist. Received: filepath={state_path!r}")
    with open(state_path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(
            f"The checkpoint state file is damaged: its SHA-256 differs from the one recorded in {index_path!r} "
            f"(one of the two files was changed). Received: filepath={state_path!r}"
        )
    state = parse_json(data, state_path, what="checkpoint state file")

    def bad(field: str, expected: str, value: Any) -> ValueError:
        return ValueError(
            f"The checkpoint state file is invalid: `{field}` must be {expected}. "
            f"Received: {field}={_short_repr(value)} in filepath={state_path!r}"
        )

    if not isinstance(state, dict):
        raise ValueError(
            f"The checkpoint state file is invalid: it must hold a JSON object. Received: {_short_repr(state)} "
            f"in filepath={state_path!r}"
        )
    for key in ("format", "agent", "step", "episode", "rng", "agent_state", "files"):
        if key not in state:
            raise ValueError(f"The checkpoint state file lacks `{key}`. Received: filepath={state_path!r}")
    if type(state["format"]) is not int or state["format"] != _CHECKPOINT_FORMAT:
        raise bad("format", f"{_CHECKPOINT_FORMAT} (checkpoints of another version of keras-rl3)", state["format"])
    if state["agent"] != agent_class:
        raise ValueError(
            f"The checkpoint was written by {state['agent']!r}; this agent is {agent_class!r}. "
            f"Received: filepath={state_path!r}"
        )
    for key in ("step", "episode"):
        value = state[key]
        if type(value) is not int or value < 0:
            raise bad(key, "a non-negative integer", value)
    if not isinstance(state["agent_state"], dict):
        raise bad("agent_state", "a JSON object", state["agent_state"])
    files = state["files"]
    if not isinstance(files, dict):
        raise bad("files", "a JSON object of {file name: SHA-256}", files)
    for rel, file_digest in files.items():
        parts = rel.split("/")
        if rel == _CHECKPOINT_STATE or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            raise bad("files", "relative names of files inside the sub-folder", rel)
        if not isinstance(file_digest, str) or not _SHA256.fullmatch(file_digest):
            raise bad(f"files[{rel!r}]", "a SHA-256 in hexadecimal", file_digest)
    if "env_rng" in state and not isinstance(state["env_rng"], dict):
        raise bad("env_rng", "a JSON object", state["env_rng"])
    return folder, state


def _checked_rng_state(state: dict, field: str, bit_generator: type, folder: str) -> dict:
    """Returns `state[field]` if a fresh `bit_generator` accepts it as its state, else raises."""
    value = _lookup(state, field)
    try:
        if not isinstance(value, dict):
            raise TypeError("not a JSON object")
        bit_generator().state = value  # a throwaway generator: nothing of the agent changes
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(
            f"The checkpoint state file is invalid: `{field}` is not a {bit_generator.__name__} state ({e}). "
            f"Received: {field}={_short_repr(value)} in filepath={os.path.join(folder, _CHECKPOINT_STATE)!r}"
        ) from e
    return value


def _lookup(state: dict, field: str) -> Any:
    value: Any = state
    for key in field.split("."):
        value = value[key]
    return value


def _checked_env_rng_state(state: dict, env: Any, folder: str) -> dict:
    """Checks `env_rng` (when present) and, with `env`, that the environment has those generators."""
    saved = state.get("env_rng", {})
    state_path = os.path.join(folder, _CHECKPOINT_STATE)
    unknown = set(saved) - {"env", "action_space"}
    if unknown:
        raise ValueError(
            "The checkpoint state file is invalid: `env_rng` holds only 'env' and 'action_space'. "
            f"Received: env_rng keys {sorted(unknown)} in filepath={state_path!r}"
        )
    generators = {
        "env": getattr(env, "np_random", None),
        "action_space": getattr(getattr(env, "action_space", None), "np_random", None),
    }
    for key in saved:
        field = f"env_rng.{key}"
        generator = generators[key]
        if env is not None:
            if not isinstance(generator, np.random.Generator):
                what = "env.np_random" if key == "env" else "env.action_space.np_random"
                raise ValueError(
                    f"The checkpoint holds the state of the environment's {what}, but this environment has no such "
                    f"numpy Generator. Received: env={env!r}"
                )
            _checked_rng_state(state, field, type(generator.bit_generator), folder)
        else:
            value = saved[key]
            name = value.get("bit_generator") if isinstance(value, dict) else None
            bit_generator = getattr(np.random, name, None) if isinstance(name, str) else None
            if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
                bit_generator = np.random.PCG64
            _checked_rng_state(state, field, bit_generator, folder)
    return saved if env is not None else {}


def _verify_files(folder: str, files: dict[str, str]) -> None:
    """Checks that every file `state.json` lists is there with the SHA-256 recorded for it."""
    for rel, digest in files.items():
        path = os.path.join(folder, *rel.split("/"))
        if not os.path.isfile(path):
            raise ValueError(f"The checkpoint lacks one of its files. Received: filepath={path!r}")
        if sha256_file(path) != digest:
            raise ValueError(
                "A checkpoint file is damaged: its SHA-256 differs from the one recorded in state.json. "
                f"Received: filepath={path!r}"
            )


def _env_rng_state(env: Any) -> dict:
    state: dict = {}
    rng = getattr(env, "np_random", None)
    if isinstance(rng, np.random.Generator):
        state["env"] = rng.bit_generator.state
    space_rng = getattr(getattr(env, "action_space", None), "np_random", None)
    if isinstance(space_rng, np.random.Generator):
        state["action_space"] = space_rng.bit_generator.state
    return state


def _set_env_rng_state(env: Any, state: dict) -> None:
    if "env" in state:
        env.np_random.bit_generator.state = state["env"]
    if "action_space" in state:
        env.action_space.np_random.bit_generator.state = state["action_space"]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
