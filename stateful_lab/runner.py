"""Run an experiment as units of work and collect their results.

A unit is one (sweep point, variant, seed): one model trained for its epochs. Its
key is a hash of everything that decides its numbers, so a unit whose result is
on disk is never run again (unless forced), a changed config gets new keys, and
an interrupted run resumes where it stopped. Units run in this process, in
joblib worker processes (`jobs > 1`), or on a Dask cluster (`scheduler`).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import pickle
import platform
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import keras
import pandas as pd
import tensorflow as tf

from . import __version__
from .config import Experiment
from .models import build_model
from .results import write_atomic, write_results
from .tasks import for_variant, make_dataset
from .trainers import TRAINERS

PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "scipy", "pydantic", "click", "pyyaml",
            "joblib", "distributed", "matplotlib")
# Bumped when a unit's stored format or meaning changes, so old results are not re-used.
UNIT_FORMAT = 1
FINISHED = ("ok", "diverged")


def seed_everything(seed: int) -> None:
    """The one seeding block: Python, NumPy's global state and TensorFlow, with
    deterministic kernels. Task data draws from its own Generator(seed)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class Unit:
    point: dict[str, Any]
    variant: str
    seed: int
    experiment: Experiment
    """The sweep point's resolved experiment."""

    @property
    def key(self) -> str:
        settings = self.experiment.model_dump(
            mode="json", exclude={"name", "description", "seeds", "variants", "sweep", "claims"}
        )
        text = json.dumps({"format": UNIT_FORMAT, "settings": settings, "variant": self.variant,
                           "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def result(self, **fields: Any) -> dict[str, Any]:
        """A result record for this unit: who it is, then `fields`."""
        return {"key": self.key, "point": self.point, "variant": self.variant, "seed": self.seed,
                "status": "ok", "error": None, "epochs": []} | fields


def plan_units(experiment: Experiment) -> list[Unit]:
    return [
        Unit(point, variant, seed, point_experiment)
        for point, point_experiment in experiment.points
        for seed in experiment.seed_list
        for variant in experiment.variants
    ]


def run_unit(unit: Unit, threads: int | None = None) -> dict[str, Any]:
    """Train one unit, in a fresh process if its config asks for isolation."""
    if unit.experiment.train.isolate:
        return _run_isolated(unit, threads)
    return _run_here(unit, threads)


def _run_isolated(unit: Unit, threads: int | None) -> dict[str, Any]:
    """The unit in a child process (`python -m stateful_lab.runner`), whose peak
    memory is then the unit's own."""
    child = subprocess.run(
        [sys.executable, "-m", "stateful_lab.runner"], input=pickle.dumps((unit, threads)),
        capture_output=True,
    )
    if child.returncode == 0:
        return pickle.loads(child.stdout)
    tail = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return unit.result(status="failed", error=f"the isolated process exited {child.returncode}: {tail[0]}",
                       seconds=math.nan, peak_memory_mb=None)


def _run_here(unit: Unit, threads: int | None = None) -> dict[str, Any]:
    """Train one unit in this process. Never raises for the unit's own errors: a
    failure or a divergence is a result, so a sweep carries on."""
    _size_thread_pools(threads)
    result = unit.result()
    started = time.perf_counter()
    try:
        experiment, batch = unit.experiment, unit.experiment.train.batch_size
        dataset = for_variant(make_dataset(experiment.data, batch, unit.seed), unit.variant, batch)
        result["notes"] = list(dataset.notes)
        seed_everything(unit.seed)
        model = build_model(experiment, unit.variant, batch, seed=unit.seed)
        for epoch in TRAINERS[experiment.train.trainer](model, experiment, dataset):
            result["epochs"].append(asdict(epoch))
            if not (math.isfinite(epoch.train_loss) and math.isfinite(epoch.test_loss)):
                result["status"] = "diverged"  # stop early: nothing after a NaN is worth training
                break
    except Exception as error:  # the unit failed; the sweep goes on
        result.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc())
    result["seconds"] = time.perf_counter() - started
    # A shared process's peak says nothing about one unit: only an isolated one's does.
    result["peak_memory_mb"] = _peak_memory_mb() if unit.experiment.train.isolate else None
    return result


def _size_thread_pools(threads: int | None) -> None:
    """Give each of N workers cores/N threads, so they do not oversubscribe.
    Only possible before TensorFlow's runtime starts in this process."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # this worker already ran a unit: its pools are sized already


class UnitStore:
    """One JSON file per finished unit under `folder`, written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def finished(self, key: str) -> bool:
        result = self.load(key)
        return result is not None and result["status"] in FINISHED

    def save(self, result: dict[str, Any]) -> None:
        write_atomic(self.folder / f"{result['key']}.json", json.dumps(result, indent=1) + "\n")


@dataclass
class RunOutcome:
    summary: pd.DataFrame
    total: int
    ran: int
    skipped: int
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_experiment(
    experiment: Experiment,
    out_dir: Path,
    echo: Callable[[str], None] = print,
    quiet: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
) -> RunOutcome:
    """Run every unit not already finished in `out_dir`, then write the result
    files from exactly this config's units."""
    started_at, started = _now(), time.perf_counter()
    units = plan_units(experiment)
    store = UnitStore(out_dir / "units")
    todo = [unit for unit in units if force or not store.finished(unit.key)]
    train = experiment.train
    echo(
        f"{experiment.name}: task {experiment.data.task}, {len(experiment.points)} points x "
        f"{len(experiment.seed_list)} seeds x {len(experiment.variants)} variants = {len(units)} runs, "
        f"{train.epochs} epochs, trainer {train.trainer}"
    )
    if len(todo) < len(units):
        echo(f"skipped {len(units) - len(todo)} finished runs; --force to re-run them")

    progress = _Progress(len(todo), echo, quiet)
    noted: set[str] = set()
    for result in execute(todo, jobs, scheduler):
        store.save(result)
        for note in result.get("notes", []):  # what was trimmed or left out, once per distinct note
            if note not in noted:
                noted.add(note)
                echo(note)
        progress.update(result)
        if result["status"] == "failed":
            echo(f"FAILED {_label(result)}: {result['error']}")

    results = [store.load(unit.key) for unit in units]
    epochs, runs = tables(experiment, results)
    diverged = [_label(result) for result in results if result["status"] == "diverged"]
    failed = [_label(result) for result in results if result["status"] == "failed"]
    if not quiet:
        for line in epoch_tables(results):
            echo(line)
    meta = run_metadata(experiment, started_at, time.perf_counter() - started) | {
        "jobs": jobs, "scheduler": scheduler, "runs": len(units), "ran": len(todo),
        "skipped": len(units) - len(todo), "diverged": diverged, "failed": failed,
    }
    summary = write_results(out_dir, epochs, runs, experiment.to_yaml(), meta,
                            title=experiment.name, group_keys=list(experiment.sweep))
    return RunOutcome(summary, len(units), len(todo), len(units) - len(todo), diverged, failed)


def execute(units: list[Unit], jobs: int = 1, scheduler: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield each unit's result as it finishes."""
    if scheduler:
        yield from _execute_on_dask(units, scheduler)
    elif jobs > 1 and len(units) > 1:
        from joblib import Parallel, delayed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
        yield from parallel(delayed(run_unit)(unit, threads) for unit in units)
    else:
        for unit in units:
            yield run_unit(unit)


def _execute_on_dask(units: list[Unit], address: str) -> Iterator[dict[str, Any]]:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address} ({error}); "
                             "check the address, or run without --scheduler") from None
    with client:
        threaded = [worker for worker, info in client.scheduler_info()["workers"].items() if info["nthreads"] != 1]
        if threaded:
            raise SchedulerError(
                f"Dask workers {threaded} run several threads; TensorFlow seeding is per process, so "
                "start workers with one thread each (dask worker ADDRESS --nthreads 1 --nworkers N)"
            )
        futures = client.map(run_unit, units, threads=1, pure=False)
        for future in as_completed(futures):
            yield future.result()


