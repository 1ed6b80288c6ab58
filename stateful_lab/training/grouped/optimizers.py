"""Keras 3's optimizers (keras/src/optimizers) and losses, written element-wise
for a group's stacked variables (the run is the last axis), so that each run
keeps its own slots, its own epsilon and its own gradient norm. Adding an
optimizer is one entry in `RULES` (and one in `training.models.OPTIMIZERS`);
tests/test_grouped.py holds each equal to Keras."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from stateful_lab.training import protocol

LOSSES = {
    "mse": lambda y_true, y_pred: tf.square(y_true - y_pred),
    "mae": lambda y_true, y_pred: tf.abs(y_true - y_pred),
    "binary_crossentropy": keras.ops.binary_crossentropy,
    "sparse_categorical_crossentropy": lambda y_true, y_pred: _sparse_categorical_crossentropy(y_true, y_pred),
}


def _sparse_categorical_crossentropy(y_true, y_pred):
    """Keras' sparse categorical cross-entropy from probabilities, for a group:
    y_pred (B, classes, runs), y_true (B, 1, runs) class indices; per sample and
    run, (B, 1, runs). As Keras computes it: the probabilities clipped to
    [epsilon, 1 - epsilon], their log normalized again (a log-softmax), the true
    class's taken."""
    epsilon = keras.config.epsilon()
    logs = tf.math.log(tf.clip_by_value(y_pred, epsilon, 1 - epsilon))
    normalized = logs - tf.reduce_logsumexp(logs, axis=1, keepdims=True)
    chosen = tf.one_hot(tf.cast(y_true[:, 0, :], tf.int32), tf.shape(y_pred)[1], axis=1)
    return -tf.reduce_sum(chosen * normalized, axis=1, keepdims=True)


"""Each loss element-wise; Keras' loss objects average them over the batch (and
steps), as the group does per run."""


@dataclass(frozen=True)
class Rule:
    slots: int
    """Slot variables per weight (Adam's m and v; RMSprop's velocity)."""
    update: Callable
    """update(optimizer, gradient, variable, slots, rate): one step of one weight."""
    rate: Callable = lambda optimizer, lr, local_step: lr
    """rate(optimizer, lr, local_step): the step's rate, the same for every weight,
    computed once a step. Keras computes Adam's for each weight: the same
    operations on the same values. Once, the blog's model's traced epoch holds 4
    square roots and 8 powers fewer (a square root costs about 4 ms of
    TensorFlow's conversion to XLA in every process that loads the program)."""


def _adam_rate(optimizer, lr, local_step):
    beta_1_power = tf.pow(tf.constant(optimizer.beta_1, tf.float32), local_step)
    beta_2_power = tf.pow(tf.constant(optimizer.beta_2, tf.float32), local_step)
    return lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)


def _adam(optimizer, gradient, variable, slots, alpha):
    m, v = slots
    m.assign_add((gradient - m) * (1 - optimizer.beta_1))
    v.assign_add((tf.square(gradient) - v) * (1 - optimizer.beta_2))
    variable.assign_sub((m * alpha) / (tf.sqrt(v) + optimizer.epsilon))


def _rmsprop(optimizer, gradient, variable, slots, lr):
    (velocity,) = slots
    velocity.assign(optimizer.rho * velocity + (1 - optimizer.rho) * tf.square(gradient))
    variable.assign_sub((lr * gradient) / tf.sqrt(velocity + optimizer.epsilon))


def _sgd(optimizer, gradient, variable, slots, lr):
    variable.assign_sub(gradient * lr)


RULES = {"adam": Rule(2, _adam, _adam_rate), "rmsprop": Rule(1, _rmsprop), "sgd": Rule(0, _sgd)}


class StackedOptimizer:
    """One optimizer for a group: `clipnorm` applied per run and per variable, as
    Keras applies it per variable. One step counter serves all runs: they all
    take every step."""

    def __init__(self, train):
        self.rule = RULES[train.optimizer]
        self.learning_rate = train.learning_rate
        self.clipnorm = train.clipnorm
        self.epsilon = None
        """Each run's epsilon, shape (runs,), set by `reset`."""
        self.beta_1, self.beta_2, self.rho = 0.9, 0.999, 0.9
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.slots: list[list[tf.Variable]] = []
        """Each weight's slot variables."""

    def build(self, variables: list[tf.Variable]) -> None:
        self.slots = [
            [tf.Variable(tf.zeros_like(v), trainable=False) for _ in range(self.rule.slots)] for v in variables
        ]
        self.epsilon = tf.Variable(tf.zeros(variables[0].shape[-1]), trainable=False)

    def reset(self, epsilons: list[float | None]) -> None:
        """Fresh slots and step count, and each run's epsilon (None: Keras 3's 1e-7)."""
        self.epsilon.assign([1e-7 if epsilon is None else epsilon for epsilon in epsilons])
        self.iterations.assign(0)
        protocol.zero([slot for slots in self.slots for slot in slots])

    def _clipped(self, gradient):
        """Keras' _clip_by_norm, with the norm over each run's own part."""
        axes = list(range(len(gradient.shape) - 1))
        l2sum = tf.reduce_sum(tf.square(gradient), axis=axes, keepdims=True)
        positive = l2sum > 0
        l2norm = tf.where(positive, tf.sqrt(tf.where(positive, l2sum, tf.ones_like(l2sum))), l2sum)
        return gradient * self.clipnorm / tf.maximum(l2norm, self.clipnorm)

    def apply(self, gradients, variables) -> None:
        lr = tf.constant(self.learning_rate, tf.float32)
        rate = self.rule.rate(self, lr, tf.cast(self.iterations + 1, tf.float32))
        for gradient, variable, slots in zip(gradients, variables, self.slots, strict=True):
            if self.clipnorm:
                gradient = self._clipped(gradient)
            self.rule.update(self, gradient, variable, slots, rate)
        self.iterations.assign_add(1)
