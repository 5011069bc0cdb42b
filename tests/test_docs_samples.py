"""Every code sample of the guides runs as printed.

For each page `docs/*.md` (but the generated API reference), the ```python blocks run in page order,
in one namespace, with a fresh temporary folder as the current directory, under a time limit per
page. The rules for writing a page:

- A block right after a line `<!-- no-run: reason -->` is not run (a sketch, a window, a long job).
- A block right after a line `<!-- sample: NAME -->` can be reused by name. A page whose samples
  build on it says so in its text ("the samples below use the `agent` and `env` of ...") and carries
  the line `<!-- samples-use: NAME -->` before its first block: the named block runs first.
- Step counts are what the page prints: keep them small and say in the text what a real run uses.

Tracebacks give the line numbers of the page itself. Some pages have checks of their own below:
values a reader relies on (the worked agent learns; the files a monitoring sample writes exist).
"""

import json
import os
import re
import signal

import gymnasium as gym
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
GENERATED = {"api.md"}  # signatures and docstring excerpts, not runnable guides
PAGE_TIMEOUT_S = 180

FENCE = re.compile(r"^```python[ \t]*$")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*\S.*-->\s*$")
NAMED = re.compile(r"^<!--\s*sample:\s*([\w-]+)\s*-->\s*$")
USES = re.compile(r"^<!--\s*samples-use:\s*([\w-]+)\s*-->\s*$")


def pages():
    return sorted(name for name in os.listdir(DOCS) if name.endswith(".md") and name not in GENERATED)


def read_blocks(page):
    """Returns (blocks, uses): blocks as dicts with the code, its first line, `run` and `name`."""
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, uses, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        match = USES.match(line)
        if match:
            uses.append(match.group(1))
        if FENCE.match(line):
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            assert end < len(lines), f"{page}:{i + 1}: unclosed ```python block"
            before = lines[i - 1] if i > 0 else ""
            named = NAMED.match(before)
            blocks.append(
                {
                    "code": "\n".join(lines[i + 1 : end]) + "\n",
                    "line": i + 2,  # the block's first code line, 1-based
                    "run": not NO_RUN.match(before),
                    "name": named.group(1) if named else None,
                }
            )
            i = end
        i += 1
    return blocks, uses


def named_block(name):
    found = [(page, b) for page in pages() for b in read_blocks(page)[0] if b["name"] == name]
    assert len(found) == 1, f"`<!-- sample: {name} -->` must mark exactly one block, found {len(found)}"
    return found[0]


def _timeout(signum, frame):
    raise TimeoutError(f"the page's samples ran for more than {PAGE_TIMEOUT_S} s")


def exec_block(page, block, namespace):
    path = os.path.join(DOCS, page)
    source = "\n" * (block["line"] - 1) + block["code"]  # tracebacks show the page's line numbers
    exec(compile(source, path, "exec"), namespace)


_RUNS = {}


def run_page(page, workdir):
    """Runs the page's samples once per session; returns (namespace, workdir, printed output)."""
    if page in _RUNS:
        return _RUNS[page]
    blocks, uses = read_blocks(page)
    namespace = {"__name__": f"docs_{page[:-3]}"}
    old_cwd, old_handler = os.getcwd(), signal.signal(signal.SIGALRM, _timeout)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(workdir)
    signal.alarm(PAGE_TIMEOUT_S)
    try:
        for name in uses:
            exec_block(*named_block(name), namespace)
        for block in blocks:
            if block["run"]:
                exec_block(page, block, namespace)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)
    _RUNS[page] = (namespace, workdir)
    return _RUNS[page]


@pytest.fixture
def page_run(tmp_path_factory):
    def run(page):
        return run_page(page, tmp_path_factory.mktemp(page[:-3]))

    return run


@pytest.mark.parametrize("page", pages())
def test_page_samples_run(page, page_run):
    page_run(page)


