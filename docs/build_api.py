"""Writes docs/api.md, the API reference, from the package's docstrings.

Usage, from the repository root:

    python docs/build_api.py

Every public name (the module's `__all__`) of every public module of the `rl` package is listed
with its signature and docstring (the modules of `MODULES` first, in that order, then any other
module that defines `__all__` and names something not listed yet, alphabetically); classes also
list the public methods and properties they define that have a docstring.
Names re-exported from another listed module link to the place where they are documented.
Google-style sections (`Args:`, `Returns:`, ...) become Markdown lists. Standard library only.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys

# The order of the reference (a module listed here that does not exist is skipped); `modules()`
# appends any other public module of `rl` with an `__all__`.
MODULES = [
    "rl",
    "rl.core",
    "rl.agents",
    "rl.agents.off_policy",
    "rl.agents.actor_critic",
    "rl.agents.value_based",
    "rl.agents.offline",
    "rl.loops.run",
    "rl.loops.guards",
    "rl.loops.episode",
    "rl.loops.vector",
    "rl.loops.offline",
    "rl.loops.workers",
    "rl.checkpoint",
    "rl.engine",
    "rl.engine.batch",
    "rl.engine.dataset",
    "rl.engine.layout",
    "rl.engine.fused",
    "rl.engine.fields",
    "rl.engine.compiled",
    "rl.engine.xla",
    "rl.memory",
    "rl.random",
    "rl.policy",
    "rl.processors",
    "rl.callbacks",
    "rl.plot",
    "rl.distributed",
    "rl.util",
]
DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
OUTPUT = os.path.join(DOCS, "api.md")

SECTION = re.compile(r"^(Args|Arguments|Attributes|Returns|Raises|Yields|Example|Examples|Note|Notes):\s*$")
LIST_SECTIONS = {"Args", "Arguments", "Attributes", "Raises"}
ENTRY = re.compile(r"^(\S[^:]*?):\s*(.*)$")
MAX_LINE = 100


class _Raw:
    """An annotation shown exactly as written (the modules use postponed, string annotations)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _raw(annotation: object) -> object:
    """Shows a string or forward-reference annotation without quotes."""
    if isinstance(annotation, str):
        return _Raw(annotation)
    if isinstance(getattr(annotation, "__forward_arg__", None), str):
        return _Raw(annotation.__forward_arg__)
    return annotation


def _default(value: object) -> object:
    """A default value as Python source: `numpy.float64` for a class, not `<class 'numpy.float64'>`."""
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        module = getattr(value, "__module__", None)
        name = getattr(value, "__qualname__", getattr(value, "__name__", "?"))
        return _Raw(name if module in (None, "builtins") else f"{module}.{name}")
    if repr(value).startswith("<"):
        return _Raw("...")  # an object without a source form
    return value


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return "#" + text.replace(" ", "-")


