"""The articles' three ways of training one model, each carrying out the one epoch
protocol (`protocol`) and yielding one `EpochResult` per epoch; all three give the
same numbers for the same seed (tests/test_trainers.py).

- `fit`: model.fit(epochs=1) once per epoch (the blog, the gradient-flow article).
- `train_on_batch`: a Python loop of train_on_batch calls (the gradient-flow article).
- `loop`: a GradientTape loop (the custom-loop article), with a whole epoch, and the
  whole evaluation, each compiled by XLA into one function (`compiled.CompiledLoop`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import Experiment
from stateful_lab.runs.records import EpochResult
from stateful_lab.tasks import Dataset
from stateful_lab.training import protocol
from stateful_lab.training.cache import recently_used
from stateful_lab.training.compiled import CompiledLoop, KerasTwin
from stateful_lab.training.models import build_model, reset_states, state_variables


def train_fit(model: keras.Model, experiment: Experiment, dataset: Dataset, variant: str) -> Iterator[EpochResult]:
    """model.fit(epochs=1, shuffle=...) once per epoch, as the blog and the
    gradient-flow article do; never validation_data, whose evaluation would run
    through the stateful layers mid-training. Trains the shape's `KerasTwin`,
    started from `model`'s weights, and leaves the trained weights in `model`."""
    train = experiment.train
    twin = KerasTwin.for_run(experiment, variant).start(model)
    callbacks = _reset_callbacks(twin, experiment.batches_between_resets, dataset.lane_starts_train)
    forecaster = EagerForecaster(experiment, variant, dataset)
    try:
        for epoch in range(train.epochs):
            if protocol.resets_at_start(epoch, train.reset):
                reset_states(twin)
            started = time.perf_counter()
            history = twin.fit(
                dataset.x_train,
                dataset.y_train,
                batch_size=train.batch_size,
                epochs=1,
                shuffle=train.shuffle,
                verbose=0,
                callbacks=callbacks,
            ).history
            seconds = time.perf_counter() - started
            figures = (history["loss"][0], history.get("accuracy", [np.nan])[0], *evaluate(twin, dataset, experiment))
            yield protocol.epoch_result(epoch, figures, seconds, experiment.classification, forecaster(twin))
    finally:
        model.set_weights(twin.get_weights())


def train_on_batch(model: keras.Model, experiment: Experiment, dataset: Dataset, variant: str) -> Iterator[EpochResult]:
    """One train_on_batch call per batch, in order. Keras 3's train_on_batch
    returns the batch's own figures, so the epoch's running mean is kept here
    (batches are equal in size, so it equals fit's sample-weighted mean). Trains
    the shape's `KerasTwin`, as `train_fit` does."""
    train = experiment.train
    every = experiment.batches_between_resets
    twin = KerasTwin.for_run(experiment, variant).start(model)
    forecaster = EagerForecaster(experiment, variant, dataset)
    try:
        for epoch in range(train.epochs):
            if protocol.resets_at_start(epoch, train.reset):
                reset_states(twin)
            order = _epoch_order(len(dataset.x_train), train.batch_size, train.shuffle, (dataset.seed, epoch))
            started = time.perf_counter()
            logs = []
            for index, rows in enumerate(order):
                if protocol.reset_before(index, every):
                    reset_states(twin)
                if dataset.lane_starts_train is not None:
                    protocol.zero_lanes(state_variables(twin), dataset.lane_starts_train[index])
                logs.append(twin.train_on_batch(dataset.x_train[rows], dataset.y_train[rows], return_dict=True))
            seconds = time.perf_counter() - started
            train_figures = [np.mean([log.get(name, np.nan) for log in logs]) for name in ("loss", "accuracy")]
            figures = (*train_figures, *evaluate(twin, dataset, experiment))
            yield protocol.epoch_result(epoch, figures, seconds, experiment.classification, forecaster(twin))
    finally:
        model.set_weights(twin.get_weights())


def _epoch_order(samples: int, batch: int, shuffle: bool, seed: tuple[int, int]) -> list[np.ndarray]:
    rows = np.random.default_rng(seed).permutation(samples) if shuffle else np.arange(samples)
    return [rows[start : start + batch] for start in range(0, samples, batch)]


