"""Checkpoints: exact resume in a fresh process, surviving SIGKILL, and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from checkpoint_helpers import (  # noqa: F401  (fixtures)
    CHECKPOINT_FILES,
    assert_differ,
    assert_same,
    ckpt_fixture,
    core_snapshot,
    flip_byte,
    pop,
    put,
    rewrite_state,
    saved_fixture,
    subfolder,
    trained_agent,
)
from checkpoint_worker import build

from rl.callbacks import Callback

WORKER = os.path.join(os.path.dirname(__file__), "checkpoint_worker.py")


def run_worker(*args, timeout=300):
    subprocess.run([sys.executable, WORKER, *args], check=True, timeout=timeout)


@pytest.mark.parametrize("pack_max", [None, 20])
def test_resume_in_a_fresh_process_matches_an_uninterrupted_run(tmp_path, pack_max):
    """`pack_max=20`: the kernels keep their own variables, as a large network's do."""
    d = str(tmp_path)
    # 1 000 steps: five whole Pendulum episodes, so that the resumed run starts an episode where the
    # straight run does; training starts at step 300.
    extra = ["--steps", "1000"] + ([] if pack_max is None else ["--pack-max", str(pack_max)])
    run_worker("straight", "--dir", d, *extra)  # 2 000 steps in one go
    run_worker("first", "--dir", d, *extra)  # 1 000 steps, then a checkpoint
    run_worker("resume", "--dir", d, *extra)  # a new process loads it and trains 1 000 more
    with np.load(tmp_path / "straight.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert len(a.files) == len(b.files) == 16  # 4 networks x 2 Dense layers x (kernel, bias)
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    index = tmp_path / "ckpt" / "checkpoint.json"
    proc = subprocess.Popen([sys.executable, WORKER, "forever", "--dir", str(tmp_path)])
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if index.exists() and json.loads(index.read_text())["latest"] >= "step-000000001000":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no checkpoint past step 1000 appeared")
        time.sleep(0.37)  # land somewhere in the middle of training, maybe of a save
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    env, agent = build()
    agent.load_checkpoint(tmp_path / "ckpt", env=env)
    assert agent.step >= 1000 and agent.step % 250 == 0
    assert agent.memory.nb_transitions == agent.step  # every step stored, none lost or doubled
    assert agent.episode == -(-agent.step // 200)  # Pendulum episodes are 200 steps
    start = agent.step
    history = agent.fit(env, nb_steps=300, verbose=0)
    assert agent.step == start + 300
    assert all(np.isfinite(history.history["episode_reward"]))


def test_ctrl_c_returns_history_and_leaves_the_agent_usable(tmp_path):
    class Interrupt(Callback):
        def on_step_end(self, step, logs=None):
            if self.model.step == 450:
                raise KeyboardInterrupt

    env, agent = build()
    history = agent.fit(env, nb_steps=2000, verbose=0, callbacks=[Interrupt()], seed=0)
    assert agent.step == 450 and not agent.training
    assert history.history["nb_steps"] == [200, 400]
    test = agent.test(env, nb_episodes=1, visualize=False, verbose=0)
    assert np.isfinite(test.history["episode_reward"][0])
    agent.fit(env, nb_steps=100, verbose=0)
    assert agent.step == 550
    agent.save_checkpoint(tmp_path / "ckpt", env=env)
    assert (tmp_path / "ckpt" / "checkpoint.json").exists()


# ---------------------------------------------------------------- verified, all-or-nothing loads
# Agent A wrote the checkpoint `ckpt`; agent B (built and trained differently) tries to load it. A
# load that fails must leave B exactly as it was: see checkpoint_helpers.py.


def test_a_checkpoint_records_the_sha256_of_every_file(ckpt):
    import hashlib

    folder = subfolder(ckpt)
    state = json.loads((folder / "state.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(CHECKPOINT_FILES)
    assert state["files"] == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in CHECKPOINT_FILES[:-1]
    }
    index = json.loads((ckpt / "checkpoint.json").read_text())
    assert index["state_sha256"] == hashlib.sha256((folder / "state.json").read_bytes()).hexdigest()


@pytest.mark.parametrize("name", CHECKPOINT_FILES + ["checkpoint.json"])
@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_flipped_byte_in_any_file_is_refused_naming_it_and_changes_nothing(saved, ckpt, name, where):
    path = ckpt / name if name == "checkpoint.json" else subfolder(ckpt) / name
    good = path.read_bytes()
    flip_byte(path, at=None if where == "middle" else len(good) - 3)
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    assert_differ(before, saved[1])  # so that "unchanged" below means something
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)
    path.write_bytes(good)  # repaired, the same checkpoint loads
    agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), saved[1])


