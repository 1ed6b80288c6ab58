"""What a config will need, estimated before anything is trained: memory per run
(refused when the machine cannot hold it), how many groups may train at once in
the memory there is, and the number of batch steps in all (a warning when it will
take hours). The memory estimate is the grouped engine's (`grouped.sizing`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from stateful_lab.config.experiment import MAX_RUNS, Experiment
from stateful_lab.errors import LabError
from stateful_lab.training.grouped.sizing import group_size, run_bytes

SLOW_STEPS = 20_000_000
"""Batch steps beyond which a run is warned about: at the compiled loop's tens of
microseconds per small step, several minutes to hours."""


class ResourceError(LabError, ValueError):
    """A config whose runs cannot fit in this machine's memory."""


@dataclass(frozen=True)
class Estimate:
    memory_bytes: int
    """The most one run needs, over the sweep points."""
    steps: int
    """Batch steps of every run together."""


def check_size(experiment: Experiment, max_runs: int = MAX_RUNS) -> None:
    """Raise ResourceError if the config makes more than `max_runs` runs: counted
    from the sweep's lengths, before any point is made."""
    runs = experiment.run_count
    if runs > max_runs:
        raise ResourceError(
            f"{experiment.name}: {runs:,} runs ({experiment.point_count:,} sweep points x "
            f"{len(experiment.seed_list)} seeds x {len(experiment.variants)} variants), above the limit of "
            f"{max_runs:,}; shrink the sweep or the seeds, or raise the limit with --max-runs {runs}"
        )


def estimate(experiment: Experiment) -> Estimate:
    memory, steps = 0, 0
    for _, point in experiment.points:
        batch = point.train.batch_size
        _, train_windows = point.data.array_elements(batch)
        memory = max(memory, run_bytes(point, 2 if "wide_window" in point.variants else 1))
        steps += len(experiment.seed_list) * len(point.variants) * point.train.epochs * (train_windows // batch)
    return Estimate(memory, steps)


def largest_group_bytes(experiment: Experiment) -> int:
    """The memory of the largest group the config's runs can train in."""
    return max(
        group_size(point, variant) * run_bytes(point, 2 if variant == "wide_window" else 1)
        for _, point in experiment.points
        for variant in point.variants
    )


def workers_for(experiments: list[Experiment], jobs: int, available: int | None = None) -> int:
    """How many work items may train at once: `jobs`, or fewer where that many of
    the configs' largest groups would not fit in the memory available. Memory
    sets only this, never a group's size (planning's, a function of the config)."""
    available = available_memory_bytes() if available is None else available
    largest = max(largest_group_bytes(experiment) for experiment in experiments)
    return max(1, min(jobs, available // max(1, largest)))


def available_memory_bytes() -> int:
    """Memory the machine can give a new process now (MemAvailable), else its total."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_resources(experiment: Experiment, available: int | None = None) -> list[str]:
    """Raise ResourceError if one run cannot fit in memory; return warnings about
    what will merely be slow."""
    needed = estimate(experiment)
    available = available_memory_bytes() if available is None else available
    if needed.memory_bytes > available:
        raise ResourceError(
            f"{experiment.name}: one run needs about {_size(needed.memory_bytes)} of memory (its data and model), "
            f"but this machine has {_size(available)} available; lower the data sizes (samples, series or "
            "sequence lengths), the batch size or model.units"
        )
    if needed.steps > SLOW_STEPS:
        return [
            f"warning: {experiment.name} trains about {needed.steps / 1e6:.0f} million batch steps in all; at tens "
            "of microseconds per step (more for larger models) this will take hours; it runs, and an interrupted "
            "run resumes"
        ]
    return []


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e3:.1f} kB"
