"""One time step of Keras 3's LSTM, GRU and SimpleRNN cells for every run of a
group at once (the run is the last axis), and the per-run matrix products they
use. Equal to Keras' own cells within 1e-5 (tests/test_grouped.py)."""

from __future__ import annotations

import keras
import tensorflow as tf

from stateful_lab.training.models import RECURRENT_ACTIVATIONS
from stateful_lab.training.shapes import fused

STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1}
"""State tensors per layer: an LSTM carries h and c, the others h only."""


def sigmoid_by_tanh(z):
    """Keras' sigmoid gate, 1 / (1 + exp(-z)), written as 0.5 tanh(z / 2) + 0.5: the
    same function, computed with XLA's tanh (a rational approximation) in place of
    an exponential and a division. Within 1.6e-7 of the exact sigmoid over
    [-30, 30] (XLA's own sigmoid: 8.9e-8); far out in the negative tail it gives 0
    where the sigmoid gives under 1e-8. The gates are most of a step's arithmetic:
    the blog's model at 1,000 runs (two shards side by side, medians of 8
    interleaved) took 89.8 ms an epoch against 95.2 ms with Keras' sigmoid."""
    return 0.5 * tf.tanh(0.5 * z) + 0.5


GATE_FUNCTIONS = {name: keras.activations.get(function) for name, function in RECURRENT_ACTIVATIONS.items()}
GATE_FUNCTIONS["sigmoid"] = sigmoid_by_tanh


class StackedCell:
    """A cell of one kind for a group's runs, each with its own gate activation
    (several in one group: each computed for every run, selected per run)."""

    def __init__(self, cell: str, gates: tuple[str, ...], gate_of: tf.Variable):
        self.cell = cell
        self.gates = gates
        self.gate_of = gate_of
        """Each run's index into `gates`."""
        self.activation = keras.activations.tanh

    def biases(self, bias, runs_first: bool) -> list:
        """The layer's bias, broadcastable to one step's gates; a GRU has two (an
        input and a recurrent one, Keras 3's reset_after)."""
        if runs_first:
            return [bias[:, 0, None], bias[:, 1, None]] if self.cell == "gru" else [bias[:, None]]
        return [bias[0], bias[1]] if self.cell == "gru" else [bias]

    def gate(self, z):
        """Each run's gate activation of `z` (..., runs)."""
        value = GATE_FUNCTIONS[self.gates[0]](z)
        for index, name in enumerate(self.gates[1:], start=1):
            value = tf.where(tf.equal(self.gate_of, index), GATE_FUNCTIONS[name](z), value)
        return value

    def step(self, inputs, carried, kernel, recurrent, biases, dot, axis):
        """One time step of every run's cell, in the order of Keras 3's cells;
        `axis` is the gates' axis. The output and the new state."""
        if self.cell == "lstm":
            h, c = carried
            z = dot(inputs, kernel)
            z = z + dot(h, recurrent)
            z = z + biases[0]
            z0, z1, z2, z3 = tf.split(z, 4, axis=axis)
            c = self.gate(z1) * c + self.gate(z0) * self.activation(z2)
            h = self.gate(z3) * self.activation(c)
            return h, [h, c]
        if self.cell == "gru":
            (h,) = carried
            matrix_x = dot(inputs, kernel) + biases[0]
            x_z, x_r, x_h = tf.split(matrix_x, 3, axis=axis)
            matrix_inner = dot(h, recurrent) + biases[1]
            recurrent_z, recurrent_r, recurrent_h = tf.split(matrix_inner, 3, axis=axis)
            z = self.gate(x_z + recurrent_z)
            r = self.gate(x_r + recurrent_r)
            hh = self.activation(x_h + r * recurrent_h)
            h = z * h + (1 - z) * hh
            return h, [h]
        (previous,) = carried
        h = dot(inputs, kernel) + biases[0]
        h = self.activation(h + dot(previous, recurrent))
        return h, [h]


def dot(a, b):
    """Each run's matrix product, (n, k, runs) x (k, m, runs) -> (n, m, runs):
    `fused_dot` for small matrices, else a batched matrix product."""
    if a.shape[0] is not None and fused(a.shape[0], a.shape[1], b.shape[1]):
        return fused_dot(a, b)
    return tf.einsum("nkr,kmr->nmr", a, b)


def fused_dot(a, b):
    """(n, k, runs) x (k, m, runs) -> (n, m, runs) as a broadcast multiply and a
    sum: one fused loop over all runs, vectorized along the run axis. For the
    lab's usual tiny matrices (a few units and lanes) it beats a batched matrix
    product, which pays a call per run; for larger ones it does not."""
    return expanded_dot(a, b[None])


def expanded_dot(a, b):
    """`fused_dot(a, b[0])` for a `b` already broadcast to (1, k, m, runs): the same
    operations on the same values. A recurrent layer broadcasts its weights once,
    before its loop over time steps: broadcast inside the loop, TensorFlow's
    gradient of the loop kept a copy of them for every step (the blog's model at
    1,000 runs: 245 ms an epoch before, 221 ms after; every figure bit for bit
    the same)."""
    return tf.reduce_sum(a[:, :, None, :] * b, axis=1)
