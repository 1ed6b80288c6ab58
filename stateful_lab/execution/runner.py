"""Running configs: plan each one's units, skip the finished ones, execute the rest
on a backend (`backends`), collect their results and write the result files,
holding the output folder's lock throughout.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from stateful_lab import provenance
from stateful_lab.atomic import remove_temporaries
from stateful_lab.config.experiment import Experiment
from stateful_lab.console import LineProgress
from stateful_lab.errors import LabError
from stateful_lab.execution.backends import execute
from stateful_lab.results.tables import METRICS, epoch_tables, forecast_table, tables, write_results
from stateful_lab.runs.listening import Listener
from stateful_lab.runs.records import RunResult, UnitStore
from stateful_lab.runs.unit import Unit, plan_units

STORING_THREADS = 8
"""Threads storing finished runs' unit files while training goes on. Each file is
flushed to disk (`atomic.write_atomic`), which waits on the disk, not on a core:
10,000 runs' files took 6.8 s stored one after another in the training's thread."""


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
        planned = Planned.of(experiment, out_dir, force)
        return planned.complete(
            lambda begin, heard: execute(planned.todo, jobs, scheduler, begin=begin, heard=heard),
            progress or LineProgress(print, quiet),
            quiet,
            {"jobs": jobs, "scheduler": scheduler},
        )


@dataclass
class Planned:
    """A config's runs, planned: which are to run and which are stored already.
    The caller holds the output folder's lock from planning to completion."""

    experiment: Experiment
    out_dir: Path
    units: list[Unit]
    todo: list[Unit]
    store: UnitStore
    unreadable: int
    started_at: str
    started: float

    @classmethod
    def of(cls, experiment: Experiment, out_dir: Path, force: bool) -> Planned:
        started_at, started = provenance.now(), time.perf_counter()
        units = plan_units(experiment)
        store = UnitStore(out_dir / "units")
        for folder in (out_dir, store.folder):
            remove_temporaries(folder)  # left by a writer that was killed; we hold the lock
        unreadable = 0 if force else sum(store.unreadable(unit.key) for unit in units)
        todo = [unit for unit in units if force or not store.finished(unit.key)]
        return cls(experiment, out_dir, units, todo, store, unreadable, started_at, started)

    def complete(
        self,
        results: Callable[[Callable[[str], None], Listener], Iterable[RunResult]],
        progress: LineProgress,
        quiet: bool,
        execution: dict,
    ) -> RunOutcome:
        """Store the results of the runs to do as `results(begin)` yields them,
        then write the result files from exactly this config's units."""
        experiment, out_dir, units, todo, store = self.experiment, self.out_dir, self.units, self.todo, self.store
        echo = progress.echo
        train = experiment.train
        echo(
            f"{experiment.name}: task {experiment.data.task}, {experiment.point_count} points x "
            f"{len(experiment.seed_list)} seeds x {len(experiment.variants)} variants = {len(units)} runs, "
            f"{train.epochs} epochs, trainer {train.trainer}"
        )
        if len(todo) < len(units):
            echo(f"skipped {len(units) - len(todo)} finished runs; --force to re-run them")
        if self.unreadable:
            echo(
                f"re-running {self.unreadable} runs whose stored results were unreadable"
                if self.unreadable > 1
                else "re-running 1 run whose stored result was unreadable"
            )

        # The summary's intervals need scipy.stats, whose import takes a second or
        # more: done in a thread while the runs train. Not with one seed, where no
        # interval is drawn: the thread holds the GIL while the group's functions are
        # traced, which took 0.9 s with it and 0.3-0.5 s without.
        if len(experiment.seed_list) > 1:
            threading.Thread(target=importlib.import_module, args=("scipy.stats",), daemon=True).start()
        progress.start(len(todo), {unit.key: unit.experiment.train.epochs for unit in todo})
        noted: set[str] = set()
        produced: dict[str, RunResult] = {}
        training_started = time.perf_counter()
        saving = ThreadPoolExecutor(STORING_THREADS, thread_name_prefix="store")
        pending: deque[Future] = deque()
        try:
            for result in results(progress.begin, progress.epoch):
                pending.append(saving.submit(store.save, result))
                while pending and pending[0].done():
                    pending.popleft().result()  # a unit that could not be stored stops the run here
                produced[result.key] = result
                for note in result.notes:  # what was trimmed or left out, once per distinct note
                    if note not in noted:
                        noted.add(note)
                        echo(note)
                progress.finish(result.label, result.status, result.seconds, result.key)
                if result.status == "failed":
                    echo(f"FAILED {result.label}: {result.error}")
        finally:  # also on Ctrl-C: a live bar left open would hide the terminal's cursor
            progress.close()
            waiting = time.perf_counter()
            saving.shutdown(wait=True)  # every result handed over is stored, or its error known, before all else
            storing = time.perf_counter() - waiting
        for future in pending:
            future.result()

        assembling = time.perf_counter()
        phases = {
            "planning": training_started - self.started,
            "training": assembling - training_started - storing,
            "storing_units": storing,
        }
        # what this command produced, as stored; the rest as stored before (the same
        # run, maybe stored by another config in this folder: under this one's point)
        results = [produced.get(unit.key) or replace(store.load(unit.key), point=unit.point) for unit in units]
        metrics = (*METRICS, *experiment.data.metrics)
        epochs, runs = tables(experiment.name, results, metrics)
        diverged = [result.label for result in results if result.status == "diverged"]
        failed = [result.label for result in results if result.status == "failed"]
        if not quiet:
            for line in epoch_tables(results):
                echo(line)
        meta = run_metadata(experiment, self.started_at, time.perf_counter() - self.started) | {
            **execution,
            "runs": len(units),
            "ran": len(todo),
            "skipped": len(units) - len(todo),
            "diverged": diverged,
            "failed": failed,
        }
        forecasts = forecast_table(
            experiment.name, [(result, unit.experiment.data.forecast_set()) for unit, result in zip(units, results)]
        )
        phases["assembling_tables"] = time.perf_counter() - assembling
        meta["phases_seconds"] = {name: round(seconds, 3) for name, seconds in phases.items()}
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


class FolderInUse(LabError, RuntimeError):
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
