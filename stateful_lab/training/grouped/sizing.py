"""How many runs a group takes: its memory and its working set, estimated from
the config before anything is built."""

from __future__ import annotations

import math
import os

import numpy as np

from stateful_lab.config.experiment import Experiment
from stateful_lab.training.models import GATES


def bytes_per_run(experiment: Experiment, variant: str, arrays: list[np.ndarray]) -> int:
    """A generous estimate of one run's share of a group's memory: its arrays, its
    weights four times over (weights, gradients, two optimizer slots), and the
    activations one batch's gradient keeps (every gate of every step and layer)."""
    spec, train = experiment.model, experiment.train
    data_bytes = sum(array.size for array in arrays) * 4
    steps = experiment.data.timesteps * (2 if variant == "wide_window" else 1)
    activations = train.batch_size * steps * sum(spec.units) * (GATES[spec.cell] + 4) * 4
    return data_bytes + weight_count(experiment) * 4 * 4 + activations * 4


def weight_count(experiment: Experiment) -> int:
    """One run's weights: each recurrent layer's kernel, recurrent kernel and
    biases (two for a GRU), and the Dense head."""
    spec = experiment.model
    weights, inputs = 1 + spec.units[-1], experiment.data.features
    for units in spec.units:
        weights += (inputs + units + 2) * GATES[spec.cell] * units
        inputs = units
    return weights


def runs_in_cache(experiment: Experiment) -> int:
    """The most runs of `experiment` whose weights, gradients and two optimizer
    slots fit in CACHE_BYTES: larger groups of large layers run slower per run,
    their working set spilling out of the cache the workers share (results/bench.md,
    "Design measurements"). The blog's 3-unit model is never cut."""
    return max(1, CACHE_BYTES // (4 * 4 * weight_count(experiment)))


CACHE_BYTES = 4 * 2**20
"""Half of an 8 MB L3 cache, each of two workers' share. Fixed rather than read
from the machine: a large layer's run can differ in its last bits with the size
of its group, so groups sized by the cache would make the figures depend on it."""


def memory_budget() -> int:
    """Bytes a group may take: a quarter of the memory available now, at most 4 GiB."""
    try:
        with open("/proc/meminfo") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        available = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) if hasattr(os, "sysconf") else 2**32
    return min(available // 4, 4 * 2**30)


def even_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into groups of at most `largest`, all of one size (one compiled
    program serves them all) where up to twice the fewest groups allow it, else
    as equal as possible."""
    fewest = max(1, math.ceil(runs / max(1, largest)))
    for groups in range(fewest, min(runs, 2 * fewest) + 1):
        if runs % groups == 0:
            return [runs // groups] * groups
    return split_sizes(runs, largest)


def split_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into the fewest groups of at most `largest`, as equal as possible."""
    groups = max(1, math.ceil(runs / max(1, largest)))
    base, extra = divmod(runs, groups)
    return [base + (index < extra) for index in range(groups)]