def own_doc(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def format_signature(name: str, obj: object, drop_first: bool = False, is_class: bool = False) -> str:
    """`name(params) -> return`, on one line if it is short, else one parameter per line."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = list(sig.parameters.values())
    if drop_first and params:
        params = params[1:]
    params = [
        p.replace(annotation=_raw(p.annotation), default=_default(p.default))
        if p.default is not inspect.Parameter.empty
        else p.replace(annotation=_raw(p.annotation))
        for p in params
    ]
    ret = inspect.Signature.empty if is_class else _raw(sig.return_annotation)
    sig = sig.replace(parameters=params, return_annotation=ret)
    text = f"{name}{sig}"
    if len(text) <= MAX_LINE:
        return text
    lines = [f"{name}("]
    kinds = [p.kind for p in params]
    for i, p in enumerate(params):
        starts_keyword_only = p.kind is inspect.Parameter.KEYWORD_ONLY and (
            i == 0 or kinds[i - 1] not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_POSITIONAL)
        )
        if starts_keyword_only:
            lines.append("    *,")
        lines.append(f"    {p},")
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and (
            i + 1 == len(kinds) or kinds[i + 1] is not inspect.Parameter.POSITIONAL_ONLY
        ):
            lines.append("    /,")
    tail = ")"
    if ret is not inspect.Signature.empty:
        tail += f" -> {inspect.formatannotation(ret)}"
    lines.append(tail)
    return "\n".join(lines)


def public_name(cls: type) -> str:
    """`module.Name`, preferring a public alias (`keras.callbacks.Callback`) to a private module path."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    if ".src" in cls.__module__ or "._" in cls.__module__:
        top = cls.__module__.split(".")[0]
        for candidate in sorted(m for m in sys.modules if m == top or m.startswith(top + ".")):
            if ".src" in candidate or "._" in candidate:
                continue
            if getattr(sys.modules[candidate], cls.__name__, None) is cls:
                return f"{candidate}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def docstring_to_markdown(doc: str) -> str:
    """Turns a Google-style docstring into Markdown."""
    out: list[str] = []
    section = None
    fence_indent = None  # indentation of the open ``` fence, or None
    doctest = False
    for line in doc.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if fence_indent is not None:
            out.append(line[fence_indent:] if line[:fence_indent].strip() == "" else stripped)
            if stripped.startswith("```"):
                fence_indent = None
            continue
        if stripped.startswith("```"):
            fence_indent = indent
            out.append(stripped)
            continue
        if stripped.startswith(">>>") or (doctest and stripped and not SECTION.match(stripped)):
            if not doctest:
                out.append("```python")
                doctest = True
            out.append(stripped)
            continue
        if doctest:
            out.append("```")
            doctest = False
        match = SECTION.match(line)
        if match:
            section = match.group(1)
            out += ["", f"**{section}:**", ""]
            continue
        if not stripped:
            out.append("")
            continue
        if indent == 0:
            section = None  # a paragraph after the sections ends them
        if section in LIST_SECTIONS and indent > 0:
            entry = ENTRY.match(stripped)
            if indent <= 4 and entry:
                out.append(f"- `{entry.group(1)}`: {entry.group(2)}")
            elif out and out[-1].startswith("- "):
                out[-1] += " " + stripped
            else:
                out.append(stripped)
            continue
        if section is not None and indent > 0:
            if out and out[-1] and not out[-1].startswith(("**", "```")):
                out[-1] += " " + stripped
            else:
                out.append(stripped)
            continue
        out.append(line)
    if doctest:
        out.append("```")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def code(text: str) -> list[str]:
    return ["```python", text, "```", ""]


def describe_members(cls: type, qualname: str) -> list[str]:
    lines: list[str] = []
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            doc = own_doc(member)
            if doc:
                lines += [f"#### `{qualname}.{name}` (property)", "", docstring_to_markdown(doc), ""]
            continue
        if isinstance(member, staticmethod):
            func, drop_first, kind = member.__func__, False, " (static method)"
        elif isinstance(member, classmethod):
            func, drop_first, kind = member.__func__, True, " (class method)"
        elif inspect.isfunction(member):
            func, drop_first, kind = member, True, ""
        else:
            continue
        doc = own_doc(func)
        if not doc:
            continue
        lines += [f"#### `{qualname}.{name}`{kind}", ""]
        lines += code(format_signature(name, func, drop_first=drop_first))
        lines += [docstring_to_markdown(doc), ""]
    return lines


def describe(module_name: str, name: str, obj: object, documented: dict[str, str]) -> list[str]:
    qualname = f"{module_name}.{name}"
    if inspect.isclass(obj) or inspect.isfunction(obj):
        target = documented.get(f"{obj.__module__}.{obj.__qualname__}")
        if target is not None and target != qualname:
            return [f"### `{qualname}`", "", f"The same object as [`{target}`]({anchor(target)}).", ""]
    lines = [f"### `{qualname}`", ""]
    if inspect.isclass(obj):
        bases = [b for b in obj.__bases__ if b is not object]
        lines += code(f"class {format_signature(name, obj, is_class=True)}")
        if bases:
            names = ", ".join(f"`{public_name(b)}`" for b in bases)
            lines += [f"Bases: {names}", ""]
        doc = own_doc(obj)
        if doc:
            lines += [docstring_to_markdown(doc), ""]
        lines += describe_members(obj, name)
    elif callable(obj):
        lines += code(format_signature(name, obj))
        doc = own_doc(obj)
        if doc:
            lines += [docstring_to_markdown(doc), ""]
    else:
        lines += code(f"{name} = {obj!r}")
    return lines


def modules() -> list[str]:
    """The modules documented: `MODULES`, then every other public `rl` module with an `__all__`.

    A module whose public names are all documented already (an agent's module, whose class
    `rl.agents` re-exports) is left out.
    """
    import importlib.util
    import pkgutil

    import rl

    names = [name for name in MODULES if importlib.util.find_spec(name) is not None]
    covered = {id(getattr(module, name)) for module in map(importlib.import_module, names) for name in module.__all__}
    for info in sorted(pkgutil.walk_packages(rl.__path__, "rl."), key=lambda info: info.name):
        if info.name in names or any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        public = getattr(module, "__all__", ())
        if any(id(getattr(module, name)) not in covered for name in public):
            names.append(info.name)
    return names


def build() -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # importing rl imports TensorFlow
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    names = modules()
    modules_ = [importlib.import_module(m) for m in names]
    # Where each class or function is documented in full: the listed module that defines it, else the
    # listed module closest to where it is defined (rl.agents for rl.agents.ddpg).
    documented: dict[str, str] = {}
    for module in modules_:
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            key = f"{obj.__module__}.{obj.__qualname__}"
            homes = [m for m in names if obj.__module__ == m or obj.__module__.startswith(m + ".")]
            if homes and max(homes, key=len) == module.__name__:
                documented[key] = f"{module.__name__}.{name}"

    lines = [
        "# API reference",
        "",
        "<!-- Generated by `python docs/build_api.py` from the docstrings: edit those, then rerun the script. -->",
        "<!-- fmt:off -->",  # code copied from docstrings stays as written there
        "",
        "Generated from the docstrings by `python docs/build_api.py`. Every public name (`__all__`) of each",
        "module is listed with its signature; classes list the public methods and properties they define.",
        "",
    ]
    lines += [f"- [`{m}`]({anchor(m)})" for m in names] + [""]
    for module in modules_:
        lines += [f"## `{module.__name__}`", ""]
        doc = own_doc(module)
        if doc:
            lines += [docstring_to_markdown(doc), ""]
        for name in module.__all__:
            lines += describe(module.__name__, name, getattr(module, name), documented)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main() -> None:
    text = build()
    tmp = OUTPUT + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, OUTPUT)
    print(f"Wrote {os.path.relpath(OUTPUT, os.getcwd())}")


if __name__ == "__main__":
    main()
