"""The bench's timings from the shell: each a fresh `stateful-lab` process, so
that TensorFlow's import and compilation are included, as a user waits for them.
TensorFlow-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = Path("configs/first_timestep.yaml")
SWEEP_SEEDS = 5000
"""`--seeds` of the sweep timed from the shell: 10,000 runs (two variants)."""


def time_cli_run(seeds: int) -> float:
    return cli_sweep(seeds)["seconds"]


def cli_sweep(seeds: int) -> dict:
    """`stateful-lab run` of the bench config from the shell (a fresh process):
    its wall seconds, the phases its meta.json records, and its peak memory (the
    largest resident set of a child process, MB: the run's own process, as
    nothing else ran as a child before it)."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "stateful_lab", "run", str(CONFIG), "--seeds", str(seeds), "--out", out, "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"the sweep failed: {child.stderr.read().decode()[-500:]}")
        phases = json.loads((Path(out) / "meta.json").read_text()).get("phases_seconds", {})
    return {"seeds": seeds, "seconds": seconds, "phases": phases, "peak_mb": usage.ru_maxrss / 1024}


def ask_table(path: Path, rows: int = 2000) -> Path:
    """A 2,000-row table of three numeric columns for timing `ask`: an AR(1) input
    a, a white-noise input b, and a target y driven by its own past and both
    inputs' previous rows."""
    rng = np.random.default_rng(0)
    a, b, y = np.zeros(rows), rng.normal(size=rows), np.zeros(rows)
    for t in range(1, rows):
        a[t] = 0.8 * a[t - 1] + rng.normal()
        y[t] = 0.6 * y[t - 1] + 0.3 * a[t - 1] + 0.2 * b[t - 1] + 0.3 * rng.normal()
    lines = ["a,b,y", *(f"{a[t]:.4f},{b[t]:.4f},{y[t]:.4f}" for t in range(rows))]
    path.write_text("\n".join(lines) + "\n")
    return path


def time_ask() -> tuple[float, str]:
    """`stateful-lab ask` on `ask_table` with default settings, from the shell (a
    fresh process: TensorFlow's import and compilation included): seconds, and
    the answer."""
    with tempfile.TemporaryDirectory() as scratch:
        table = ask_table(Path(scratch) / "table.csv")
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "stateful_lab", "ask", str(table), "--target", "y", "--out", f"{scratch}/out"]
            + ["--format", "json"],
            check=True,
            capture_output=True,
            text=True,
        )
        return time.perf_counter() - started, json.loads(completed.stdout)["recommendation"]
