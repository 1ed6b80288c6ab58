"""Models kept across seeds, one per shape: `KerasTwin`, a compiled Keras model
restarted for each run (the fit and train_on_batch trainers'), and the `loop`
trainer's engine built on one, with XLA-compiled functions for a whole epoch, the
whole evaluation and the forecasts, each following the epoch protocol
(`protocol`) inside the compiled program."""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import Experiment
from stateful_lab.training import protocol
from stateful_lab.training.cache import recently_used
from stateful_lab.training.models import build_model, reset_states, state_variables


class KerasTwin:
    """A compiled Keras model of one shape, kept in this process across seeds, so
    that Keras traces fit's, evaluate's and train_on_batch's functions once per
    shape instead of once per run (about 1.4 s a run at the blog's sizes). A run
    starts it like a freshly built model (`start`): its weights, zero optimizer
    slots and step, a zero state; the same numbers as a fresh model, bit for bit
    (tests/test_trainers.py). Keras still traces again for a new input shape."""

    _cache: dict[str, KerasTwin] = {}
    CACHED = 16
    """Twins kept at once, least recently used dropped first."""

    @classmethod
    def for_run(cls, experiment: Experiment, variant: str) -> KerasTwin:
        """The twin for a run: every setting but the task's data values (as
        `CompiledLoop.for_run`), so runs differing in seed share it."""
        return recently_used(cls._cache, cls.key(experiment, variant), lambda: cls(experiment, variant), cls.CACHED)

    @staticmethod
    def key(experiment: Experiment, variant: str) -> str:
        return json.dumps([experiment.graph_settings(), variant], sort_keys=True)

    def __init__(self, experiment: Experiment, variant: str):
        self.model = build_model(experiment, variant, experiment.train.batch_size, seed=0)  # weights: per run
        self.model.optimizer.build(self.model.trainable_variables)
        # A fresh optimizer's variables (step 0, zero slots, the learning rate),
        # restored for every run.
        self.fresh_optimizer = [variable.numpy() for variable in self.model.optimizer.variables]

    def start(self, model: keras.Model) -> keras.Model:
        """The twin, started like `model` freshly built: its weights, a fresh
        optimizer, a zero state."""
        self.model.set_weights(model.get_weights())
        for variable, value in zip(self.model.optimizer.variables, self.fresh_optimizer, strict=True):
            variable.assign(value)
        reset_states(self.model)
        return self.model


class CompiledLoop:
    """A model, its optimizer and its XLA-compiled epoch functions, for one shape."""

    _cache: dict[str, CompiledLoop] = {}
    CACHED = 16
    """Compiled twins kept at once, least recently used dropped first."""

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
        self.reset_every = experiment.batches_between_resets
        self.kept = KerasTwin(experiment, variant)  # weights are loaded per run
        self.model = self.kept.model
        self.optimizer = self.model.optimizer
        self.loss = self.model.loss
        self.classes = experiment.data.output_units
        """The head's units: more than one for a categorical target (argmax accuracy)."""
        self.train_epoch = tf.function(self._train_epoch, jit_compile=True)
        self.evaluate = tf.function(self._evaluate, jit_compile=True)
        # A forecasting task's regime (priming, resets) is traced into the forecast function.
        self.regime = experiment.data.forecast_set()
        self.twin = build_model(experiment, variant, 1, seed=0) if self.regime is not None else None
        self.forecast = tf.function(self._forecast, jit_compile=True)

    def load_initial_weights(self, model: keras.Model) -> None:
        """Start like a freshly built model: its weights, zero optimizer slots."""
        self.kept.start(model)

    def batches(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        """(batches, B, T, F) inputs and (batches, B, ..., 1) targets, in feeding order."""
        batches = len(x) // self.batch_size
        y = y if y.ndim > 1 else y[:, None]
        return (
            tf.constant(x.reshape(batches, self.batch_size, *x.shape[1:])),
            tf.constant(y.reshape(batches, self.batch_size, *y.shape[1:])),
        )

    @staticmethod
    def starts(lane_starts: np.ndarray | None) -> tf.Tensor | None:
        """Where lanes take their next entity, (batches, B), or None."""
        return None if lane_starts is None else tf.constant(lane_starts)

    def forecasts(self, inputs: tuple[tf.Tensor, tf.Tensor] | None, forecast) -> dict:
        """Walk-forward forecasts from the trained weights, in one compiled call;
        {} for tasks that do not forecast."""
        if inputs is None:
            return {}
        return protocol.scored(forecast, self.forecast(*inputs).numpy())

    def _forecast(self, first, second):
        """The batch-1 twin takes the trained weights, then walks forward
        (`protocol.walk`: inputs as `trainers.forecast_tensors` gives them)."""
        for twin_weight, weight in zip(self.twin.weights, self.model.weights, strict=True):
            twin_weight.assign(weight)
        return protocol.walk(
            lambda window: protocol.prediction(self.twin(window, training=False)),
            state_variables(self.twin),
            (first, second),
            self.regime.prime,
            self.regime.reset_each,
            self.regime.walk is not None,
        )

    def _step_figures(self, y_true, y_pred):
        loss = self.loss(y_true, y_pred)
        if self.classes > 1:  # the most probable class, against the class index
            predicted = tf.cast(tf.argmax(y_pred, axis=-1), y_true.dtype)
            return loss, tf.reduce_mean(tf.cast(tf.equal(y_true[..., 0], predicted), tf.float32))
        correct = tf.reduce_mean(tf.cast(tf.equal(y_true, tf.cast(y_pred > 0.5, y_true.dtype)), tf.float32))
        return loss, correct

    def _train_epoch(self, x_batches, y_batches, starts=None):
        """Every batch in order with an optimizer step; the epoch's mean loss and
        accuracy, as fit reports them. `starts`: the lanes that take their next
        entity before each batch."""
        batches = tf.shape(x_batches)[0]
        loss_sum, correct_sum = tf.constant(0.0), tf.constant(0.0)
        for index in tf.range(batches):
            protocol.zero_before(index, self.reset_every, state_variables(self.model))
            if starts is not None:
                protocol.zero_lanes(state_variables(self.model), starts[index])
            with tf.GradientTape() as tape:
                y_pred = self.model(x_batches[index], training=True)
                loss, correct = self._step_figures(y_batches[index], y_pred)
            gradients = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            loss_sum += loss
            correct_sum += correct
        count = tf.cast(batches, tf.float32)
        return loss_sum / count, correct_sum / count

    def _evaluate(self, x_batches, y_batches, starts=None):
        """The test set in order, from a zero state that is then put back."""

        def figures():
            batches = tf.shape(x_batches)[0]
            loss_sum, correct_sum = tf.constant(0.0), tf.constant(0.0)
            for index in tf.range(batches):
                protocol.zero_before(index, self.reset_every, state_variables(self.model))
                if starts is not None:
                    protocol.zero_lanes(state_variables(self.model), starts[index])
                loss, correct = self._step_figures(y_batches[index], self.model(x_batches[index], training=False))
                loss_sum += loss
                correct_sum += correct
            count = tf.cast(batches, tf.float32)
            return loss_sum / count, correct_sum / count

        return protocol.evaluated_from_zero(state_variables(self.model), figures)
