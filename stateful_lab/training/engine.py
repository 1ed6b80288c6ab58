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
import math
import os
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from stateful_lab.provenance import peak_memory_mb
from stateful_lab.runs.records import RunResult
from stateful_lab.runs.seeding import deterministic_kernels, seed_run
from stateful_lab.runs.unit import Unit, unit_dataset
from stateful_lab.tasks import Dataset
from stateful_lab.training import protocol
from stateful_lab.training.grouped.driver import Together, shapes_of
from stateful_lab.training.grouped.program import program_settings
from stateful_lab.training.grouped.sizing import group_size, padded, size_sensitive, split_sizes
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
        seed_run(unit.seed, fit_shuffles=experiment.train.trainer == "fit" and experiment.train.shuffle)
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


SHARD_STEPS = 500_000
"""A program's runs are cut into shards, trained side by side, only where each
shard has at least this much work (runs x epochs x batches, training and test):
below it, the second program's tracing and loading (about half a second) cost
more than the second core saves. Measured with `run configs/first_timestep.yaml`
(256 + 64 batches an epoch, 5 epochs) from the shell: at 500 runs (800,000 in
all, so 400,000 a shard) two shards took 2.1 s of training against 2.0 s for one
group; at 2,000 runs, 3.8 s against 5.9 s."""


def side_by_side() -> int:
    """How many groups this process trains at once: its intra-op threads (cores /
    jobs in a pool's worker, which has one group at a time on each of its threads;
    every core otherwise). One XLA program kept about 1.4 of two cores busy, two
    kept both (`make bench`)."""
    return tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))


def train_group(units: list[Unit]) -> list[RunResult]:
    """Train runs that share a compiled program (`group_key`) together, a group
    for each shape of their arrays; a size-sensitive program's groups filled up
    to its `group_size` (`grouped.sizing`). Each unit's result as `train_unit`
    would give it, within 1e-5. A group that fails trains its units one at a
    time, so one bad run cannot take the others' results with it.

    The groups train side by side, one a core (`side_by_side`): a large group of
    a program that is not size-sensitive is cut into as many shards (`_shards`).
    A run's figures do not depend on the runs beside it in such a program, so a
    shard gives every run the figures the whole group gives, bit for bit
    (tested); a size-sensitive program's groups are never cut. Such a shard is
    filled up to a whole number of vectors of runs (`grouped.sizing.padded`)."""
    results, ready = [], []
    for unit in units:
        try:
            ready.append((unit, *prepared(unit)))
        except Exception as error:  # this unit fails alone; the others train
            results.append(failed(unit.result(), error))
    shaped: dict[tuple, list] = {}
    for item in ready:
        shaped.setdefault(shapes_of(item[1]), []).append(item)
    cores = side_by_side()
    parts = []
    for shapes, items in shaped.items():
        unit = items[0][0]
        if size_sensitive(unit.experiment, unit.variant):
            size = group_size(unit.experiment, unit.variant)
            parts += [(items[start : start + size], shapes, size) for start in range(0, len(items), size)]
            continue
        shards = _shards(items, cores)
        start = 0
        for size in split_sizes(len(items), math.ceil(len(items) / shards)):
            parts.append((items[start : start + size], shapes, padded(size)))
            start += size
    return results + _train_parts(parts, min(cores, len(parts)))


def _shards(items: list[tuple], cores: int) -> int:
    """How many shards a not size-sensitive program's runs are cut into: one per
    core, each with at least SHARD_STEPS of work."""
    unit, dataset, _ = items[0]
    batches = (len(dataset.x_train) + len(dataset.x_test)) // unit.experiment.train.batch_size
    work = len(items) * max(unit.experiment.train.epochs for unit, _, _ in items) * batches
    return max(1, min(cores, len(items), work // SHARD_STEPS))


def _train_parts(parts: list[tuple], lanes: int) -> list[RunResult]:
    """Each part (items, shapes, group size) trained as a group (`Together`),
    `lanes` at a time: part i in slot i % lanes, each slot's parts one after
    another, each set up here in the parts' order (`Together` says why) and
    trained in a thread. Then the units of a part that failed, one at a time
    (after the others: a single run reseeds the process's random state). The
    results in the parts' order."""
    outcomes: list = [None] * len(parts)

    def trained(index: int, group: Together) -> None:
        try:
            outcomes[index] = group.train()
        except Exception as error:  # the part's units train one at a time below
            outcomes[index] = error

    with ThreadPoolExecutor(max(1, lanes)) as pool:
        running: dict[int, Future] = {}
        for index, part in enumerate(parts):
            slot = index % max(1, lanes)
            if slot in running:
                running.pop(slot).result()  # the slot's program is free again
            try:
                group = Together(*part, slot=slot, sharing=max(1, lanes))
            except Exception as error:
                outcomes[index] = error
                continue
            if lanes <= 1:
                trained(index, group)
            else:
                running[slot] = pool.submit(trained, index, group)
    results = []
    for (items, _, _), outcome in zip(parts, outcomes, strict=True):
        results += [train_unit(unit) for unit, _, _ in items] if isinstance(outcome, Exception) else outcome
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
