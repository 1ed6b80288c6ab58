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
from stateful_lab.training.grouped import stored
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


class Together:
    """Runs of one program and shapes (each with its dataset and initial weights)
    trained as one group of `size` runs (default: as many as there are; fewer
    runs are filled up with copies of the last, whose results are dropped).

    Made in two steps: setting up (the program loaded with the runs' weights, its
    inputs stacked and its function traced, or loaded as traced by an earlier
    process: `stored`) and `train`. Groups that train side by side
    (`training.engine`) are set up one after another in one thread, so that
    their functions are traced in a fixed order: XLA's persistent cache
    (`xla_cache`) finds a program by its function's name, which a stored graph
    takes from its key, but a function that cannot be stored (`stored`) from a
    counter of the process. `slot`: the
    program's slot (`GroupedLoop.for_group`); `sharing`: how many groups train
    side by side, sharing the cores, so that a run's time is its share of the
    wall clock."""

    def __init__(
        self,
        items: list[tuple[Unit, Dataset, list[np.ndarray]]],
        shapes: tuple,
        size: int | None = None,
        slot: int = 0,
        sharing: int = 1,
    ):
        self.started, self.sharing = time.perf_counter(), sharing
        self.real = len(items)
        items = items + items[-1:] * ((size or self.real) - self.real)
        units = [unit for unit, _, _ in items]
        datasets = [dataset for _, dataset, _ in items]
        experiments = [unit.experiment for unit in units]
        group = self.group = GroupedLoop.for_group(experiments, shapes, slot)
        stateful = [unit.variant in STATEFUL_VARIANTS for unit in units]
        group.load([weights for _, _, weights in items], stateful, experiments)
        self.epochs = [experiment.train.epochs for experiment in experiments]
        x_train, y_train = group.batches([d.x_train for d in datasets], [d.y_train for d in datasets])
        x_test, y_test = group.batches([d.x_test for d in datasets], [d.y_test for d in datasets])
        forecasts = [dataset.forecast for dataset in datasets]
        forecast_inputs = group.forecast_inputs(forecasts) if forecasts[0] is not None else None
        self.scorer = ForecastSets(forecasts) if forecast_inputs is not None else None
        self.results = [
            unit.result(notes=list(d.notes), baselines=d.baselines) for unit, d in zip(units, datasets, strict=True)
        ]
        self.resets = tf.constant([experiment.train.reset == "epoch" for experiment in experiments])
        self.inputs = {"train": (x_train, y_train), "test": (x_test, y_test), "forecast": forecast_inputs or ()}
        if datasets[0].lane_starts_train is not None:
            self.inputs["train"] += (group.lane_starts([d.lane_starts_train for d in datasets]),)
            self.inputs["test"] += (group.lane_starts([d.lane_starts_test for d in datasets]),)
        self.per_call = group.epochs_per_call(int(forecast_inputs[1].shape[0]) if self.scorer is not None else 0)
        self.train_epochs = stored.epochs_function(group, tf.constant(0), tf.constant(1), self.resets, self.inputs)

    def train(self) -> list[RunResult]:
        """Epoch 0 in a call of its own (its time holds the compilation), the rest
        in as few calls as the group allows; each run stops recording at its own
        last epoch or when it diverges. The real runs' results."""
        group, results, scorer, epochs, real = self.group, self.results, self.scorer, self.epochs, self.real
        training = set(range(len(results)))  # the runs still recording: a diverged or finished run stops
        done, total = 0, max(epochs)
        while done < total and training:
            count = 1 if done == 0 else min(total - done, self.per_call)
            call_started = time.perf_counter()
            figures, predictions = self.train_epochs(tf.constant(done), tf.constant(count), self.resets, **self.inputs)
            train_loss, train_accuracy, test_loss, test_accuracy = (value.numpy() for value in figures)
            predictions = predictions.numpy()
            seconds = (time.perf_counter() - call_started) / count / real / self.sharing  # a run's share of an epoch
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
        share = (time.perf_counter() - self.started) / real / self.sharing
        for result in results:
            result.seconds = share
        return results
