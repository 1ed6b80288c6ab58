"""One run: a (sweep point, variant, seed) of an experiment, trained for its
epochs into a `RunResult`.

A unit's key is a hash of everything that decides its numbers, so a unit whose
result is stored is never run again (unless forced), and a changed config gets
new keys. Seeding happens in one place, `seed_everything`.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .config import STATEFUL_VARIANTS, Experiment
from .grouped import (
    GroupedLoop,
    bytes_per_run,
    even_sizes,
    memory_budget,
    program_settings,
    runs_in_cache,
    split_sizes,
)
from .models import GATES, build_model, initial_weights
from .provenance import peak_memory_mb
from .records import FORMAT, EpochResult, RunResult, run_label
from .tasks import Dataset, for_variant, make_dataset
from .tasks.forecast import ForecastSets
from .trainers import TRAINERS


def seed_everything(seed: int) -> None:
    """The one seeding block: Python, NumPy's global state and TensorFlow, with
    deterministic kernels. Task data draws from its own Generator(seed), and model
    initializers get seeds derived from it (models.build_model)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class Unit:
    point: dict[str, Any]
    variant: str
    seed: int
    experiment: Experiment
    """The sweep point's resolved experiment."""

    @property
    def key(self) -> str:
        text = json.dumps(
            {"format": FORMAT, "settings": self.experiment.run_settings(), "variant": self.variant, "seed": self.seed},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return run_label(self.point, self.variant, self.seed)

    def result(self, **fields: Any) -> RunResult:
        """A result record for this unit, with `fields` set."""
        return RunResult(key=self.key, point=self.point, variant=self.variant, seed=self.seed, **fields)


def plan_units(experiment: Experiment) -> list[Unit]:
    return [
        Unit(point, variant, seed, point_experiment)
        for point, point_experiment in experiment.points
        for seed in experiment.seed_list
        for variant in experiment.variants
    ]


def groupable(unit: Unit) -> bool:
    """Whether a unit may train in a group (grouped.py): the loop trainer, not
    isolated in its own process, and its config not asking for single runs."""
    train = unit.experiment.train
    return train.trainer == "loop" and train.group and not train.isolate


def group_units(units: list[Unit]) -> list[list[Unit]]:
    """The units as work items: runs that can share one compiled program (the
    same `grouped.program_settings`, from one config or several; stateless and
    stateful together, wide_window apart, its windows being longer) in one item,
    every other unit alone."""
    groups: dict[str, list[Unit]] = {}
    alone = []
    for unit in units:
        if groupable(unit):
            key = json.dumps([program_settings(unit.experiment), unit.variant == "wide_window"], sort_keys=True)
            groups.setdefault(key, []).append(unit)
        else:
            alone.append([unit])
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


def run_units(units: list[Unit], threads: int | None = None) -> list[RunResult]:
    """One work item of `plan_groups`: a group trained together, or one unit."""
    if len(units) == 1:
        return [run_unit(units[0], threads)]
    return run_group(units, threads)


def run_unit(unit: Unit, threads: int | None = None) -> RunResult:
    """Train one unit, in a fresh process if its config asks for isolation."""
    if unit.experiment.train.isolate:
        return _run_isolated(unit, threads)
    return _run_here(unit, threads)


def _run_isolated(unit: Unit, threads: int | None) -> RunResult:
    """The unit in a child process (`python -m stateful_lab.unit`), whose peak
    memory is then the unit's own."""
    child = subprocess.run(
        [sys.executable, "-m", "stateful_lab.unit"],
        input=pickle.dumps((unit, threads)),
        capture_output=True,
    )
    if child.returncode == 0:
        return pickle.loads(child.stdout)
    tail = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return unit.result(status="failed", error=f"the isolated process exited {child.returncode}: {tail[0]}")


def _run_here(unit: Unit, threads: int | None = None) -> RunResult:
    """Train one unit in this process. Never raises for the unit's own errors: a
    failure or a divergence is a result, so a sweep carries on."""
    _size_thread_pools(threads)
    result = unit.result()
    started = time.perf_counter()
    try:
        experiment, batch = unit.experiment, unit.experiment.train.batch_size
        dataset = unit_dataset(unit)
        result.notes = list(dataset.notes)
        if dataset.forecast is not None:
            result.baselines = {"persistence_rmse": dataset.forecast.persistence_rmse}
        seed_everything(unit.seed)
        model = build_model(experiment, unit.variant, batch, seed=unit.seed)
        for epoch in TRAINERS[experiment.train.trainer](model, experiment, dataset, unit.variant):
            result.forecasts = list(epoch.forecasts)  # the last epoch's are kept, once
            result.epochs.append(replace(epoch, forecasts=()))
            if not (math.isfinite(epoch.train_loss) and math.isfinite(epoch.test_loss)):
                result.status = "diverged"  # stop early: nothing after a NaN is worth training
                break
    except Exception as error:  # the unit failed; the sweep goes on
        _failed(result, error)
    result.seconds = time.perf_counter() - started
    # A shared process's peak says nothing about one unit: only an isolated one's does.
    result.peak_memory_mb = peak_memory_mb() if unit.experiment.train.isolate else None
    return result


def _failed(result: RunResult, error: Exception) -> RunResult:
    """`result` marked failed by `error` (called while handling it)."""
    result.status, result.error = "failed", f"{type(error).__name__}: {error}"
    result.traceback = traceback.format_exc()
    return result


def unit_dataset(unit: Unit) -> Dataset:
    """A unit's dataset, as its variant sees it."""
    batch = unit.experiment.train.batch_size
    return for_variant(make_dataset(unit.experiment.data, batch, unit.seed), unit.variant, batch)


def _prepared(unit: Unit) -> tuple[Dataset, list[np.ndarray]]:
    """A unit's dataset and its model's initial weights, made exactly as
    `_run_here` makes them."""
    dataset = unit_dataset(unit)
    seed_everything(unit.seed)
    return dataset, initial_weights(unit.experiment, unit.seed)


def run_group(units: list[Unit], threads: int | None = None, budget: int | None = None) -> list[RunResult]:
    """Train runs that share a compiled program (`grouped.program_settings`)
    together (grouped.GroupedLoop), in groups that fit `budget` bytes (default: a
    quarter of the available memory) and whose weights fit the cache
    (`grouped.runs_in_cache`); each unit's result as `_run_here` would give it.
    A group that fails runs its units one at a time, so one bad run cannot take
    the others' results with it."""
    _size_thread_pools(threads)
    results, ready = [], []
    for unit in units:
        try:
            ready.append((unit, *_prepared(unit)))
        except Exception as error:  # this unit fails alone; the others train
            results.append(_failed(unit.result(), error))
    shaped: dict[tuple, list] = {}
    for item in ready:
        shaped.setdefault(_shapes(item[1]), []).append(item)
    for shapes, items in shaped.items():
        unit, dataset = items[0][0], items[0][1]
        arrays = [dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test]
        largest = (budget or memory_budget()) // bytes_per_run(unit.experiment, unit.variant, arrays)
        start = 0
        for size in even_sizes(len(items), min(largest, runs_in_cache(unit.experiment))):
            part, start = items[start : start + size], start + size
            try:
                results += _train_group(part, shapes)
            except Exception:
                results += [_run_here(unit) for unit, _, _ in part]
    return results


def _shapes(dataset: Dataset) -> tuple:
    arrays = [dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test]
    if dataset.forecast is not None:
        arrays += [dataset.forecast.x_prime, dataset.forecast.x_test]
    return tuple(tuple(array.shape) for array in arrays)


def _train_group(items: list[tuple[Unit, Dataset, list[np.ndarray]]], shapes: tuple) -> list[RunResult]:
    started = time.perf_counter()
    units = [unit for unit, _, _ in items]
    datasets = [dataset for _, dataset, _ in items]
    experiments = [unit.experiment for unit in units]
    group = GroupedLoop.for_group(experiments, shapes)
    group.load([weights for _, _, weights in items], [unit.variant in STATEFUL_VARIANTS for unit in units], experiments)
    epochs = [experiment.train.epochs for experiment in experiments]
    x_train, y_train = group.batches([d.x_train for d in datasets], [d.y_train for d in datasets])
    x_test, y_test = group.batches([d.x_test for d in datasets], [d.y_test for d in datasets])
    forecasts = [dataset.forecast for dataset in datasets]
    forecast_inputs = group.forecast_inputs(forecasts) if forecasts[0] is not None else None
    scorer = ForecastSets(forecasts) if forecast_inputs is not None else None
    results = []
    for unit, dataset in zip(units, datasets, strict=True):
        result = unit.result(notes=list(dataset.notes))
        if dataset.forecast is not None:
            result.baselines = {"persistence_rmse": dataset.forecast.persistence_rmse}
        results.append(result)
    training = set(range(len(results)))  # the runs still recording: a diverged or finished run stops
    resets = tf.constant([experiment.train.reset == "epoch" for experiment in experiments])
    inputs = {"train": (x_train, y_train), "test": (x_test, y_test), "forecast": forecast_inputs or ()}
    done, total = 0, max(epochs)
    per_call = group.epochs_per_call(len(forecasts[0].x_test) if scorer is not None else 0)
    while done < total and training:
        # Epoch 0 alone (its time includes the compilation), then the rest in as
        # few calls as the group allows (`GroupedLoop.epochs_per_call`).
        count = 1 if done == 0 else min(total - done, per_call)
        call_started = time.perf_counter()
        figures, predictions = group.train_epochs(tf.constant(done), tf.constant(count), resets, **inputs)
        train_loss, train_accuracy, test_loss, test_accuracy = (value.numpy() for value in figures)
        predictions = predictions.numpy()
        seconds = (time.perf_counter() - call_started) / count / len(units)  # each run's share of an epoch
        for index in range(count):
            if scorer is not None:
                values, rmse = scorer.scored(predictions[index])
            for run in sorted(training):
                record = EpochResult(
                    done + index,
                    float(train_loss[index, run]),
                    float(train_accuracy[index, run]) if group.classification else math.nan,
                    float(test_loss[index, run]),
                    float(test_accuracy[index, run]) if group.classification else math.nan,
                    seconds,
                    **({"test_rmse": float(rmse[run])} if scorer is not None else {}),
                )
                result = results[run]
                result.epochs.append(record)
                diverged = not (math.isfinite(record.train_loss) and math.isfinite(record.test_loss))
                if diverged or done + index + 1 == epochs[run]:  # its last epoch: its forecasts are kept
                    if diverged:
                        result.status = "diverged"
                    if scorer is not None:
                        result.forecasts = values[:, run].tolist()
                    training.discard(run)
        done += count
    share = (time.perf_counter() - started) / len(units)
    for result in results:
        result.seconds = share
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


if __name__ == "__main__":  # the child of _run_isolated: one unit in, its result out
    sys.stdout.buffer.write(pickle.dumps(_run_here(*pickle.loads(sys.stdin.buffer.read()))))