def test_an_edit_of_the_state_file_that_still_parses_is_detected(ckpt):
    path = subfolder(ckpt) / "state.json"
    text = path.read_text()
    assert '"step": 30,' in text
    path.write_text(text.replace('"step": 30,', '"step": 29,'))  # valid JSON, a valid step: only the checksum tells
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=r"state file is damaged.*checkpoint\.json.*state\.json"):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)


def test_a_listed_file_that_is_missing_is_refused_and_changes_nothing(ckpt):
    (subfolder(ckpt) / "critic_optimizer.npz").unlink()
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=r"lacks one of its files.*critic_optimizer\.npz"):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)


STATE_EDITS = [
    ("negative step", put("step", -1), r"`step` must be a non-negative integer.*step=-1"),
    ("bool step", put("step", True), r"`step` must be a non-negative integer.*step=True"),
    ("float step", put("step", 30.0), r"`step` must be .*step=30\.0"),
    ("str step", put("step", "30"), r"`step` must be .*step='30'"),
    ("negative episode", put("episode", -3), r"`episode` must be .*episode=-3"),
    ("missing step", pop("step"), r"lacks `step`"),
    ("missing agent_state", pop("agent_state"), r"lacks `agent_state`"),
    ("missing files", pop("files"), r"lacks `files`"),
    ("agent_state a list", put("agent_state", []), r"`agent_state` must be a JSON object"),
    ("format 1", put("format", 1), r"`format` must be 2.*format=1"),
    ("another agent", put("agent", "DQNAgent"), r"written by 'DQNAgent'; this agent is 'DDPGAgent'"),
    ("rng garbage", put("rng.state.state", "x"), r"`rng` is not a PCG64 state"),
    ("rng of another generator", put("rng.bit_generator", "MT19937"), r"`rng` is not a PCG64 state"),
    ("rng a list", put("rng", [1, 2]), r"`rng` is not a PCG64 state"),
    ("env rng garbage", put("env_rng.env.state.inc", -5), r"`env_rng\.env` is not a PCG64 state"),
    ("action space rng missing a key", lambda s: s["env_rng"]["action_space"].pop("state"), r"env_rng\.action_space"),
    ("env rng unknown key", put("env_rng.other", {}), r"`env_rng` holds only 'env' and 'action_space'"),
    ("files a list", put("files", []), r"`files` must be a JSON object"),
    ("file outside the folder", put("files", {"../memory.npz": "0" * 64}), r"`files` must be relative names"),
    ("file digest not hex", lambda s: s["files"].update({"memory.npz": "abc"}), r"`files\['memory\.npz'\]` must be"),
    ("file with another digest", put("files", {"memory.npz": "0" * 64}), r"damaged.*memory\.npz"),
]


@pytest.mark.parametrize("case, edit, words", STATE_EDITS, ids=[c[0] for c in STATE_EDITS])
def test_a_hand_edited_state_file_is_refused_naming_the_field_and_changes_nothing(ckpt, case, edit, words):
    rewrite_state(ckpt, edit)
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=words) as info:
        agent.load_checkpoint(ckpt, env=env)
    assert "state.json" in str(info.value) or "memory.npz" in str(info.value)
    assert_same(core_snapshot(agent, env), before)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x89HDF\r\n\x1a\n\xff\xfe", "not UTF-8 text"),
        (b'{"format": 2, "step": ', "corrupt or truncated"),
        (b"[1, 2]", "must hold a JSON object"),
        (b"[" * 100_000, "corrupt or truncated"),
    ],
    ids=["binary", "truncated", "a list", "too deep"],
)
def test_a_garbage_state_file_is_refused_naming_it(ckpt, data, words):
    rewrite_state(ckpt, data=data)
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=rf"{words}.*state\.json"):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[]", "must hold a JSON object"),
        (b'{"latest": 5, "state_sha256": "00"}', r"`latest` must be the name of a checkpoint sub-folder.*latest=5"),
        (b'{"latest": "../../etc"}', r"`latest` must be .*latest='\.\./\.\./etc'"),
        (b'{"latest": "step-000000000030-00000000", "state_sha256": "' + b"0" * 64 + b'"}', "does not exist"),
    ],
    ids=["binary", "a list", "latest not a name", "latest outside", "latest missing"],
)
def test_a_hand_edited_index_is_refused_naming_it(ckpt, data, words):
    (ckpt / "checkpoint.json").write_bytes(data)
    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=rf"{words}.*checkpoint\.json"):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)


