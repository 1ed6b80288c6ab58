"""Run an experiment: every seed and variant, one model each, collected into
result files."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Callable

import keras
import pandas as pd
import tensorflow as tf

from . import __version__
from .config import Experiment
from .models import build_model
from .results import write_results
from .tasks import for_variant, make_dataset
from .trainers import TRAINERS, EpochResult

PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scipy", "pydantic", "click", "pyyaml")


def seed_everything(seed: int) -> None:
    """The one seeding block: Python, NumPy's global state and TensorFlow, with
    deterministic kernels. Task data draws from its own Generator(seed)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run_experiment(
    experiment: Experiment, out_dir: Path, echo: Callable[[str], None] = print, quiet: bool = False
) -> pd.DataFrame:
    """Train every (seed, variant), write the result files to `out_dir`, and
    return the summary table."""
    started_at, started = _now(), time.perf_counter()
    seeds, variants = experiment.seed_list, experiment.variants
    train = experiment.train
    echo(
        f"{experiment.name}: task {experiment.data.task}, {len(seeds)} seeds x {len(variants)} "
        f"variants, {train.epochs} epochs, trainer {train.trainer}"
    )
    rows: list[dict] = []
    total, done = len(seeds) * len(variants), 0
    for seed in seeds:
        dataset = make_dataset(experiment.data, train.batch_size, seed)
        if seed == seeds[0]:
            for note in dataset.notes:
                echo(note)
        per_variant: dict[str, list[EpochResult]] = {}
        for variant in variants:
            seed_everything(seed)
            model = build_model(experiment, variant, train.batch_size)
            variant_data = for_variant(dataset, variant, train.batch_size)
            per_variant[variant] = list(TRAINERS[train.trainer](model, experiment, variant_data))
            done += 1
            if not quiet:
                seconds = sum(result.seconds for result in per_variant[variant])
                echo(f"[{done}/{total}] seed {seed} {variant}: {seconds:.1f} s")
        if not quiet:
            echo(epoch_table(seed, per_variant))
        rows += [
            {"config": experiment.name, "variant": variant, "seed": seed, **vars(result), "status": "ok"}
            for variant, results in per_variant.items()
            for result in results
        ]
    epochs = pd.DataFrame(rows)
    meta = run_metadata(experiment, started_at, time.perf_counter() - started)
    return write_results(out_dir, epochs, experiment.to_yaml(), meta, title=experiment.name)


def epoch_table(seed: int, per_variant: dict[str, list[EpochResult]]) -> str:
    """The variants side by side, one line per epoch, in the blog's log format."""
    lines = [f"seed {seed}"]
    epochs = len(next(iter(per_variant.values())))
    for epoch in range(epochs):
        cells = [
            f"{variant}: Train: ({_cell(r.train_loss)}, {_cell(r.train_accuracy)}) "
            f"Test: ({_cell(r.test_loss)}, {_cell(r.test_accuracy)})"
            for variant, results in per_variant.items()
            for r in [results[epoch]]
        ]
        lines.append(f"  Epoch: {epoch} (Loss, Acc) " + " | ".join(cells))
    return "\n".join(lines)


def _cell(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def run_metadata(experiment: Experiment, started_at: str, wall_seconds: float) -> dict:
    versions = {"stateful-lab": __version__}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "config": experiment.name,
        "seeds": experiment.seed_list,
        "variants": experiment.variants,
        "trainer": experiment.train.trainer,
        "versions": versions,
        "git_commit": _git_commit(),
        "host": {
            "name": platform.node(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
        },
        "environment": {key: os.environ.get(key) for key in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND")},
        "started_at": started_at,
        "finished_at": _now(),
        "wall_seconds": round(wall_seconds, 3),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    """The lab's own commit, with '-dirty' when its files have uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stateful_lab", "configs", "pyproject.toml"], cwd=here.parent, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
