"""Training procedures: the articles' three ways of training, with one reset and
evaluation protocol (docs/design.md, "Training"). Each trains one model for the
experiment's epochs and yields one `EpochResult` per epoch, and all three give the
same numbers for the same seed (tests/test_trainers.py).

- `fit`: model.fit(epochs=1) once per epoch (the blog, the gradient-flow article).
- `train_on_batch`: a Python loop of train_on_batch calls (the gradient-flow article).
- `loop`: a GradientTape loop (the custom-loop article), with a whole epoch, and the
  whole evaluation, each compiled by XLA into one function.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import Experiment
from stateful_lab.runs.records import EpochResult
from stateful_lab.tasks import Dataset
from stateful_lab.training.models import build_model, get_states, reset_states, set_states, stateful_layers


def train_fit(model: keras.Model, experiment: Experiment, dataset: Dataset, variant: str) -> Iterator[EpochResult]:
    """model.fit(epochs=1, shuffle=...) once per epoch, as the blog and the
    gradient-flow article do; never validation_data, whose evaluation would run
    through the stateful layers mid-training."""
    train = experiment.train
    callbacks = _reset_callbacks(model, experiment.batches_between_resets)
    forecaster = EagerForecaster(experiment, variant, dataset)
    for epoch in range(train.epochs):
        if train.reset == "epoch" or epoch == 0:
            reset_states(model)
        started = time.perf_counter()
        history = model.fit(
            dataset.x_train,
            dataset.y_train,
            batch_size=train.batch_size,
            epochs=1,
            shuffle=train.shuffle,
            verbose=0,
            callbacks=callbacks,
        ).history
        seconds = time.perf_counter() - started
        test = evaluate(model, dataset, experiment)
        yield EpochResult(
            epoch=epoch,
            train_loss=float(history["loss"][0]),
            train_accuracy=float(history["accuracy"][0]) if "accuracy" in history else math.nan,
            test_loss=test["loss"],
            test_accuracy=test.get("accuracy", math.nan),
            seconds=seconds,
            **forecaster(model),
        )


def evaluate(model: keras.Model, dataset: Dataset, experiment: Experiment) -> dict[str, float]:
    """Test loss and accuracy from a reset state, in order, with the training
    batch size and the policy's resets inside the epoch. Keras 3's evaluate
    changes the state, so the training state is saved before and restored after:
    evaluating never changes what training does."""
    saved = get_states(model)
    reset_states(model)
    result = model.evaluate(
        dataset.x_test,
        dataset.y_test,
        batch_size=experiment.train.batch_size,
        verbose=0,
        return_dict=True,
        callbacks=_reset_callbacks(model, experiment.batches_between_resets),
    )
    set_states(model, saved)
    return {name: float(value) for name, value in result.items()}


class EagerForecaster:
    """Walk-forward forecasts after each epoch, in plain Keras calls (the fit and
    train_on_batch trainers): through a batch-1 twin with the model's weights, its
    state primed on the training inputs (if the task says so) and reset after each
    forecast (if it says so). Gives {} for tasks that do not forecast."""

    def __init__(self, experiment: Experiment, variant: str, dataset: Dataset):
        self.forecast = dataset.forecast
        self.twin = build_model(experiment, variant, 1, seed=0) if self.forecast is not None else None

    def __call__(self, model: keras.Model) -> dict:
        if self.forecast is None:
            return {}
        self.twin.set_weights(model.get_weights())
        reset_states(self.twin)
        if self.forecast.prime and stateful_layers(self.twin):
            for window in self.forecast.x_prime:
                self.twin(window[None], training=False)
        predictions = []
        for window in self.forecast.x_test:
            predictions.append(float(self.twin(window[None], training=False)[0, 0]))
            if self.forecast.reset_each:
                reset_states(self.twin)
        return _scored(self.forecast, np.array(predictions))


def _scored(forecast, predictions: np.ndarray) -> dict:
    forecasts = forecast.invert(predictions)
    return {"test_rmse": forecast.rmse(forecasts), "forecasts": tuple(float(value) for value in forecasts)}


class _ResetEvery(keras.callbacks.Callback):
    """Reset the stateful layers before every `every`-th batch (sequence
    boundaries, or every batch), in training and in evaluation."""

    def __init__(self, target: keras.Model, every: int):
        super().__init__()
        self.target, self.every = target, every

    def on_train_batch_begin(self, batch, logs=None):
        if batch % self.every == 0:
            reset_states(self.target)

    on_test_batch_begin = on_train_batch_begin


def _reset_callbacks(model: keras.Model, every: int | None) -> list[keras.callbacks.Callback]:
    return [_ResetEvery(model, every)] if every else []


def train_on_batch(model: keras.Model, experiment: Experiment, dataset: Dataset, variant: str) -> Iterator[EpochResult]:
    """One train_on_batch call per batch, in order. Keras 3's train_on_batch
    returns the batch's own figures, so the epoch's running mean is kept here
    (batches are equal in size, so it equals fit's sample-weighted mean)."""
    train = experiment.train
    every = experiment.batches_between_resets
    forecaster = EagerForecaster(experiment, variant, dataset)
    for epoch in range(train.epochs):
        if train.reset == "epoch" or epoch == 0:
            reset_states(model)
        order = _epoch_order(len(dataset.x_train), train.batch_size, train.shuffle, (dataset.seed, epoch))
        started = time.perf_counter()
        logs = []
        for index, rows in enumerate(order):
            if every and index % every == 0:
                reset_states(model)
            logs.append(model.train_on_batch(dataset.x_train[rows], dataset.y_train[rows], return_dict=True))
        seconds = time.perf_counter() - started
        test = evaluate(model, dataset, experiment)
        yield EpochResult(
            epoch=epoch,
            train_loss=float(np.mean([log["loss"] for log in logs])),
            train_accuracy=float(np.mean([log["accuracy"] for log in logs])) if "accuracy" in logs[0] else math.nan,
            test_loss=test["loss"],
            test_accuracy=test.get("accuracy", math.nan),
            seconds=seconds,
            **forecaster(model),
        )


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
    forecast_inputs = compiled.forecast_inputs(dataset.forecast)
    for epoch in range(train.epochs):
        if train.reset == "epoch" or epoch == 0:
            reset_states(compiled.model)
        started = time.perf_counter()
        train_loss, train_accuracy = (float(value) for value in compiled.train_epoch(x_train, y_train))
        seconds = time.perf_counter() - started
        test_loss, test_accuracy = (float(value) for value in compiled.evaluate(x_test, y_test))
        yield EpochResult(
            epoch,
            train_loss,
            train_accuracy if compiled.classification else math.nan,
            test_loss,
            test_accuracy if compiled.classification else math.nan,
            seconds,
            **compiled.forecasts(forecast_inputs, dataset.forecast),
        )
    model.set_weights(compiled.model.get_weights())


class CompiledLoop:
    """A model, its optimizer and its XLA-compiled epoch functions, for one shape."""

    _cache: dict[str, CompiledLoop] = {}
    CACHED = 16
    """Compiled twins kept at once; the least recently used goes first, so that a
    process running many configs (`run configs/*.yaml`) does not grow without end."""

    @classmethod
    def for_run(cls, experiment: Experiment, variant: str, train_samples: int, test_samples: int):
        """The compiled twin for a run. Its key is every setting of the run but the
        task's data values (Experiment.graph_settings), so that runs differing in
        seed or in a data value (a lag, a layout) share it, and a setting added
        later can never re-use a function compiled for another value of it."""
        key = cls.key(experiment, variant, train_samples, test_samples)
        return recently_used(cls._cache, key, lambda: cls(experiment, variant), cls.CACHED)

    @staticmethod
    def key(experiment: Experiment, variant: str, train_samples: int, test_samples: int) -> str:
        return json.dumps([experiment.graph_settings(), variant, train_samples, test_samples], sort_keys=True)

    def __init__(self, experiment: Experiment, variant: str):
        self.batch_size = experiment.train.batch_size
        self.classification = experiment.classification
        self.reset_every = experiment.batches_between_resets
        self.model = build_model(experiment, variant, self.batch_size, seed=0)  # weights are loaded per run
        self.optimizer = self.model.optimizer
        self.optimizer.build(self.model.trainable_variables)
        # A fresh optimizer's variables (step 0, zero slots, the learning rate),
        # restored for every seed.
        self.fresh_optimizer = [variable.numpy() for variable in self.optimizer.variables]
        self.loss = self.model.loss
        self.train_epoch = tf.function(self._train_epoch, jit_compile=True)
        self.evaluate = tf.function(self._evaluate, jit_compile=True)
        # A forecasting task's regime (priming, resets) is traced into the forecast function.
        self.regime = experiment.data.forecast_set()
        self.twin = build_model(experiment, variant, 1, seed=0) if self.regime is not None else None
        self.forecast = tf.function(self._forecast, jit_compile=True)

    def load_initial_weights(self, model: keras.Model) -> None:
        """Start like a freshly built model: its weights, zero optimizer slots."""
        self.model.set_weights(model.get_weights())
        for variable, value in zip(self.optimizer.variables, self.fresh_optimizer, strict=True):
            variable.assign(value)
        reset_states(self.model)

    def batches(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        """(batches, B, T, F) inputs and (batches, B, ..., 1) targets, in feeding order."""
        batches = len(x) // self.batch_size
        y = y if y.ndim > 1 else y[:, None]
        return (
            tf.constant(x.reshape(batches, self.batch_size, *x.shape[1:])),
            tf.constant(y.reshape(batches, self.batch_size, *y.shape[1:])),
        )

    def forecast_inputs(self, forecast) -> tuple[tf.Tensor, tf.Tensor] | None:
        if forecast is None:
            return None
        return tf.constant(forecast.x_prime[:, None]), tf.constant(forecast.x_test[:, None])

    def forecasts(self, inputs: tuple[tf.Tensor, tf.Tensor] | None, forecast) -> dict:
        """Walk-forward forecasts from the trained weights, as EagerForecaster makes
        them, in one compiled call; {} for tasks that do not forecast."""
        if inputs is None:
            return {}
        return _scored(forecast, self.forecast(*inputs).numpy())

    def _forecast(self, x_prime, x_test):
        """The batch-1 twin takes the trained weights and a zero state, reads the
        training inputs if priming, then forecasts each test window in turn."""
        for twin_weight, weight in zip(self.twin.weights, self.model.weights, strict=True):
            twin_weight.assign(weight)
        twin_states = _state_variables(self.twin)
        _zero(twin_states)
        if self.regime.prime and twin_states:
            for index in tf.range(tf.shape(x_prime)[0]):
                self.twin(x_prime[index], training=False)
        predictions = tf.TensorArray(tf.float32, size=tf.shape(x_test)[0])
        for index in tf.range(tf.shape(x_test)[0]):
            predictions = predictions.write(index, self.twin(x_test[index], training=False)[0, 0])
            if self.regime.reset_each:
                _zero(twin_states)
        return predictions.stack()

    def _reset_inside_epoch(self, index) -> None:
        """Zero the state before every `reset_every`-th batch, branch-free so XLA
        keeps the loop as one kernel sequence."""
        if self.reset_every:
            keep = tf.cast(index % self.reset_every != 0, tf.float32)
            for variable in _state_variables(self.model):
                variable.assign(variable * keep)

    def _step_figures(self, y_true, y_pred):
        loss = self.loss(y_true, y_pred)
        correct = tf.reduce_mean(tf.cast(tf.equal(y_true, tf.cast(y_pred > 0.5, y_true.dtype)), tf.float32))
        return loss, correct

    def _train_epoch(self, x_batches, y_batches):
        """Every batch in order with an optimizer step; the epoch's mean loss and
        accuracy, as fit reports them."""
        batches = tf.shape(x_batches)[0]
        loss_sum, correct_sum = tf.constant(0.0), tf.constant(0.0)
        for index in tf.range(batches):
            self._reset_inside_epoch(index)
            with tf.GradientTape() as tape:
                y_pred = self.model(x_batches[index], training=True)
                loss, correct = self._step_figures(y_batches[index], y_pred)
            gradients = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            loss_sum += loss
            correct_sum += correct
        count = tf.cast(batches, tf.float32)
        return loss_sum / count, correct_sum / count

    def _evaluate(self, x_batches, y_batches):
        """The test set in order from a reset state; the training state is put
        back afterwards, so evaluation never changes training."""
        states = _state_variables(self.model)
        saved = [tf.identity(variable) for variable in states]
        _zero(states)
        batches = tf.shape(x_batches)[0]
        loss_sum, correct_sum = tf.constant(0.0), tf.constant(0.0)
        for index in tf.range(batches):
            self._reset_inside_epoch(index)
            loss, correct = self._step_figures(y_batches[index], self.model(x_batches[index], training=False))
            loss_sum += loss
            correct_sum += correct
        for variable, value in zip(states, saved):
            variable.assign(value)
        count = tf.cast(batches, tf.float32)
        return loss_sum / count, correct_sum / count


def recently_used(cache: dict, key: str, make, size: int):
    """cache[key], made by `make()` if missing, now the most recently used (dicts
    keep insertion order); the least recently used beyond `size` are dropped."""
    value = cache.pop(key, None) or make()
    cache[key] = value
    while len(cache) > size:
        del cache[next(iter(cache))]
    return value


def _state_variables(model: keras.Model) -> list[tf.Variable]:
    return [variable for layer in stateful_layers(model) for variable in layer.states]


def _zero(variables: list[tf.Variable]) -> None:
    for variable in variables:
        variable.assign(tf.zeros_like(variable))


TRAINERS = {"fit": train_fit, "train_on_batch": train_on_batch, "loop": train_loop}
