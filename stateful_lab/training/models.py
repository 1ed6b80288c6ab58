"""Keras 3 models for each variant, and the state helpers Keras 3 no longer has.

Keras 3 has no `model.reset_states()` and keeps RNN state variables out of
`model.weights`, so the lab resets, saves and restores them itself.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf

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
    seeds = [_initializer_seed(seed, index, role) for index in range(len(layer_units)) for role in (0, 1)]
    seeds.append(_initializer_seed(seed, len(layer_units), 0))
    drawn = _initializers(cell, layer_units, features, outputs)(tf.constant([[s, 0] for s in seeds], tf.int64))
    drawn = [np.asarray(weight) for weight in drawn]
    weights = []
    for index, units in enumerate(layer_units):
        kernel, recurrent = drawn[2 * index], drawn[2 * index + 1]
        if cell == "lstm":  # Keras' unit_forget_bias: the forget gate's bias starts at one
            bias = np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)])
        elif cell == "gru":  # reset_after: an input and a recurrent bias
            bias = np.zeros((2, gates * units))
        else:
            bias = np.zeros(units)
        weights += [kernel, recurrent, bias.astype(np.float32)]
    weights += [drawn[-1], np.zeros(outputs, np.float32)]
    for weight in weights:
        weight.setflags(write=False)
    return tuple(weights)


@functools.lru_cache(maxsize=64)
def _initializers(cell: str, layer_units: tuple[int, ...], features: int, outputs: int):
    """One traced function drawing every initializer's weights of a model shape
    from a tensor of seeds (one [seed, 0] row per weight, as Keras draws an int
    seed), so that a sweep of thousands of seeds pays one call per seed instead
    of a few dozen eager operations (16 ms a seed, most of a 10,000-run sweep's
    time). The same operations as Keras' GlorotUniform and Orthogonal, on the same
    seeds; equal to the built model's weights value for value (tests/test_grouped.py)."""
    gates = GATES[cell]
    shapes, inputs = [], features
    for units in layer_units:
        shapes += [("glorot", (inputs, gates * units)), ("orthogonal", (units, gates * units))]
        inputs = units
    shapes.append(("glorot", (inputs, outputs)))

    @tf.function(autograph=False)  # no tensor-dependent control flow to convert
    def draw(seeds):
        seeds = tf.cast(tf.math.floormod(seeds, tf.int32.max - 1), tf.int32)  # keras' _cast_seed
        return [
            (_glorot_uniform if kind == "glorot" else _orthogonal)(shape, seeds[index])
            for index, (kind, shape) in enumerate(shapes)
        ]

    return draw


def _glorot_uniform(shape: tuple[int, int], seed):
    """keras.initializers.GlorotUniform: uniform on +-sqrt(3 / mean(fan in, fan out))."""
    limit = math.sqrt(3.0 / max(1.0, (shape[0] + shape[1]) / 2.0))
    return tf.random.stateless_uniform(
        shape, minval=tf.cast(-limit, tf.float32), maxval=tf.cast(limit, tf.float32), dtype=tf.float32, seed=seed
    )


def _orthogonal(shape: tuple[int, int], seed):
    """keras.initializers.Orthogonal (gain 1): the Q of a normal matrix's QR, its
    columns signed by R's diagonal, transposed for a wide shape."""
    rows, columns = shape
    a = tf.random.stateless_normal((max(columns, rows), min(columns, rows)), dtype=tf.float32, seed=seed)
    q, r = tf.linalg.qr(a, full_matrices=False)
    q *= tf.sign(tf.linalg.diag_part(r))
    if rows < columns:
        q = tf.transpose(q)
    return 1.0 * tf.reshape(q, shape)


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