def train_loop(model: keras.Model, experiment: Experiment, dataset: Dataset, variant: str) -> Iterator[EpochResult]:
    """A GradientTape loop over batches, one XLA-compiled function per epoch.

    `model` supplies the initial weights. Training runs on a cached twin of the
    same shape whose compiled functions are re-used across seeds: the twin's
    weights and optimizer slots are overwritten, so nothing is traced again.
    """
    train = experiment.train
    compiled = CompiledLoop.for_run(experiment, variant, len(dataset.x_train), len(dataset.x_test))
    compiled.load_initial_weights(model)
    x_train, y_train = compiled.batches(dataset.x_train, dataset.y_train)
    x_test, y_test = compiled.batches(dataset.x_test, dataset.y_test)
    starts_train, starts_test = compiled.starts(dataset.lane_starts_train), compiled.starts(dataset.lane_starts_test)
    forecast_inputs = forecast_tensors(dataset.forecast)
    for epoch in range(train.epochs):
        if protocol.resets_at_start(epoch, train.reset):
            reset_states(compiled.model)
        started = time.perf_counter()
        train_figures = [float(value) for value in compiled.train_epoch(x_train, y_train, starts_train)]
        seconds = time.perf_counter() - started
        figures = (*train_figures, *compiled.evaluate(x_test, y_test, starts_test))
        forecasts = compiled.forecasts(forecast_inputs, dataset.forecast)
        yield protocol.epoch_result(epoch, figures, seconds, experiment.classification, forecasts)
    model.set_weights(compiled.model.get_weights())


def evaluate(model: keras.Model, dataset: Dataset, experiment: Experiment) -> tuple[float, float]:
    """Test loss and accuracy (NaN for regression) in order, with the training
    batch size and the policy's resets inside the epoch, from a zero state that
    is then put back (`protocol.evaluated_from_zero`)."""

    def figures():
        result = model.evaluate(
            dataset.x_test,
            dataset.y_test,
            batch_size=experiment.train.batch_size,
            verbose=0,
            return_dict=True,
            callbacks=_reset_callbacks(model, experiment.batches_between_resets, dataset.lane_starts_test),
        )
        return float(result["loss"]), float(result.get("accuracy", np.nan))

    return protocol.evaluated_from_zero(state_variables(model), figures)


class EagerForecaster:
    """Walk-forward forecasts after each epoch in plain Keras calls (the fit and
    train_on_batch trainers), through a batch-1 twin that takes the model's
    weights (`protocol.walk_forward`). Gives {} for tasks that do not forecast."""

    _twins: dict[str, keras.Model] = {}
    """The batch-1 twins, one per shape, kept as `KerasTwin`'s are."""

    def __init__(self, experiment: Experiment, variant: str, dataset: Dataset):
        self.forecast = dataset.forecast
        self.twin = None
        if self.forecast is not None:
            build = lambda: build_model(experiment, variant, 1, seed=0)  # noqa: E731
            self.twin = recently_used(self._twins, KerasTwin.key(experiment, variant), build, KerasTwin.CACHED)
        self.inputs = forecast_tensors(self.forecast)

    def __call__(self, model: keras.Model) -> dict:
        if self.forecast is None:
            return {}
        self.twin.set_weights(model.get_weights())
        predictions = protocol.walk(
            lambda window: protocol.prediction(self.twin(window, training=False)),
            state_variables(self.twin),
            self.inputs,
            self.forecast.prime,
            self.forecast.reset_each,
            self.forecast.walk is not None,
        )
        return protocol.scored(self.forecast, predictions.numpy())


def forecast_tensors(forecast) -> tuple[tf.Tensor, tf.Tensor] | None:
    """A forecast's priming and test windows as batches of one, (windows, 1, T, F);
    through entities, every window so and where to zero the state (`protocol.walk`)."""
    if forecast is None:
        return None
    if forecast.walk is not None:
        return tf.constant(forecast.walk.windows[:, None]), tf.constant(forecast.walk.zero_before)
    return tf.constant(forecast.x_prime[:, None]), tf.constant(forecast.x_test[:, None])


class _ResetEvery(keras.callbacks.Callback):
    """Reset the stateful layers where the protocol says, before a batch, in
    training and in evaluation (Keras' own loop, so a callback)."""

    def __init__(self, target: keras.Model, every: int):
        super().__init__()
        self.target, self.every = target, every

    def on_train_batch_begin(self, batch, logs=None):
        if protocol.reset_before(batch, self.every):
            reset_states(self.target)

    on_test_batch_begin = on_train_batch_begin


class _LaneStarts(keras.callbacks.Callback):
    """Zero the state of the lanes that take their next entity, before a batch
    (`protocol.zero_lanes`), in training or in evaluation."""

    def __init__(self, target: keras.Model, starts: np.ndarray):
        super().__init__()
        self.target, self.starts = target, starts

    def on_train_batch_begin(self, batch, logs=None):
        protocol.zero_lanes(state_variables(self.target), self.starts[batch])

    on_test_batch_begin = on_train_batch_begin


def _reset_callbacks(
    model: keras.Model, every: int | None, starts: np.ndarray | None = None
) -> list[keras.callbacks.Callback]:
    return ([_ResetEvery(model, every)] if every else []) + ([_LaneStarts(model, starts)] if starts is not None else [])


TRAINERS = {"fit": train_fit, "train_on_batch": train_on_batch, "loop": train_loop}
