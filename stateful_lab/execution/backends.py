"""Where work items train: in this process one after another, on a pool of local
worker processes (`workers`, shared by several configs), or on a Dask cluster.
Every backend runs an item with `dispatch.run_item` and yields the runs' results
as they finish."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from dataclasses import replace

from stateful_lab.errors import LabError
from stateful_lab.execution import workers
from stateful_lab.execution.dispatch import run_item
from stateful_lab.execution.plan import plan
from stateful_lab.runs.listening import Listener, listening
from stateful_lab.runs.records import RunResult
from stateful_lab.runs.unit import Unit


class SchedulerError(LabError, RuntimeError):
    """The Dask cluster cannot be used as given."""


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
            future = self.executor.submit(piece, self.threads)
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
        def results(begin: Callable[[str], None], heard: Listener | None = None) -> Iterator[RunResult]:
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
        self.executor.shutdown()


def execute(
    units: list[Unit],
    jobs: int = 1,
    scheduler: str | None = None,
    begin: Callable[[str], None] = lambda label: None,
    heard: Listener | None = None,
) -> Iterator[RunResult]:
    """Yield each unit's result as it finishes (a group's all at once); `begin`
    hears of each work item as it starts, where items go one at a time, and
    `heard` of each epoch a run records, here or in a local worker (not on Dask)."""
    items = plan(units)
    if scheduler:
        yield from _execute_on_dask(items, scheduler)
    elif jobs > 1 and len(items) > 1:
        yield from _execute_on_workers(items, jobs, begin, heard)
    else:
        for item in items:
            begin(item[0].label if len(item) == 1 else f"{len(item)} runs together: {_group_label(item)}")
            with listening(heard):
                results = run_item(item)
            yield from results


def _execute_on_workers(
    items: list[list[Unit]], jobs: int, begin: Callable[[str], None], heard: Listener | None = None
) -> Iterator[RunResult]:
    """The items on the pool of `jobs` workers (kept for the next config when all
    went well; stopped at once if the caller stops early, so no work goes on
    unseen). A worker that dies loses its own item only (`workers`)."""
    pool = workers.executor(jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    on_epochs = None if heard is None else lambda epochs: [heard(key, epoch) for key, epoch in epochs.items()]
    futures = [pool.submit(item, threads, on_epochs) for item in items]
    begin(f"{min(jobs, len(items))} at a time")
    finished = False
    try:
        for future in as_completed(futures):
            yield from future.result()[0]
        finished = True
    finally:
        if not finished:
            pool.shutdown()


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
