"""Keras 3 models for each variant, and the state helpers Keras 3 no longer has.

Keras 3 has no `model.reset_states()` and keeps RNN state variables out of
`model.weights`, so the lab resets, saves and restores them itself.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from stateful_lab.config.experiment import Experiment
from stateful_lab.training.shapes import GATES

# Loss objects, not functions: they reduce to the batch mean the way fit does,
# and the loop trainer calls the very same object.
LOSSES = {
    "mse": keras.losses.MeanSquaredError,
    "mae": keras.losses.MeanAbsoluteError,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
}


def hard_sigmoid_keras2(x):
    """Keras 2's hard sigmoid, 0.2 x + 0.5 clipped to [0, 1], the LSTM's recurrent
    activation by default until Keras 2.3. Keras 3's `hard_sigmoid` is another
    function (x / 6 + 0.5, clipped): a third of the slope near zero."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
RECURRENT_ACTIVATIONS = {
    "sigmoid": "sigmoid",
    "hard_sigmoid": "hard_sigmoid",
    "hard_sigmoid_keras2": hard_sigmoid_keras2,
}


def recurrent_layer(cell: str, units: int, recurrent_activation: str = "sigmoid", **options) -> keras.layers.Layer:
    """One recurrent layer of the given cell; SimpleRNN has no gates, so no
    recurrent activation (the config refuses one other than the default)."""
    if cell != "simple_rnn":
        options["recurrent_activation"] = RECURRENT_ACTIVATIONS[recurrent_activation]
    return CELLS[cell](units, **options)


def build_model(experiment: Experiment, variant: str, batch_size: int, seed: int) -> keras.Model:
    """One recurrent stack (LSTM, GRU or SimpleRNN) and a Dense head (one unit, or
    one per class of a categorical target), compiled for the experiment.

    Every initializer gets a seed derived from `seed`: Keras' unseeded
    initializers draw from Python's global `random`, which other threads (a Dask
    worker's, say) may advance, so the initial weights would depend on timing.
    Variants built with the same seed start from the same weights.
    """
    data, spec = experiment.data, experiment.model
    stateful = variant == "stateful"
    # wide_window is stateless over its lane's previous window joined to the current one.
    timesteps = data.timesteps * (2 if variant == "wide_window" else 1)
    # A stateful layer needs a fixed batch size: its state has one row per lane.
    inputs = keras.Input(batch_shape=(batch_size if stateful else None, timesteps, data.features))
    hidden = inputs
    for index, units in enumerate(spec.units):
        last = index == len(spec.units) - 1
        hidden = recurrent_layer(
            spec.cell,
            units,
            spec.recurrent_activation,
            stateful=stateful,
            return_sequences=experiment.per_step_targets or not last,
            kernel_initializer=keras.initializers.GlorotUniform(seed=_initializer_seed(seed, index, 0)),
            recurrent_initializer=keras.initializers.Orthogonal(seed=_initializer_seed(seed, index, 1)),
            name=f"{spec.cell}_{index}",
        )(hidden)
    # On sequences (per-step targets) the Dense head applies at every step.
    outputs = keras.layers.Dense(
        data.output_units,
        activation=spec.output_activation,
        name="output",
        kernel_initializer=keras.initializers.GlorotUniform(seed=_initializer_seed(seed, len(spec.units), 0)),
    )(hidden)
    model = keras.Model(inputs, outputs, name=variant)
    metrics = []
    if experiment.classification:
        accuracy = keras.metrics.SparseCategoricalAccuracy if data.output_units > 1 else keras.metrics.BinaryAccuracy
        metrics = [accuracy(name="accuracy")]
    model.compile(optimizer=make_optimizer(experiment), loss=LOSSES[spec.loss](), metrics=metrics)
    return model


def initial_weights(experiment: Experiment, seed: int) -> list[np.ndarray]:
    """The weights a model of `build_model(experiment, variant, _, seed)` starts
    from, in get_weights() order, made by the same seeded initializers without
    building a model. Equal to the built model's, value for value, for every cell
    (tests/test_grouped.py). Read-only arrays, made once per process for each
    layer shape and seed: the variants and sweep points of a seed start from the
    same weights, and making them takes eager TensorFlow operations."""
    spec = experiment.model
    data = experiment.data
    return list(_initial_weights(spec.cell, tuple(spec.units), data.features, data.output_units, seed))


@functools.lru_cache(maxsize=512)
def _initial_weights(
    cell: str, layer_units: tuple[int, ...], features: int, outputs: int, seed: int
) -> tuple[np.ndarray, ...]:
    gates = GATES[cell]
    weights, inputs = [], features
    for index, units in enumerate(layer_units):
        kernel = keras.initializers.GlorotUniform(seed=_initializer_seed(seed, index, 0))((inputs, gates * units))
        recurrent = keras.initializers.Orthogonal(seed=_initializer_seed(seed, index, 1))((units, gates * units))
        if cell == "lstm":  # Keras' unit_forget_bias: the forget gate's bias starts at one
            bias = np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)])
        elif cell == "gru":  # reset_after: an input and a recurrent bias
            bias = np.zeros((2, gates * units))
        else:
            bias = np.zeros(units)
        weights += [np.asarray(kernel), np.asarray(recurrent), bias.astype(np.float32)]
        inputs = units
    dense = keras.initializers.GlorotUniform(seed=_initializer_seed(seed, len(layer_units), 0))((inputs, outputs))
    weights += [np.asarray(dense), np.zeros(outputs, np.float32)]
    for weight in weights:
        weight.setflags(write=False)
    return tuple(weights)


def _initializer_seed(seed: int, layer: int, role: int) -> int:
    """A distinct, reproducible seed per (run seed, layer, weight)."""
    return (seed * 1_000 + layer * 10 + role) % 2**31


OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


def make_optimizer(experiment: Experiment) -> keras.optimizers.Optimizer:
    train = experiment.train
    options = {} if train.epsilon is None or train.optimizer == "sgd" else {"epsilon": train.epsilon}
    return OPTIMIZERS[train.optimizer](learning_rate=train.learning_rate, clipnorm=train.clipnorm, **options)


def stateful_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if getattr(layer, "stateful", False)]


def state_variables(model: keras.Model) -> list:
    """Every stateful layer's state variables (h, and c for an LSTM), in order."""
    return [variable for layer in stateful_layers(model) for variable in layer.states]


def reset_states(model: keras.Model) -> None:
    """Zero the state of every stateful layer (Keras 2's model.reset_states())."""
    for layer in stateful_layers(model):
        layer.reset_state()


def get_states(model: keras.Model) -> list[list[np.ndarray]]:
    """A copy of every stateful layer's state variables, to restore later."""
    return [[variable.numpy().copy() for variable in layer.states] for layer in stateful_layers(model)]


def set_states(model: keras.Model, states: list[list[np.ndarray]]) -> None:
    for layer, values in zip(stateful_layers(model), states, strict=True):
        for variable, value in zip(layer.states, values, strict=True):
            variable.assign(value)
