"""Training a work item in this process: one run, or a group of runs through
the grouped engine, behind one interface (as Keras picks its fused kernel inside
the layer, the caller never chooses).

`group_key` says which runs may share a compiled group; `train` trains a work
item, grouped where it can and one run at a time where it cannot (or where a
group fails). Failures and divergences are results, never exceptions, so a
sweep carries on.
"""

from __future__ import annotations

import json
import time
import traceback

import numpy as np
import tensorflow as tf

from stateful_lab.provenance import peak_memory_mb
from stateful_lab.runs.records import RunResult
from stateful_lab.runs.seeding import deterministic_kernels, seed_everything
from stateful_lab.runs.unit import Unit, unit_dataset
from stateful_lab.tasks import Dataset
from stateful_lab.training import protocol
from stateful_lab.training.grouped.driver import shapes_of, train_together
from stateful_lab.training.grouped.program import program_settings
from stateful_lab.training.grouped.sizing import group_size, size_sensitive
from stateful_lab.training.models import build_model, initial_weights
from stateful_lab.training.trainers import TRAINERS


def group_key(unit: Unit) -> str | None:
    """The compiled program `unit` can share with other runs (the same
    `grouped.program_settings`, from one config or several; stateless and
    stateful together, wide_window apart, its windows being longer), or None
    for a run that trains alone: another trainer than `loop`, an isolated run,
    or a config asking for single runs."""
    train = unit.experiment.train
    if train.trainer != "loop" or not train.group or train.isolate:
        return None
    return json.dumps([program_settings(unit.experiment), unit.variant == "wide_window"], sort_keys=True)


def train(units: list[Unit], threads: int | None = None) -> list[RunResult]:
    """One work item: runs that share a program (`group_key`) trained as one
    group, however few; any other run alone."""
    _size_thread_pools(threads)
    if group_key(units[0]) is None:  # planning puts such a run in an item of its own
        return [train_unit(unit) for unit in units]
    return train_group(units)


def train_unit(unit: Unit, threads: int | None = None) -> RunResult:
    """Train one unit in this process. Never raises for the unit's own errors: a
    failure or a divergence is a result, so a sweep carries on."""
    _size_thread_pools(threads)
    result = unit.result()
    started = time.perf_counter()
    try:
        experiment, batch = unit.experiment, unit.experiment.train.batch_size
        dataset = unit_dataset(unit)
        result.notes, result.baselines = list(dataset.notes), dataset.baselines
        seed_everything(unit.seed)
        model = build_model(experiment, unit.variant, batch, seed=unit.seed)
        for epoch in TRAINERS[experiment.train.trainer](model, experiment, dataset, unit.variant):
            if not protocol.record(result, epoch):
                break
    except Exception as error:  # the unit failed; the sweep goes on
        failed(result, error)
    result.seconds = time.perf_counter() - started
    # A shared process's peak says nothing about one unit: only an isolated one's does.
    result.peak_memory_mb = peak_memory_mb() if unit.experiment.train.isolate else None
    return result


def failed(result: RunResult, error: Exception) -> RunResult:
    """`result` marked failed by `error` (called while handling it)."""
    result.status, result.error = "failed", f"{type(error).__name__}: {error}"
    result.traceback = traceback.format_exc()
    return result


def prepared(unit: Unit) -> tuple[Dataset, list[np.ndarray]]:
    """A unit's dataset and its model's initial weights, made exactly as
    `train_unit` makes them. Both draw from the unit's seed explicitly (the data
    from its own Generator, the weights from seeds derived from it), so only the
    deterministic kernels of `seed_everything` are needed here, not its reseeding."""
    dataset = unit_dataset(unit)
    deterministic_kernels()
    return dataset, initial_weights(unit.experiment, unit.seed)


def train_group(units: list[Unit]) -> list[RunResult]:
    """Train runs that share a compiled program (`group_key`) together, a group
    for each shape of their arrays; a size-sensitive program's groups filled up
    to its `group_size` (`grouped.sizing`). Each unit's result as `train_unit`
    would give it, within 1e-5. A group that fails trains its units one at a
    time, so one bad run cannot take the others' results with it."""
    results, ready = [], []
    for unit in units:
        try:
            ready.append((unit, *prepared(unit)))
        except Exception as error:  # this unit fails alone; the others train
            results.append(failed(unit.result(), error))
    shaped: dict[tuple, list] = {}
    for item in ready:
        shaped.setdefault(shapes_of(item[1]), []).append(item)
    for shapes, items in shaped.items():
        unit = items[0][0]
        sensitive = size_sensitive(unit.experiment, unit.variant)
        size = group_size(unit.experiment, unit.variant) if sensitive else len(items)
        for start in range(0, len(items), size):
            part = items[start : start + size]
            try:
                results += train_together(part, shapes, size)
            except Exception:
                results += [train_unit(unit) for unit, _, _ in part]
    return results


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
