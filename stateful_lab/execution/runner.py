"""Run an experiment: plan its units, skip the finished ones, execute the rest
(here, in joblib worker processes with `jobs > 1`, or on a Dask cluster with
`scheduler`), collect their results and write the result files.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from stateful_lab import provenance
from stateful_lab.atomic import remove_temporaries
from stateful_lab.config.experiment import Experiment
from stateful_lab.console import LineProgress
from stateful_lab.execution import workers
from stateful_lab.execution.dispatch import run_item
from stateful_lab.execution.plan import plan
from stateful_lab.results.tables import METRICS, epoch_tables, forecast_table, tables, write_results
from stateful_lab.runs.records import RunResult, UnitStore
from stateful_lab.runs.unit import Unit, plan_units


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
            lambda begin: execute(planned.todo, jobs, scheduler, begin=begin),
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
        results: Callable[[Callable[[str], None]], Iterable[RunResult]],
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
            f"{experiment.name}: task {experiment.data.task}, {len(experiment.points)} points x "
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

        progress.start(len(todo))
        noted: set[str] = set()
        produced: dict[str, RunResult] = {}
        try:
            for result in results(progress.begin):
                store.save(result)
                produced[result.key] = result
                for note in result.notes:  # what was trimmed or left out, once per distinct note
                    if note not in noted:
                        noted.add(note)
                        echo(note)
                progress.finish(result.label, result.status, result.seconds)
                if result.status == "failed":
                    echo(f"FAILED {result.label}: {result.error}")
        finally:  # also on Ctrl-C: a live bar left open would hide the terminal's cursor
            progress.close()

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


class WorkPool:
    """Local worker processes shared by several configs (`run` with several
    configs and --jobs N): every config's work is queued as soon as it is planned,
    so the workers train the next configs while this process writes a finished
    config's results, and no worker waits at a config's end. Runs of different
    configs that share a compiled program train in one group, and a run that
    several configs have (the same settings, variant and seed: the same run)
    trains once, its result going to each of them."""

    def __init__(self, jobs: int):
        self.executor = workers.executor(jobs)
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.jobs = jobs
        self.worker_peak_mb = 0.0
        """The largest peak memory of a worker, as far as their work has reported."""
        self.futures: list[list] = []
        """Each config's futures, from the last `submit`."""

    def submit(self, todos: list[list[Unit]]) -> list[Callable[[Callable[[str], None]], Iterator[RunResult]]]:
        """Queue every config's units to do, the longest work first (so that none
        starts last and holds up the end); for each config, the function that
        yields its results as they finish."""
        wanted: dict[str, list[tuple[int, Unit]]] = {}  # a run's key -> the configs' units that want it
        for config, todo in enumerate(todos):
            for unit in todo:
                wanted.setdefault(unit.key, []).append((config, unit))
        pieces = plan([units[0][1] for units in wanted.values()])
        futures: list[list] = [[] for _ in todos]
        for piece in pieces:
            future = self.executor.submit(_run_reporting_memory, piece, self.threads)
            for config in sorted({config for unit in piece for config, _ in wanted[unit.key]}):
                futures[config].append(future)
        self.futures = futures
        return [self._results(config, config_futures, wanted) for config, config_futures in enumerate(futures)]

    def finished(self) -> Iterator[int]:
        """The configs of the last `submit`, by index, each as soon as all its
        work is done (those with nothing to do first), so that this process
        writes a config's results while the workers train the others'."""
        pending = {config: set(futures) for config, futures in enumerate(self.futures)}
        while pending:
            ready = [config for config, futures in pending.items() if all(f.done() for f in futures)]
            if not ready:  # wait on the unfinished only: one already done would return at once, a busy loop
                wait({f for futures in pending.values() for f in futures if not f.done()}, return_when=FIRST_COMPLETED)
            for config in ready:
                del pending[config]
                yield config

    def _results(
        self, config: int, futures: list, wanted: dict
    ) -> Callable[[Callable[[str], None]], Iterator[RunResult]]:
        def results(begin: Callable[[str], None]) -> Iterator[RunResult]:
            begin(f"{self.jobs} at a time")
            for future in as_completed(futures):
                results, peak = future.result()
                self.worker_peak_mb = max(self.worker_peak_mb, peak)
                for result in results:  # this config's share, under its own sweep point
                    for wanting, unit in wanted[result.key]:
                        if wanting == config:
                            yield replace(result, point=unit.point)

        return results

    def shutdown(self) -> None:
        """Stop the workers now: the work is done, or the run was interrupted (queued
        work is abandoned)."""
        self.executor.shutdown(wait=False, kill_workers=True)


def execute(
    units: list[Unit], jobs: int = 1, scheduler: str | None = None, begin: Callable[[str], None] = lambda label: None
) -> Iterator[RunResult]:
    """Yield each unit's result as it finishes (a group's all at once); `begin`
    hears of each work item as it starts, where items go one at a time."""
    items = plan(units)
    if scheduler:
        yield from _execute_on_dask(items, scheduler)
    elif jobs > 1 and len(items) > 1:
        from joblib import Parallel, delayed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
        begin(f"{min(jobs, len(items))} at a time")
        for results in parallel(delayed(run_item)(item, threads) for item in items):
            yield from results
    else:
        for item in items:
            begin(item[0].label if len(item) == 1 else f"{len(item)} runs together: {_group_label(item)}")
            yield from run_item(item)


def _group_label(units: list[Unit]) -> str:
    seeds = sorted({unit.seed for unit in units})
    points = len({json.dumps(unit.point, sort_keys=True, default=str) for unit in units})
    span = f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"{len(seeds)} seeds"
    variants = " and ".join(dict.fromkeys(unit.variant for unit in units))
    return f"{variants}, {span}" + (f", {points} points" if points > 1 else "")


def _execute_on_dask(items: list[list[Unit]], address: str) -> Iterator[RunResult]:
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
        futures = client.map(run_item, items, threads=1, pure=False)
        for future in as_completed(futures):
            yield from future.result()


def _run_reporting_memory(units: list[Unit], threads: int) -> tuple[list[RunResult], float]:
    """A work item's results and the worker's peak memory so far."""
    return run_item(units, threads), provenance.peak_memory_mb()


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
