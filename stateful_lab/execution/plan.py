"""Planning: which runs train together as one work item, and in what order.

A work item is a group of runs that share one compiled program (the grouped
engine's fast path, `training.engine.group_key`) or one run alone. Planning never
trains anything; execution hands the items to a backend.
"""

from __future__ import annotations

import math

from stateful_lab.runs.unit import Unit, unit_dataset
from stateful_lab.training.engine import group_key
from stateful_lab.training.grouped.sizing import even_sizes, group_size, size_sensitive
from stateful_lab.training.shapes import GATES


def group_units(units: list[Unit]) -> list[list[Unit]]:
    """The units as work items: runs that can share one compiled program (the
    same `training.engine.group_key`, from one config or several) in one item,
    every other unit alone."""
    groups: dict[str, list[Unit]] = {}
    alone = []
    for unit in units:
        key = group_key(unit)
        if key is None:
            alone.append([unit])
        else:
            groups.setdefault(key, []).append(unit)
    return list(groups.values()) + alone


COMPILE_SECONDS = 5.0
STEP_SECONDS = 3e-6
FLOPS_PER_SECOND = 12e9
"""A rough cost model, for the order of work items only, never for results: a
group's compilation, and each grouped step a fixed cost per run plus its matrix
products at this rate (fitted to the blog's 3-unit model and the 64-32-unit
stacked model, commit 7bfb5f4)."""


def estimated_seconds(item: list[Unit]) -> float:
    """A rough time for a work item: compilation plus its runs' steps (training,
    and evaluation and forecasts counted at a third of a step each)."""
    unit = item[0]
    experiment, batch = unit.experiment, unit.experiment.train.batch_size
    dataset = unit_dataset(unit)
    steps = len(dataset.x_train) / batch + len(dataset.x_test) / batch / 3
    if dataset.forecast is not None:
        steps += (len(dataset.forecast.x_prime) + len(dataset.forecast.x_test)) / 3
    data, gates, inputs, flops = experiment.data, GATES[experiment.model.cell], experiment.data.features, 0
    for units in experiment.model.units:
        flops += 3 * 2 * batch * data.timesteps * (inputs + units) * gates * units
        inputs = units
    epochs = max(unit.experiment.train.epochs for unit in item)
    return COMPILE_SECONDS + len(item) * epochs * steps * (STEP_SECONDS + flops / FLOPS_PER_SECOND)


PART_SECONDS = 80.0
"""A long group is cut into parts of at most about this much estimated compute, so
that several workers can share it; a constant, so that the cut never depends on
--jobs or on what else runs."""


def plan(units: list[Unit]) -> list[list[Unit]]:
    """The work items, a pure function of the units (never of --jobs, free memory
    or timing), longest first so that none starts last and holds up the end.

    Runs that share a program form a group, cut into parts of at most its
    `group_size` and of at most PART_SECONDS of estimated compute, as long as
    each part's compute is at least four compilations (each part pays its own);
    a size-sensitive program's parts hold whole groups of its `group_size`, which
    the engine trains one after another (filling up the last). Every other run
    is an item alone."""
    pieces = []
    for item in group_units(units):
        experiment, variant = item[0].experiment, item[0].variant
        if group_key(item[0]) is None:  # a run alone
            pieces.append((estimated_seconds(item), item))
            continue
        compute = estimated_seconds(item) - COMPILE_SECONDS
        parts = max(1, min(math.ceil(compute / PART_SECONDS), math.floor(compute / (4 * COMPILE_SECONDS))))
        size = group_size(experiment, variant)
        if size_sensitive(experiment, variant):  # whole groups of `size` in each part
            step = size * math.ceil(len(item) / parts / size)
            sizes = [min(step, len(item) - start) for start in range(0, len(item), step)]
        else:
            sizes = even_sizes(len(item), min(size, math.ceil(len(item) / parts)))
        start = 0
        for size in sizes:
            part, start = item[start : start + size], start + size
            pieces.append((estimated_seconds(part), part))
    return [piece for _, piece in sorted(pieces, key=lambda pair: -pair[0])]
