"""Running several configs, the library call behind `stateful-lab run`: one after
another, or on one pool of workers shared by all of them. Free of TensorFlow at
import, so that a pool's workers start (each importing it) before this process
imports its own."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from stateful_lab import provenance
from stateful_lab.config.experiment import Experiment
from stateful_lab.console import LineProgress
from stateful_lab.errors import LabError, RunFailed
from stateful_lab.execution import workers

if TYPE_CHECKING:
    from stateful_lab.execution.runner import RunOutcome


class Reporter:
    """What the caller of `run_configs` hears: a progress display for each config,
    and each config as it starts and as its results are written. The default
    hears nothing (a library call); the command line prints."""

    def progress(self, experiment: Experiment) -> LineProgress:
        return LineProgress(lambda line: None, quiet=True)

    def started(self, experiment: Experiment) -> None:
        """A config of several is about to report."""

    def finished(self, experiment: Experiment, folder: Path, outcome: RunOutcome) -> None:
        """A config's results are written."""

    def note(self, line: str) -> None:
        """A line about the whole run (peak memory, say)."""


def run_configs(
    experiments: list[Experiment],
    folders: list[Path],
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    quiet: bool = False,
    reporter: Reporter | None = None,
) -> list[RunOutcome]:
    """Run several configs, each into its folder: one after another (each on its
    own workers, on Dask, or here), or, with several configs and `jobs` > 1, on
    one pool of workers that trains every config's runs, each config's results
    written as soon as its own work is done. A failure outside any one run raises
    RunFailed; the lab's own errors (a folder in use, say) pass through."""
    reporter = reporter or Reporter()
    pooled = len(experiments) > 1 and jobs > 1 and not scheduler
    if pooled:
        workers.start(jobs)  # each imports TensorFlow while this process imports its own and plans
    from stateful_lab.execution.runner import run_experiment

    try:
        if pooled:
            return _run_pooled(experiments, folders, jobs, force, quiet, reporter)
        outcomes = []
        for experiment, folder in zip(experiments, folders, strict=True):
            if len(experiments) > 1:
                reporter.started(experiment)
            progress = reporter.progress(experiment)
            outcome = run_experiment(experiment, folder, progress, quiet, jobs, scheduler, force)
            reporter.finished(experiment, folder, outcome)
            outcomes.append(outcome)
        return outcomes
    except LabError:
        raise
    except Exception as error:  # outside any one run (those are results): one line, not a traceback
        raise RunFailed(f"the run failed: {type(error).__name__}: {error}") from error


def _run_pooled(
    experiments: list[Experiment], folders: list[Path], jobs: int, force: bool, quiet: bool, reporter: Reporter
) -> list[RunOutcome]:
    """Every config's folder locked and its runs planned and queued first, then
    each completed and reported as soon as its work is done."""
    from stateful_lab.execution.backends import WorkPool
    from stateful_lab.execution.runner import Planned, folder_lock

    outcomes: dict[int, RunOutcome] = {}
    with ExitStack() as locks:
        pool = None
        try:
            for folder in folders:
                locks.enter_context(folder_lock(folder))
            pool = WorkPool(jobs)
            planned = [Planned.of(experiment, folder, force) for experiment, folder in zip(experiments, folders)]
            queued = pool.submit([plan.todo for plan in planned])
            for index in pool.finished():  # each config as soon as its work is done
                plan = planned[index]
                reporter.started(plan.experiment)
                outcome = plan.complete(
                    queued[index], reporter.progress(plan.experiment), quiet, {"jobs": jobs, "scheduler": None}
                )
                reporter.finished(plan.experiment, plan.out_dir, outcome)
                outcomes[index] = outcome
        finally:  # the work is done or abandoned: stop the workers now, not in an exit hook that waits
            if pool is not None:
                pool.shutdown()
            else:
                workers.executor(jobs).shutdown()
    reporter.note(
        f"peak memory: {provenance.peak_memory_mb():.0f} MB in this process, {pool.worker_peak_mb:.0f} MB in the "
        f"largest of {jobs} workers"
    )
    return [outcomes[index] for index in sorted(outcomes)]
