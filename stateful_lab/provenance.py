"""Where and with what a run was made: package versions, the lab's git commit,
the host and its CPU, for meta.json and results/bench.md."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import subprocess
from pathlib import Path

from stateful_lab import __version__

PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "scipy",
    "pydantic",
    "click",
    "pyyaml",
    "distributed",
    "tensorboard",
    "matplotlib",
)


def versions() -> dict[str, str | None]:
    found = {"stateful-lab": __version__}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def host() -> dict[str, object]:
    return {
        "name": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
    }


def cpu_fields() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo; empty where there is none."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            first = cpuinfo.read().split("\n\n")[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in first.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_model() -> str:
    return cpu_fields().get("model name") or platform.processor() or "unknown"


def cpu_id(fields: dict[str, str] | None = None) -> str | None:
    """The CPU's vendor, family, model and stepping, and its widest vector
    instructions. XLA compiles for the host's instruction set, so two CPUs of one
    model name can round the same run differently in its last bits: this lab's
    machine was once a first-generation Zen EPYC and once a Zen 4 (AVX-512), both
    "AMD EPYC", and a chaotic run's figures differed between them from the
    seventh digit up. From `fields` (default: this machine's `cpu_fields`); None
    where they do not say."""
    fields = cpu_fields() if fields is None else fields
    if "cpu family" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    vector = next((name for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags), "no vector extensions")
    return (
        f"{fields.get('vendor_id', 'unknown vendor')} family {fields['cpu family']} model {fields.get('model')}"
        f" stepping {fields.get('stepping')}, {vector}"
    )


def git_commit() -> str | None:
    """The lab's own commit, with '-dirty' when its code has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stateful_lab", "configs", "pyproject.toml"],
            cwd=here.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def peak_memory_mb() -> float:
    """This process's peak resident memory so far. On Linux, VmHWM of
    /proc/self/status: getrusage's ru_maxrss survives exec, so a child started
    from a large parent (`run` over many configs) would report the parent's
    peak instead of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def environment() -> dict[str, str | None]:
    return {key: os.environ.get(key) for key in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND", "XLA_FLAGS")}
