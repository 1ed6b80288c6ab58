"""Training a work item's runs as one group through the grouped program."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from stateful_lab.config.checks import STATEFUL_VARIANTS
from stateful_lab.runs.records import RunResult
from stateful_lab.runs.unit import Unit
from stateful_lab.tasks import Dataset
from stateful_lab.tasks.windows import ForecastSets
from stateful_lab.training import protocol
from stateful_lab.training.grouped.program import GroupedLoop


def shapes_of(dataset: Dataset) -> tuple:
    """The shapes of a run's arrays: runs of one group must agree on them."""
    arrays = [dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test]
    if dataset.forecast is not None:
        arrays += [dataset.forecast.x_prime, dataset.forecast.x_test]
        if dataset.forecast.walk is not None:
            arrays.append(dataset.forecast.walk.windows)
    if dataset.lane_starts_train is not None:
        arrays += [dataset.lane_starts_train, dataset.lane_starts_test]
    return tuple(tuple(array.shape) for array in arrays)


def train_together(
    items: list[tuple[Unit, Dataset, list[np.ndarray]]], shapes: tuple, size: int | None = None
) -> list[RunResult]:
    """Train runs of one program and shapes (each with its dataset and initial
    weights) as one group of `size` runs (default: as many as there are; fewer
    runs are filled up with copies of the last, whose results are dropped): epoch
    0 in a call of its own (its time holds the compilation), the rest in as few
    calls as the group allows; each run stops recording at its own last epoch or
    when it diverges."""
    started = time.perf_counter()
    real = len(items)
    items = items + items[-1:] * ((size or real) - real)
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
    results = [unit.result(notes=list(d.notes), baselines=d.baselines) for unit, d in zip(units, datasets, strict=True)]
    training = set(range(len(results)))  # the runs still recording: a diverged or finished run stops
    resets = tf.constant([experiment.train.reset == "epoch" for experiment in experiments])
    inputs = {"train": (x_train, y_train), "test": (x_test, y_test), "forecast": forecast_inputs or ()}
    if datasets[0].lane_starts_train is not None:
        inputs["train"] += (group.lane_starts([d.lane_starts_train for d in datasets]),)
        inputs["test"] += (group.lane_starts([d.lane_starts_test for d in datasets]),)
    done, total = 0, max(epochs)
    per_call = group.epochs_per_call(int(forecast_inputs[1].shape[0]) if scorer is not None else 0)
    while done < total and training:
        count = 1 if done == 0 else min(total - done, per_call)
        call_started = time.perf_counter()
        figures, predictions = group.train_epochs(tf.constant(done), tf.constant(count), resets, **inputs)
        train_loss, train_accuracy, test_loss, test_accuracy = (value.numpy() for value in figures)
        predictions = predictions.numpy()
        seconds = (time.perf_counter() - call_started) / count / real  # each run's share of an epoch
        for index in range(count):
            if scorer is not None:
                values, scores = scorer.scored(predictions[index])
            for run in sorted(training):
                figures = [array[index, run] for array in (train_loss, train_accuracy, test_loss, test_accuracy)]
                forecast = None
                if scorer is not None:
                    forecast = {scorer.metric: float(scores[run]), "forecasts": tuple(values[:, run].tolist())}
                epoch = protocol.epoch_result(done + index, figures, seconds, group.classification, forecast)
                if not protocol.record(results[run], epoch) or done + index + 1 == epochs[run]:
                    training.discard(run)  # diverged, or its last epoch
        done += count
    results = results[:real]
    share = (time.perf_counter() - started) / real
    for result in results:
        result.seconds = share
    return results