def test_an_index_without_the_state_checksum_is_refused(ckpt):
    index = json.loads((ckpt / "checkpoint.json").read_text())
    del index["state_sha256"]  # as checkpoints of format 1 were written
    (ckpt / "checkpoint.json").write_text(json.dumps(index))
    agent, env = trained_agent()
    with pytest.raises(ValueError, match=r"`state_sha256` must be a SHA-256.*state_sha256=None.*checkpoint\.json"):
        agent.load_checkpoint(ckpt, env=env)


def test_a_memory_of_another_limit_is_refused_and_counters_and_memory_are_unchanged(ckpt):
    agent, env = trained_agent(limit=200)
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=r"limit=100.*limit=200.*memory\.npz"):
        agent.load_checkpoint(ckpt, env=env)
    assert_same(core_snapshot(agent, env), before)  # networks: see test_checkpoint_atomic.py


def test_an_env_without_the_saved_generator_is_refused_before_anything_changes(ckpt):
    class NoRandom:
        """An environment whose action space has no numpy generator."""

        def __init__(self, env):
            self.np_random, self.action_space = env.np_random, object()

    agent, env = trained_agent()
    before = core_snapshot(agent, env)
    with pytest.raises(ValueError, match=r"env\.action_space\.np_random.*no such numpy Generator"):
        agent.load_checkpoint(ckpt, env=NoRandom(env))
    assert_same(core_snapshot(agent, env), before)


# ---------------------------------------------------------------- no temporary file survives
def test_a_save_removes_what_killed_saves_left_and_nothing_else(ckpt):
    agent, env = trained_agent()
    leftovers = [
        ckpt / ".checkpoint.json.k1ll3d_x.tmp.json",  # killed while checkpoint.json was rewritten
        ckpt / ".step-000000000017-0badc0de.tmp",  # killed while the sub-folder was written
    ]
    leftovers[0].write_text("{")
    leftovers[1].mkdir()
    (leftovers[1] / "actor.weights.h5").write_bytes(b"partial")
    # A killed save recorded what it was writing in the index; the user keeps folders named like checkpoints.
    index = json.loads((ckpt / "checkpoint.json").read_text())
    index["pending"] = [".step-000000000017-0badc0de.tmp", "step-000000000017-0badc0de"]
    (ckpt / "checkpoint.json").write_text(json.dumps(index))
    kept = [
        ckpt / "notes.txt",
        ckpt / "mine.tmp",
        ckpt / ".checkpoint.json.bak",
        ckpt / "step-notes",
        ckpt / "step-000000000099-abcdef12",  # a user's folder named like a checkpoint
        ckpt / ".step-000000000005-00000000.tmp",  # not recorded by the index: not the library's to delete
    ]
    kept[0].write_text("mine")
    kept[1].mkdir()
    kept[2].write_text("{}")
    for folder in kept[3:]:
        folder.mkdir()
    (kept[4] / "model.keras").write_bytes(b"user data")
    old = subfolder(ckpt)
    folder = agent.save_checkpoint(ckpt, env=env)
    assert not any(p.exists() for p in leftovers + [old])
    assert all(p.exists() for p in kept)
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(
        ["checkpoint.json", os.path.basename(folder)] + [p.name for p in kept]
    )
    agent.load_checkpoint(ckpt, env=env)
    assert agent.step == 17


def test_a_save_killed_after_the_first_checkpoint_is_cleaned_by_the_next(ckpt, monkeypatch):
    agent, env = trained_agent()
    old = subfolder(ckpt)

    def killed(folder):
        raise KeyboardInterrupt  # the process stopped while the files were written

    monkeypatch.setattr(agent, "save_checkpoint_files", killed)
    with pytest.raises(KeyboardInterrupt):
        agent.save_checkpoint(ckpt, env=env)
    monkeypatch.undo()
    assert json.loads((ckpt / "checkpoint.json").read_text())["latest"] == os.path.basename(old)
    fresh, _ = trained_agent()
    fresh.load_checkpoint(ckpt)  # the previous checkpoint is intact
    folder = agent.save_checkpoint(ckpt, env=env)  # the next save completes and cleans up
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["checkpoint.json", os.path.basename(folder)])
    fresh.load_checkpoint(ckpt)
    assert fresh.step == agent.step