def test_rules_of_the_runner(tmp_path, monkeypatch):
    """Skipped blocks, named blocks and the namespace shared by one page's blocks."""
    page = "_runner_check.md"
    monkeypatch.setattr("test_docs_samples.DOCS", str(tmp_path))
    (tmp_path / page).write_text(
        "# T\n\n<!-- samples-use: base -->\n\n```python\nx += 1\n```\n\n<!-- no-run: fails -->\n"
        "```python\nraise RuntimeError\n```\n\n```python\ny = x * 10\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "base.md").write_text("<!-- sample: base -->\n```python\nx = 1\n```\n", encoding="utf-8")
    namespace, _ = run_page(page, tmp_path)
    assert namespace["y"] == 20
    (tmp_path / "bad.md").write_text("# B\n\ntext\n\n```python\nok = 1\n\n1 / 0\n```\n", encoding="utf-8")
    with pytest.raises(ZeroDivisionError) as info:
        run_page("bad.md", tmp_path)
    assert info.traceback[-1].lineno + 1 == 8  # the line of `1 / 0` in the page


# Checks of particular pages: what their readers rely on.


def test_getting_started_trains_saves_and_tests(page_run):
    namespace, workdir = page_run("getting_started.md")
    assert (workdir / "ddpg_pendulum_actor.weights.h5").is_file()
    assert (workdir / "ddpg_pendulum_critic.weights.h5").is_file()
    assert len(namespace["results"].history["episode_reward"]) == 10
    assert len(namespace["returns"]) == 5  # 1 000 more steps: five whole 200-step episodes


def test_monitoring_samples_write_what_the_guide_says(page_run):
    namespace, workdir = page_run("monitoring.md")
    data = json.loads((workdir / "ddpg_log.json").read_text())
    assert data["nb_steps"] == [200, 400, 600, 800, 1000]
    assert (workdir / "curve.png").stat().st_size > 0
    assert os.listdir(workdir / "logs" / "ddpg" / "train")
    history = namespace["history"].history
    assert history["eval_step"] == [2400, 2800, 3200]  # agent.step counts on across fits
    assert (workdir / "best" / "ddpg_actor.weights.h5").is_file()


def test_custom_environment_agent_reaches_the_origin(page_run):
    namespace, _ = page_run("custom_environments.md")
    lengths = namespace["history"].history["nb_episode_steps"]
    assert len(lengths) == 3 and max(lengths) < 50, lengths  # terminated before the 50-step time limit


def test_inference_actor_and_saved_file_act_as_the_agent(page_run):
    namespace, workdir = page_run("inference.md")
    assert (workdir / "pendulum_actor.keras").is_file()
    assert np.isfinite(namespace["total"])
    np.testing.assert_allclose(namespace["action_from_model"], namespace["action_from_agent"], rtol=1e-5)
    np.testing.assert_allclose(namespace["action_from_file"], namespace["action_from_agent"], rtol=1e-5)


# The worked examples of "Writing a new agent".


def test_tabular_example_reaches_the_goal_every_test_episode(page_run):
    namespace, _ = page_run("writing_an_agent.md")
    history = namespace["history"].history
    assert history["episode_reward"] == [1.0] * 5
    assert history["nb_episode_steps"] == [6] * 5  # the shortest path
    assert namespace["agent"].step == 3000


def test_deep_example_learns_and_has_only_its_maths(page_run):
    namespace, _ = page_run("writing_an_agent.md")
    rewards = namespace["deep_history"].history["episode_reward"]
    assert len(rewards) == 3 and min(rewards) >= 19.0, rewards
    agent = namespace["deep_agent"]
    assert agent.metrics_names == ["critic_loss", "actor_loss"]
    assert agent.flat_weights and agent.trace_count == 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tabular_example_seeded_fit_then_test_reaches_the_goal(page_run, seed):
    QLearningAgent = page_run("writing_an_agent.md")[0]["QLearningAgent"]
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = QLearningAgent(env.observation_space.n, env.action_space.n, seed=seed)
    agent.compile()
    agent.fit(env, nb_steps=3000, verbose=0, seed=seed)
    history = agent.test(env, nb_episodes=5, visualize=False, verbose=0, seed=seed)
    assert np.mean(history.history["episode_reward"]) == 1.0


def test_tabular_example_same_seed_gives_the_same_table(page_run):
    QLearningAgent = page_run("writing_an_agent.md")[0]["QLearningAgent"]
    tables = []
    for _ in range(2):
        env = gym.make("FrozenLake-v1", is_slippery=False)
        agent = QLearningAgent(env.observation_space.n, env.action_space.n, seed=7)
        agent.compile()
        agent.fit(env, nb_steps=500, verbose=0, seed=7)
        tables.append(agent.q.copy())
    np.testing.assert_array_equal(tables[0], tables[1])


def test_tabular_example_bootstraps_on_truncation_but_not_on_termination(page_run):
    QLearningAgent = page_run("writing_an_agent.md")[0]["QLearningAgent"]
    agent = QLearningAgent(nb_states=2, nb_actions=1, gamma=0.5, alpha=1.0, seed=0)
    agent.compile()
    agent.training = True
    for terminal, truncated, expected in ((True, False, 1.0), (False, True, 1.0 + 0.5 * 4.0)):
        agent.q[:] = [[0.0], [4.0]]
        agent.forward(0)
        agent.backward(1.0, terminal, truncated=truncated, next_observation=1)
        assert agent.q[0, 0] == expected
    agent.training = False
    assert np.isnan(agent.backward(1.0, False, next_observation=1)[0])  # test(): no learning


def test_tabular_example_weights_round_trip_and_overwrite_rule(page_run, tmp_path):
    namespace, _ = page_run("writing_an_agent.md")
    path = str(tmp_path / "q.npy")
    agent = namespace["agent"]
    agent.save_weights(path)
    with pytest.raises(FileExistsError):
        agent.save_weights(path)
    agent.save_weights(path, overwrite=True)
    other = namespace["QLearningAgent"](agent.q.shape[0], agent.q.shape[1])
    other.load_weights(path)
    np.testing.assert_array_equal(other.q, agent.q)


def test_on_policy_example_a2c_learns_a_tiny_continuous_task(page_run):
    """The guide's A2CAgent on reward = action in [-2, 2], 10-step episodes (best return 20)."""
    from conftest import CountingEnv

    namespace, _ = page_run("writing_an_agent.md")
    assert all(np.isfinite(v) for v in namespace["a2c_metrics"].values())
    import keras

    keras.utils.set_random_seed(0)
    env = gym.wrappers.TimeLimit(CountingEnv(obs_dim=1), max_episode_steps=10)

    def mlp(out):
        inputs = keras.Input((1,))
        return keras.Model(inputs, keras.layers.Dense(out)(keras.layers.Dense(16, activation="tanh")(inputs)))

    agent = namespace["A2CAgent"](mlp(1), mlp(1), env.action_space, n_steps=20, gamma=0.9)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-2))
    agent.fit(env, nb_steps=3000, verbose=0, seed=0)
    returns = agent.test(env, nb_episodes=2, visualize=False, verbose=0).history["episode_reward"]
    assert np.mean(returns) >= 19.0, returns
