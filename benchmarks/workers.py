"""Benchmark runs in fresh processes: a worker prints one result line, the driver reads it back.

Each timed run gets a process of its own so that no library's threads, caches or compiled
functions carry over from one run to the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_PREFIX = "RESULT "


def report(result: Any) -> None:
    """Prints `result` (JSON-serialisable) as the worker's result line."""
    print(_PREFIX + json.dumps(result), flush=True)


def run_worker(script: str, args: list[str], what: str, python: str | None = None) -> Any:
    """Runs `python script *args` in a fresh process and returns the result it reported.

    `python` is the interpreter (default: this one); a peer library that pins conflicting
    versions runs from its own virtual environment's.

    Raises:
        RuntimeError: naming `what`, with the end of the worker's output, when it fails or
            reports nothing.
    """
    out = subprocess.run([python or sys.executable, script, *args], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith(_PREFIX)]
    if out.returncode or not lines:
        raise RuntimeError(f"{what} run failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1][len(_PREFIX) :])
