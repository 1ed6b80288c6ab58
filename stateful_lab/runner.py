"""Run an experiment: plan its units, skip the finished ones, execute the rest
(here, in joblib worker processes with `jobs > 1`, or on a Dask cluster with
`scheduler`), collect their results and write the result files.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import provenance
from .atomic import remove_temporaries
from .config import Experiment
from .console import LineProgress
from .records import RunResult, UnitStore
from .results import METRICS, epoch_tables, forecast_table, tables, write_results
from .unit import Unit, plan_units, run_unit


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
    progress: LineProgress | None = None,
    quiet: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
) -> RunOutcome:
    """Run every unit not already finished in `out_dir`, then write the result
    files from exactly this config's units. `progress` shows the runs and prints
    the lab's lines (default: plain lines on stdout)."""
    with folder_lock(out_dir):
        return _run_holding_the_lock(
            experiment, out_dir, progress or LineProgress(print, quiet), quiet, jobs, scheduler, force
        )


def _run_holding_the_lock(
    experiment: Experiment,
    out_dir: Path,
    progress: LineProgress,
    quiet: bool,
    jobs: int,
    scheduler: str | None,
    force: bool,
) -> RunOutcome:
    echo = progress.echo
    started_at, started = provenance.now(), time.perf_counter()
    units = plan_units(experiment)
    store = UnitStore(out_dir / "units")
    for folder in (out_dir, store.folder):
        remove_temporaries(folder)  # left by a writer that was killed; we hold the lock
    unreadable = 0 if force else sum(store.unreadable(unit.key) for unit in units)
    todo = [unit for unit in units if force or not store.finished(unit.key)]
    train = experiment.train
    echo(
        f"{experiment.name}: task {experiment.data.task}, {len(experiment.points)} points x "
        f"{len(experiment.seed_list)} seeds x {len(experiment.variants)} variants = {len(units)} runs, "
        f"{train.epochs} epochs, trainer {train.trainer}"
    )
    if len(todo) < len(units):
        echo(f"skipped {len(units) - len(todo)} finished runs; --force to re-run them")
    if unreadable:
        echo(
            f"re-running {unreadable} runs whose stored results were unreadable"
            if unreadable > 1
            else "re-running 1 run whose stored result was unreadable"
        )

    progress.start(len(todo))
    noted: set[str] = set()
    try:
        for result in execute(todo, jobs, scheduler, begin=progress.begin):
            store.save(result)
            for note in result.notes:  # what was trimmed or left out, once per distinct note
                if note not in noted:
                    noted.add(note)
                    echo(note)
            progress.finish(result.label, result.status, result.seconds)
            if result.status == "failed":
                echo(f"FAILED {result.label}: {result.error}")
    finally:  # also on Ctrl-C: a live bar left open would hide the terminal's cursor
        progress.close()

    results = [store.load(unit.key) for unit in units]
    metrics = (*METRICS, *experiment.data.metrics)
    epochs, runs = tables(experiment.name, results, metrics)
    diverged = [result.label for result in results if result.status == "diverged"]
    failed = [result.label for result in results if result.status == "failed"]
    if not quiet:
        for line in epoch_tables(results):
            echo(line)
    meta = run_metadata(experiment, started_at, time.perf_counter() - started) | {
        "jobs": jobs,
        "scheduler": scheduler,
        "runs": len(units),
        "ran": len(todo),
        "skipped": len(units) - len(todo),
        "diverged": diverged,
        "failed": failed,
    }
    forecasts = forecast_table(
        experiment.name, [(result, unit.experiment.data.forecast_set()) for unit, result in zip(units, results)]
    )
    summary = write_results(
        out_dir,
        epochs,
        runs,
        experiment.to_yaml(),
        meta,
        title=experiment.name,
        group_keys=list(experiment.sweep),
        metrics=metrics,
        forecasts=forecasts,
    )
    return RunOutcome(summary, len(units), len(todo), len(units) - len(todo), diverged, failed)


def execute(
    units: list[Unit], jobs: int = 1, scheduler: str | None = None, begin: Callable[[str], None] = lambda label: None
) -> Iterator[RunResult]:
    """Yield each unit's result as it finishes; `begin` hears of each run as it
    starts, where runs go one at a time."""
    if scheduler:
        yield from _execute_on_dask(units, scheduler)
    elif jobs > 1 and len(units) > 1:
        from joblib import Parallel, delayed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
        begin(f"{min(jobs, len(units))} runs at a time")
        yield from parallel(delayed(run_unit)(unit, threads) for unit in units)
    else:
        for unit in units:
            begin(unit.label)
            yield run_unit(unit)


def _execute_on_dask(units: list[Unit], address: str) -> Iterator[RunResult]:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {address} ({error}); check the address, or run without --scheduler"
        ) from None
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


class FolderInUse(RuntimeError):
    """Another run holds the output folder."""


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold OUT/.lock for the run, so that two runs never write one folder. An OS
    lock (flock): the system releases it when the process ends, however it ends, so
    a lock file left by a dead process blocks nothing. The file holds the holder's
    process id, for the message a second run gets."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:  # closing it releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FolderInUse(
                f"{folder} is in use by another stateful-lab run (process {holder}); wait for it to finish, "
                "or write elsewhere with --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


class SchedulerError(RuntimeError):
    """The Dask cluster cannot be used as given."""


def run_metadata(experiment: Experiment, started_at: str, wall_seconds: float) -> dict:
    return {
        "config": experiment.name,
        "seeds": experiment.seed_list,
        "variants": experiment.variants,
        "sweep": experiment.sweep,
        "trainer": experiment.train.trainer,
        "versions": provenance.versions(),
        "git_commit": provenance.git_commit(),
        "host": provenance.host(),
        "environment": provenance.environment(),
        "started_at": started_at,
        "finished_at": provenance.now(),
        "wall_seconds": round(wall_seconds, 3),
        "peak_memory_mb": provenance.peak_memory_mb(),
    }