class SchedulerError(RuntimeError):
    """The Dask cluster cannot be used as given."""


class _Progress:
    """units done / total, with an estimate of the time left."""

    def __init__(self, total: int, echo: Callable[[str], None], quiet: bool):
        self.total, self.echo, self.quiet = total, echo, quiet
        self.done, self.started = 0, time.perf_counter()

    def update(self, result: dict[str, Any]) -> None:
        self.done += 1
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        self.echo(f"[{self.done}/{self.total}] {_label(result)}: {result['status']}, "
                  f"{result['seconds']:.1f} s; about {left:.0f} s left")


def _label(result: dict[str, Any]) -> str:
    where = "".join(f" {key}={value}" for key, value in result["point"].items())
    return f"seed {result['seed']} {result['variant']}{where}"


def tables(experiment: Experiment, results: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """epochs.csv rows (one per unit and epoch) and runs.csv rows (one per unit,
    with its final-epoch figures, median epoch time and peak memory)."""
    epoch_rows, run_rows = [], []
    for result in results:
        base = {"config": experiment.name, **result["point"], "variant": result["variant"],
                "seed": result["seed"]}
        for epoch in result["epochs"]:
            epoch_rows.append(base | epoch | {"status": result["status"]})
        if result["status"] == "failed":
            epoch_rows.append(base | {"status": "failed"})
        final = result["epochs"][-1] if result["epochs"] else {}
        later = [epoch["seconds"] for epoch in result["epochs"][1:]] or [final.get("seconds", math.nan)]
        run_rows.append(base | {
            "status": result["status"],
            "epochs": len(result["epochs"]),
            **{name: final.get(name, math.nan)
               for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
            # epoch 0 includes tracing and compilation: the cost per epoch is the later ones
            "epoch_seconds": float(pd.Series(later).median()),
            "peak_memory_mb": result.get("peak_memory_mb"),
            "error": result["error"],
            "key": result["key"],
        })
    return pd.DataFrame(epoch_rows), pd.DataFrame(run_rows)


def epoch_tables(results: list[dict[str, Any]]) -> list[str]:
    """Per sweep point and seed, the variants side by side in the blog's format."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for result in results:
        point = tuple(result["point"].items())
        groups.setdefault((point, result["seed"]), {})[result["variant"]] = result["epochs"]
    lines = []
    for (point, seed), per_variant in groups.items():
        lines.append(f"seed {seed}" + "".join(f" {key}={value}" for key, value in point))
        for epoch in range(max(len(epochs) for epochs in per_variant.values())):
            cells = [
                f"{variant}: Train: ({_cell(e['train_loss'])}, {_cell(e['train_accuracy'])}) "
                f"Test: ({_cell(e['test_loss'])}, {_cell(e['test_accuracy'])})"
                for variant, epochs in per_variant.items() if epoch < len(epochs)
                for e in [epochs[epoch]]
            ]
            lines.append(f"  Epoch: {epoch} (Loss, Acc) " + " | ".join(cells))
    return lines


def _cell(value: float) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"


def _peak_memory_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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
        "sweep": experiment.sweep,
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
        "peak_memory_mb": _peak_memory_mb(),
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
    """The lab's own commit, with '-dirty' when its code has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stateful_lab", "configs", "pyproject.toml"],
            cwd=here.parent, capture_output=True, text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":  # the child of _run_isolated: one unit in, its result out
    sys.stdout.buffer.write(pickle.dumps(_run_here(*pickle.loads(sys.stdin.buffer.read()))))
