import json
import os

import pytest

from rl.util import atomic_path, read_json, sha256_file, write_json_atomic


def names(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("target", ["log.json", "ddpg_actor.weights.h5", "memory", "a.b.c"])
def test_a_successful_write_removes_the_temporaries_killed_writes_left(tmp_path, target):
    dot = target.find(".")
    suffix = target[dot:] if dot > 0 else ""
    stale = [f".{target}.{r}.tmp{suffix}" for r in ("abcd1234", "k_9z0x1y", "zz")]
    others = [
        f".other{suffix}.abcd1234.tmp{suffix}",  # another target's temporary
        f".{target}.abcd1234.tmp{suffix}.keep",  # not a name atomic_path makes
        f"{target}.abcd1234.tmp{suffix}",  # not hidden: a user's file
        f".{target}.ABCD1234.tmp{suffix}",
        f".{target}.abcd1234.tmp",  # another suffix
        f".{target}x.abcd1234.tmp{suffix}",
    ]
    others = [o for o in others if o not in stale]
    for name in stale + others:
        (tmp_path / name).write_text("left over")
    (tmp_path / f".{target}.dir0.tmp{suffix}").mkdir()  # folders are never removed
    with atomic_path(tmp_path / target) as tmp, open(tmp, "w") as f:
        f.write("new")
    assert (tmp_path / target).read_text() == "new"
    assert names(tmp_path) == sorted([target, f".{target}.dir0.tmp{suffix}"] + others)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "log.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError
    assert json.loads(path.read_text()) == {"a": 1}
    assert names(tmp_path) == ["log.json"]


def test_read_json_names_the_file_for_every_kind_of_damage(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(ValueError, match=r"does not exist.*x\.json"):
        read_json(path)
    for data, words in [(b"\xff\xfe{", "not UTF-8"), (b"{", "corrupt or truncated"), (b"[" * 100_000, "corrupt")]:
        path.write_bytes(data)
        with pytest.raises(ValueError, match=rf"{words}.*x\.json"):
            read_json(path)
    write_json_atomic(path, {"ü": [1, 2]})
    assert read_json(path) == {"ü": [1, 2]}


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
