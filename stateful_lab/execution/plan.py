"""Planning: which runs train together as one work item, and in what order.

A work item is a group of runs that share one compiled program (the grouped
engine's fast path, `training.engine.group_key`) or one run alone. Planning never
trains anything; execution hands the items to a backend.
"""

from __future__ import annotations

import math

from stateful_lab.runs.unit import Unit, unit_dataset
from stateful_lab.training.engine import group_key
from stateful_lab.training.grouped.sizing import split_sizes
from stateful_lab.training.models import GATES


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


def plan_groups(units: list[Unit], jobs: int = 1) -> list[list[Unit]]:
    """`group_units`, with groups split where that shortens the wall time on
    `jobs` workers (`split_for_workers`)."""
    return split_for_workers(group_units(units), jobs)


COMPILE_SECONDS = 5.0
"""About what a group's compilation costs (measured here: 3 to 6 s for the train,
evaluation and forecast programs); only for scheduling, never for results."""
STEP_SECONDS = 3e-6
FLOPS_PER_SECOND = 12e9
"""A grouped training step costs about STEP_SECONDS per run plus its matrix
products at FLOPS_PER_SECOND (measured here: 3.4 us per run and step of the
blog's 3-unit model; 4.5 ms for the 64-32-unit stacked model's 55 million
operations). Only for scheduling."""


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


def split_for_workers(items: list[list[Unit]], jobs: int, total: float | None = None) -> list[list[Unit]]:
    """Items cut so that no one item holds up `jobs` workers much: a group whose
    compute is more than a third of a worker's share of `total` (estimated
    seconds; default: of these items) is cut into parts of at most that share,
    as long as each part's compute is at least four compilations (each part
    compiles its own program). Largest first, so the long ones start early."""
    costs = [estimated_seconds(item) for item in items] if jobs > 1 else [0.0] * len(items)
    if jobs <= 1:
        return items
    share = (total if total is not None else sum(costs)) / jobs / 3
    pieces = []
    for item, cost in zip(items, costs, strict=True):
        compute = cost - COMPILE_SECONDS
        parts = min(len(item), math.ceil(compute / share), max(1, math.floor(compute / (4 * COMPILE_SECONDS))))
        pieces += [
            (COMPILE_SECONDS + compute * size / len(item), part)
            for size, part in _cut(item, split_sizes(len(item), math.ceil(len(item) / parts)))
        ]
    return [piece for _, piece in sorted(pieces, key=lambda pair: -pair[0])]


def _cut(item: list[Unit], sizes: list[int]) -> list[tuple[int, list[Unit]]]:
    parts, start = [], 0
    for size in sizes:
        parts.append((size, item[start : start + size]))
        start += size
    return parts
