"""The package's shape: no import cycles, and modules outside the agents use agents through public names."""

import ast
import os
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "rl")


def modules():
    """{module name: path} of every module of `rl`."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = path
    return out


def imports(name, path, known):
    """The `rl` modules that module `name` imports, anywhere in it (inside functions too)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            # `from rl import x` imports the module rl.x when there is one, else a name of rl
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_in_the_package():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def agent_private_names():
    """Private attribute names agents define (`self._x = ...`, `def _x`) in rl/agents, rl/engine and rl.core.Agent."""
    names = set()
    paths = [p for n, p in modules().items() if n.startswith(("rl.agents", "rl.engine"))]
    paths.append(os.path.join(PACKAGE, "core.py"))
    for path in paths:
        tree = ast.parse(open(path, encoding="utf-8").read())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            if path.endswith("core.py") and cls.name != "Agent":
                continue
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and not node.name.startswith("__"):
                    names.add(node.name)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                    if node.attr.startswith("_") and not node.attr.startswith("__"):
                        names.add(node.attr)
    return names


def private_reaches(path, names):
    """`(line, text)` of each `x._name` with `_name` an agent's private name and `x` not `self` or `cls`.

    Names the module's own classes define on `self` are left out: there `x` is one of its own objects.
    """
    tree = ast.parse(open(path, encoding="utf-8").read())
    own = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }
    names = set(names) - own
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            out.append((node.lineno, ast.unparse(node)))
    return out


def self_names(path):
    """Private names a module's code sets or reads on `self`."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    return {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }


def test_modules_outside_the_agents_use_no_private_name_of_an_agent():
    names = agent_private_names()
    assert {"_rng", "_scheduled", "_updates", "_low", "_input_shapes"} <= names  # the scan sees the agents
    outside = {n: p for n, p in modules().items() if not n.startswith(("rl.agents", "rl.engine"))}

    def family(name):  # rl.memory.state -> rl.memory: a package's modules share their objects' private names
        return ".".join(name.split(".")[:2])

    own = {}
    for n, p in outside.items():
        own.setdefault(family(n), set()).update(self_names(p))
    found = {n: private_reaches(p, names - own[family(n)]) for n, p in outside.items()}
    assert {n: hits for n, hits in found.items() if hits} == {}


def test_the_private_name_scan_flags_a_reach(tmp_path):
    path = tmp_path / "loop.py"
    path.write_text("def run(agent):\n    agent._updates += 1\n    agent.step += 1\n")
    assert private_reaches(str(path), {"_updates"}) == [(2, "agent._updates")]
    own = tmp_path / "memory.py"  # a module whose own objects have the name: their business
    own.write_text("class M:\n    def f(self, other):\n        self._updates = other._updates\n")
    assert private_reaches(str(own), {"_updates"}) == []


def test_hooks_named_as_before_still_work_with_a_deprecation_warning():
    import gymnasium as gym

    from rl.core import Agent

    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class OldStyle(Agent):
            def _check_env(self, env):
                calls.append("check")
                super()._check_env(env)

            def _on_run_end(self, training):
                calls.append(("end", training))
                super()._on_run_end(training)

            def compile(self, optimizer=None, metrics=None):
                self.compiled = True

            def forward(self, observation):
                return 0

            def backward(self, reward, terminal, truncated=False, next_observation=None):
                return []

    messages = sorted(str(w.message) for w in caught if w.category is DeprecationWarning)
    assert [m.split(" is deprecated")[0] for m in messages] == ["OldStyle._check_env", "OldStyle._on_run_end"]
    assert "name the hook check_env instead" in messages[0]
    agent = OldStyle()
    agent.compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # using the class warns no more
        agent.fit(gym.make("CartPole-v1"), nb_steps=5, verbose=0)
    assert calls == ["check", ("end", True)]
    assert agent.step == 5
