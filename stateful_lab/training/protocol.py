"""The epoch protocol, written once for every engine (docs/design.md, "Training").

An epoch is: zero the state at its start (always at epoch 0; at every epoch
with `train.reset: epoch`), train on the batches in order, zeroing the state
before every k-th batch where the policy says so; evaluate the test set from a
zero state and put the training state back; forecast the held-out values
walking forward through a batch-1 twin; record the epoch; stop at the first
non-finite loss. The engines (fit, train_on_batch, the compiled loop, grouped
runs) supply only how a batch is computed: each calls these functions, in plain
Keras calls or inside its compiled program (they work on Python values, eager
tensors and traced ones alike).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import tensorflow as tf

from stateful_lab.runs.listening import heard
from stateful_lab.runs.records import EpochResult, RunResult


def resets_at_start(epoch: int, reset: str) -> bool:
    """Whether an epoch starts from a zero state: the first always, the others
    with `train.reset: epoch` (never with `never`; the in-epoch policies also
    reset before the epoch's first batch)."""
    return epoch == 0 or reset == "epoch"


def reset_before(batch, every: int | None):
    """Whether the state is zeroed before batch `batch` (an int or a traced
    index) of an epoch or an evaluation: before every `every`-th batch (sequence
    boundaries, or every batch), never when `every` is None."""
    return bool(every) and batch % every == 0


def zero(variables, where=True) -> list:
    """Zero state variables (each one's runs where `where`, a mask over the last
    axis, is true; all of them when it is True); the assignments, to order after."""
    if where is True:
        return [variable.assign(tf.zeros_like(variable)) for variable in variables]
    return [variable.assign(tf.where(where, tf.zeros_like(variable), variable)) for variable in variables]


def zero_before(batch, every: int | None, variables) -> None:
    """The in-epoch reset inside a compiled loop, branch-free so that XLA keeps
    the loop one sequence of kernels: each state times 0 before a reset, 1 else."""
    if every:
        keep = tf.cast(tf.logical_not(reset_before(batch, every)), tf.float32)
        for variable in variables:
            variable.assign(variable * keep)


def zero_lanes(variables, starts) -> None:
    """Zero the state of the lanes where `starts` is true (a lane taking its next
    entity), every other lane's untouched; branch-free, each state times 0 in
    those lanes and 1 in the others. `starts` is (B,) for one model, (B, runs) for
    a group, whose states are (B, units) and (B, units, runs)."""
    keep = 1.0 - tf.cast(starts, tf.float32)
    keep = tf.reshape(keep, (-1, 1)) if len(keep.shape) == 1 else keep[:, None, :]
    for variable in variables:
        variable.assign(variable * keep)


def evaluated_from_zero(states, evaluate):
    """`evaluate()`'s figures, computed from a zero state; the training state is
    saved first and put back after, so evaluating never changes what training
    does (Keras 3's evaluate and predict change a stateful layer's state)."""
    saved = [tf.identity(variable) for variable in states]
    zero(states)
    figures = evaluate()
    with tf.control_dependencies(list(figures)):
        for variable, value in zip(states, saved, strict=True):
            variable.assign(value)
    return figures


def walk_forward(step, states, x_prime, x_test, prime, reset_each):
    """Walk-forward forecasts through a batch-1 model whose state variables are
    `states`: from a zero state, read every priming window if `prime` (then zero
    the state of the runs that do not prime), then forecast each test window in
    turn, zeroing the state after each forecast where `reset_each`. `step(window)`
    gives one window's prediction and carries the state; `prime` and `reset_each`
    are bools, or masks over the runs of a group. The predictions, stacked."""
    primed = zero(states)
    if states and prime is not False:
        with tf.control_dependencies(primed):
            read = tf.while_loop(
                lambda index: index < tf.shape(x_prime)[0],
                lambda index: (_after(step(x_prime[index]), index + 1),),
                (tf.constant(0),),
            )
        with tf.control_dependencies(read):
            primed = zero(states, where=tf.logical_not(prime)) if prime is not True else read

    def forecast(index, predictions):
        prediction = step(x_test[index])
        if reset_each is not False:
            with tf.control_dependencies([prediction]):
                zero(states, where=reset_each)
        return index + 1, predictions.write(index, prediction)

    with tf.control_dependencies(primed):
        predictions = tf.TensorArray(tf.float32, size=tf.shape(x_test)[0])
        _, predictions = tf.while_loop(
            lambda index, _: index < tf.shape(x_test)[0], forecast, (tf.constant(0), predictions)
        )
    return predictions.stack()


def prediction(output):
    """A batch-1 model's prediction for one window: its one output, or, from a head
    of one unit per class, the classes' probabilities."""
    return output[0, 0] if output.shape[-1] == 1 else output[0]


def walk_through(step, states, windows, zero_before):
    """Walk-forward through several entities (`tasks.windows.Walk`): every window
    in turn, the state zeroed first where `zero_before` says (a bool per window,
    or a mask over a group's runs per window); every window's prediction, stacked
    (the caller keeps the forecasts')."""

    def forecast(index, predictions):
        cleared = zero(states, where=zero_before[index])
        with tf.control_dependencies(cleared):
            prediction = step(windows[index])
        return index + 1, predictions.write(index, prediction)

    predictions = tf.TensorArray(tf.float32, size=tf.shape(windows)[0])
    _, predictions = tf.while_loop(
        lambda index, _: index < tf.shape(windows)[0], forecast, (tf.constant(0), predictions)
    )
    return predictions.stack()


def walk(step, states, inputs, prime, reset_each, walks: bool):
    """The forecasts' walk: through the entities in turn (`walk_through`, inputs
    the windows and where to zero) when `walks`, else priming and forecasting
    one series (`walk_forward`, inputs the priming and the test windows)."""
    if walks:
        return walk_through(step, states, *inputs)
    return walk_forward(step, states, *inputs, prime, reset_each)


def _after(value, result):
    with tf.control_dependencies([value]):
        return tf.identity(result)


def scored(forecast, predictions: np.ndarray) -> dict:
    """A forecasting run's epoch figures from its scaled predictions: the
    forecasts in the series' units and their RMSE (for labels, the predicted
    labels and their accuracy)."""
    if forecast.walk is not None:  # every window's prediction: keep the forecasts'
        predictions = np.asarray(predictions)[forecast.walk.forecasts]
    forecasts = forecast.invert(predictions)
    return {forecast.metric: forecast.score(forecasts), "forecasts": tuple(float(value) for value in forecasts)}


def epoch_result(epoch: int, figures, seconds: float, classification: bool, forecasts: dict | None = None):
    """The record of one epoch from its train loss and accuracy and test loss and
    accuracy (in that order); accuracy is NaN for regression."""
    train_loss, train_accuracy, test_loss, test_accuracy = (float(value) for value in figures)
    if not classification:
        train_accuracy = test_accuracy = math.nan
    return EpochResult(epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds, **(forecasts or {}))


def diverged(epoch: EpochResult) -> bool:
    """A run has diverged once a loss, or a forecasting run's RMSE, is no longer a
    finite number: nothing after it is worth training, and no such figure is ever
    averaged or printed as a result."""
    scored = epoch.forecasts and math.isnan(epoch.forecast_accuracy)  # an RMSE (an accuracy is always finite)
    figures = [epoch.train_loss, epoch.test_loss] + ([epoch.test_rmse] if scored else [])
    return not all(math.isfinite(figure) for figure in figures)


def record(result: RunResult, epoch: EpochResult) -> bool:
    """Add an epoch to a run's result (its forecasts kept once, the last epoch's);
    False when the run diverged and stops."""
    if epoch.forecasts:
        result.forecasts = list(epoch.forecasts)
    result.epochs.append(replace(epoch, forecasts=()))
    heard(result.key, epoch.epoch)
    if diverged(epoch):
        result.status = "diverged"
        return False
    return True
