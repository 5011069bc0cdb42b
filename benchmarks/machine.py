"""One line naming the machine and the package versions, printed first by each benchmark script.

Absolute figures only mean something next to the processor and versions that produced them
(the same script ran 3-4 times faster on one 2-core machine than on another), so every
benchmark prints this line before its figures.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("numpy", "tensorflow", "tensorflow-cpu", "keras", "gymnasium", "torch", "stable-baselines3")


def cpu() -> str:
    """The processor's model name and family/model numbers (from /proc/cpuinfo where there is one)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} usable cores"


def versions() -> str:
    """Installed versions of the packages the benchmarks use (those that are installed)."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join([f"Python {platform.python_version()}"] + found)


def describe() -> str:
    return f"machine: {cpu()}; {versions()}"


if __name__ == "__main__":
    print(describe())
