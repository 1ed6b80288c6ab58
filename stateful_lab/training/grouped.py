"""Many runs of one shape trained as one: the `loop` trainer vectorized over runs.

Runs that share every graph setting (the seeds of a variant, and sweep points that
differ only in data values) train together in one XLA-compiled program. Each
weight, optimizer slot, state and input is one tensor stacked over runs, with the
run as the last axis, (..., runs): every operation a single run made is one
operation for all runs, vectorized along that axis, so the fixed cost of
launching each small operation is paid once for the whole group instead of once
per run. (Runs last, because the other axes are tiny, a few units or lanes, and
the last axis is the one the CPU's vector instructions run along: measured, runs
last trained 2.5x faster than runs first at 100 runs.)

Runs need not come from one config: what the compiled program depends on is
`program_settings` (the model's shape, loss, optimizer and lanes); what it does
not, each run has its own value of (its epochs, whether it resets its state at
each epoch's start, its optimizer's epsilon, its gates' activation, and how a
forecasting run primes and resets its state). So one program serves the seeds,
variants and sweep points of several configs at once.

Runs never mix: the loss the gradient is taken of is the sum of the runs' own
losses, so each run's weights get exactly their own run's gradient, and the
optimizers are written out element-wise (Keras 3's update rules, per-run gradient
clipping), so each run keeps its own slots. Each run has its own data, initial
weights (those of the Keras model `build_model` makes for its seed) and state.
A group gives the same figures as the runs trained one at a time by the `loop`
trainer, within 1e-5 (tests/test_grouped.py).
"""

from __future__ import annotations

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import Experiment
from stateful_lab.training import protocol
from stateful_lab.training.cache import recently_used
from stateful_lab.training.models import GATES, RECURRENT_ACTIVATIONS, initial_weights

STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1}
"""State tensors per layer: an LSTM carries h and c, the others h only."""
LOSSES = {
    "mse": lambda y_true, y_pred: tf.square(y_true - y_pred),
    "mae": lambda y_true, y_pred: tf.abs(y_true - y_pred),
    "binary_crossentropy": keras.ops.binary_crossentropy,
}
"""Each loss element-wise; Keras' loss objects average them over the batch (and
steps), as `_figures` does per run."""


def program_settings(experiment: Experiment) -> dict:
    """What a group's compiled program depends on: runs that agree on it (and on
    their arrays' shapes) can train as one group, whatever their config. The
    settings each run has its own value of in a group (`GroupedLoop.load`) are
    left out: epochs, the reset at an epoch's start (train.reset epoch or never),
    epsilon, the recurrent activation, and a forecast's priming and resets."""
    spec, train = experiment.model, experiment.train
    return {
        "cell": spec.cell,
        "units": list(spec.units),
        "features": experiment.data.features,
        "output_activation": spec.output_activation,
        "loss": spec.loss,
        "batch_size": train.batch_size,
        "optimizer": train.optimizer,
        "learning_rate": train.learning_rate,
        "clipnorm": train.clipnorm,
        "classification": experiment.classification,
        "per_step": experiment.per_step_targets,
        "reset_every": experiment.batches_between_resets,
        "forecasts": experiment.data.forecast_set() is not None,
    }


class GroupedLoop:
    """A group of `runs` runs of one experiment's graph settings: stacked weights,
    optimizer slots and states, and the compiled epoch, evaluation and forecast
    functions over all of them.

    Stateless and stateful runs share a group: each run has a state, and a run
    that does not carry it (`carries` 0) starts every batch and every forecast
    from zero, as a stateless Keras layer does. (wide_window runs see windows
    twice as long, so they form groups of their own.)"""

    _cache: dict[str, GroupedLoop] = {}
    CACHED = 8
    """Compiled groups kept at once, least recently used dropped first."""

    @classmethod
    def for_group(cls, experiments: list[Experiment], shapes: tuple) -> GroupedLoop:
        """The compiled group for runs of `experiments` (one per run, agreeing on
        `program_settings`) whose arrays have `shapes`; re-used (weights, slots and
        states overwritten) by every group with the same settings, gate
        activations and shapes."""
        gates = tuple(sorted({experiment.model.recurrent_activation for experiment in experiments}))
        runs = len(experiments)
        key = json.dumps([program_settings(experiments[0]), gates, runs, shapes], sort_keys=True)
        return recently_used(cls._cache, key, lambda: cls(experiments[0], runs, gates), cls.CACHED)

    def __init__(self, experiment: Experiment, runs: int, gates: tuple[str, ...] = ()):
        spec, train = experiment.model, experiment.train
        self.runs = runs
        self.cell = spec.cell
        self.units = list(spec.units)
        self.batch_size = train.batch_size
        self.classification = experiment.classification
        self.per_step = experiment.per_step_targets
        self.reset_every = experiment.batches_between_resets
        self.activation = keras.activations.tanh
        self.gates = gates or (spec.recurrent_activation,)
        """The gate activations present in the group; with several, each run's is
        chosen by `gate_of` (computed for every run, selected per run)."""
        self.gate_of = tf.Variable(tf.zeros(runs, tf.int32), trainable=False)
        self.output_activation = keras.activations.get(spec.output_activation)
        self.loss = LOSSES[spec.loss]
        self.optimizer = _Optimizer(train)
        self.weights = [
            tf.Variable(tf.zeros((*weight.shape, runs)), name=f"w{index}")
            for index, weight in enumerate(initial_weights(experiment, seed=0))
        ]
        self.optimizer.build(self.weights)
        self.carries = tf.Variable(tf.zeros(runs), trainable=False)
        """1 for a run whose state carries over between batches (stateful), else 0."""
        self.primes = tf.Variable(tf.zeros(runs, tf.bool), trainable=False)
        """Forecasting: whether a run primes its state on the training inputs."""
        self.resets_each = tf.Variable(tf.zeros(runs, tf.bool), trainable=False)
        """Forecasting: whether a run resets its state after each forecast."""
        self.states = self._state_variables(self.batch_size)
        self.forecasts = experiment.data.forecast_set() is not None
        self.twin_states = self._state_variables(1) if self.forecasts else []
        # Loops are written as tf.while_loop, so AutoGraph has nothing to convert:
        # converting took about a second of every trace.
        self.train_epochs = tf.function(self._train_epochs, jit_compile=True, autograph=False)
        self.train_epoch = tf.function(self._train_epoch, jit_compile=True, autograph=False)
        """Training alone, an epoch a call (for the bench; compiled only if called)."""

    def _state_variables(self, lanes: int) -> list[list[tf.Variable]]:
        return [
            [tf.Variable(tf.zeros((lanes, units, self.runs)), trainable=False) for _ in range(STATES[self.cell])]
            for units in self.units
        ]

    # -- loading and arranging -------------------------------------------------

    def load(self, weights: list[list[np.ndarray]], stateful: list[bool], experiments: list[Experiment]) -> None:
        """Each run's initial weights (in Keras' get_weights() order, one list per
        run, in group order), whether it is stateful, and its own settings (its
        experiment); fresh optimizer slots; zero states."""
        for index, variable in enumerate(self.weights):
            variable.assign(np.stack([run[index] for run in weights], axis=-1))
        self.carries.assign(np.array(stateful, dtype=np.float32))
        self.gate_of.assign([self.gates.index(e.model.recurrent_activation) for e in experiments])
        if self.forecasts:
            self.primes.assign([e.data.prime for e in experiments])
            self.resets_each.assign([e.data.forecast_reset == "each" for e in experiments])
        self.optimizer.reset([e.train.epsilon for e in experiments])
        self.reset_states()

    def reset_states(self) -> None:
        """Zero every run's state (an epoch's resets happen in `train_epochs`)."""
        protocol.zero(self._flat(self.states))

    def weights_of(self, run: int) -> list[np.ndarray]:
        """One run's weights, in Keras' get_weights() order."""
        return [variable[..., run].numpy() for variable in self.weights]

    def batches(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[tf.Tensor, tf.Tensor]:
        """Each run's samples as (batches, B, T, F, runs) inputs and (batches, B,
        ..., 1, runs) targets, in feeding order."""
        batches = len(xs[0]) // self.batch_size

        def stacked(arrays):
            return np.stack([array.reshape(batches, self.batch_size, *array.shape[1:]) for array in arrays], axis=-1)

        return tf.constant(stacked(xs)), tf.constant(stacked([y if y.ndim > 1 else y[:, None] for y in ys]))

    @staticmethod
    def forecast_inputs(forecasts: list) -> tuple[tf.Tensor, tf.Tensor]:
        """Each run's priming and test windows as (windows, 1, T, F, runs)."""
        return (
            tf.constant(np.stack([forecast.x_prime[:, None] for forecast in forecasts], axis=-1)),
            tf.constant(np.stack([forecast.x_test[:, None] for forecast in forecasts], axis=-1)),
        )

    # -- the model -------------------------------------------------------------

    def _forward(self, x, states):
        """Predictions (B, 1, runs), or (B, T, 1, runs) per step, for inputs (B, T,
        F, runs) from `states` (zero for runs that do not carry state), and the
        states after the last step, as Keras' layers compute them."""
        weights = self.weights
        hidden = x
        final = []
        carries = self.carries > 0
        for layer in range(len(self.units)):
            kernel, recurrent, bias = weights[3 * layer : 3 * layer + 3]
            carried = [tf.where(carries, value, tf.zeros_like(value)) for value in states[layer]]
            sequences = self.per_step or layer < len(self.units) - 1
            hidden, carried = self._layer(hidden, carried, kernel, recurrent, bias, sequences)
            final.append(carried)
        dense_kernel, dense_bias = weights[-2:]
        if self.per_step:  # the Dense head at every step
            lanes, steps = tf.shape(hidden)[0], hidden.shape[1]
            flat = tf.reshape(hidden, (-1, hidden.shape[2], self.runs))
            logits = _dot(flat, dense_kernel) + dense_bias[None]
            return self.output_activation(tf.reshape(logits, (lanes, steps, 1, self.runs))), final
        return self.output_activation(_dot(hidden, dense_kernel) + dense_bias[None]), final

    def _layer(self, inputs, carried, kernel, recurrent, bias, sequences: bool):
        """One recurrent layer over the window (B, T, F, runs): every step's output
        (B, T, units, runs) if `sequences`, else the last step's (B, units, runs);
        and the final state. The steps run in a loop (the whole window unrolled
        took XLA longer to compile and ran no faster: 23.2 s against 5.7 s to
        compile 20 steps). A large layer is turned runs-first for the window, as
        batched matrix products want it, and back (see `_dot`)."""
        lanes, steps = inputs.shape[0], inputs.shape[1]
        runs_first = lanes * recurrent.shape[0] * recurrent.shape[1] > FUSED_DOT_SIZE
        if runs_first:
            inputs = tf.transpose(inputs, [3, 0, 1, 2])  # (runs, B, T, F)
            kernel, recurrent = tf.transpose(kernel, [2, 0, 1]), tf.transpose(recurrent, [2, 0, 1])
            carried = [tf.transpose(value, [2, 0, 1]) for value in carried]
            bias = tf.transpose(bias, [len(bias.shape) - 1, *range(len(bias.shape) - 1)])
            biases = [bias[:, 0, None], bias[:, 1, None]] if self.cell == "gru" else [bias[:, None]]
            dot, gate_axis, time_axis = tf.matmul, 2, 2
        else:
            biases = [bias[0], bias[1]] if self.cell == "gru" else [bias]
            dot, gate_axis, time_axis = _fused_dot, 1, 1

        def body(step, carried, outputs):
            x = tf.gather(inputs, step, axis=time_axis)
            output, carried = self._step(x, carried, kernel, recurrent, biases, dot, gate_axis)
            return step + 1, carried, outputs.write(step, output)

        outputs = tf.TensorArray(tf.float32, size=steps)
        _, carried, outputs = tf.while_loop(
            lambda step, *_: step < steps, body, (tf.constant(0), carried, outputs), maximum_iterations=steps
        )
        if runs_first:  # back to runs last
            carried = [tf.transpose(value, [1, 2, 0]) for value in carried]
            if sequences:
                return tf.transpose(outputs.stack(), [2, 0, 3, 1]), carried
            return tf.transpose(outputs.read(steps - 1), [1, 2, 0]), carried
        if sequences:
            return tf.transpose(outputs.stack(), [1, 0, 2, 3]), carried
        return outputs.read(steps - 1), carried

    def gate(self, z):
        """Each run's gate activation of `z` (..., runs)."""
        if len(self.gates) == 1:
            return _GATES[self.gates[0]](z)
        value = _GATES[self.gates[0]](z)
        for index, name in enumerate(self.gates[1:], start=1):
            value = tf.where(tf.equal(self.gate_of, index), _GATES[name](z), value)
        return value

    def _step(self, inputs, carried, kernel, recurrent, biases, dot, axis):
        """One time step of every run's cell, in the order of Keras 3's cells;
        `axis` is the gates' axis."""
        if self.cell == "lstm":
            h, c = carried
            z = dot(inputs, kernel)
            z = z + dot(h, recurrent)
            z = z + biases[0]
            z0, z1, z2, z3 = tf.split(z, 4, axis=axis)
            c = self.gate(z1) * c + self.gate(z0) * self.activation(z2)
            h = self.gate(z3) * self.activation(c)
            return h, [h, c]
        if self.cell == "gru":  # reset_after=True, Keras 3's default: an input and a recurrent bias
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

    def _figures(self, y_true, y_pred):
        """Each run's mean loss and accuracy over a batch, shape (runs,)."""
        axes = list(range(len(y_pred.shape) - 1))
        loss = tf.reduce_mean(self.loss(y_true, y_pred), axis=axes)
        correct = tf.cast(tf.equal(y_true, tf.cast(y_pred > 0.5, y_true.dtype)), tf.float32)
        return loss, tf.reduce_mean(correct, axis=axes)

    def _carry(self, states, final) -> None:
        for layer_states, layer_final in zip(states, final, strict=True):
            for variable, value in zip(layer_states, layer_final, strict=True):
                variable.assign(value)

    # -- compiled functions -----------------------------------------------------

    def _train_epochs(self, first, count, resets, train, test, forecast=()):
        """Epochs `first` to `first + count - 1` (`count` at most `epochs_per_call`)
        in one call: each one's reset at its start (every run's state at epoch 0,
        else the runs where `resets` is true), training, evaluation and, with
        `forecast` inputs, forecasts. Each run's train and test loss and accuracy,
        shape (epochs_per_call, runs) each, and its forecasts, (epochs_per_call,
        windows, runs), of which the first `count` are the epochs'. (Their size is
        fixed, not `count`: XLA needs an array's size when it compiles, so arrays
        of `count` entries made a new program for every count.) One call for many
        epochs, where three calls an epoch (train, evaluate, forecast) spent more
        time in TensorFlow's function dispatch than in arithmetic on the
        forecasting tasks' short series: measured, 60 airline runs' 1000 epochs
        took 12.0 s, 4.4 s of it in the compiled programs."""
        variables = self._flat(self.states)
        windows = forecast[1].shape[0] if forecast else 0
        size = self.epochs_per_call(windows)
        figures = [tf.TensorArray(tf.float32, size=size, element_shape=(self.runs,)) for _ in range(4)]
        forecasts = tf.TensorArray(tf.float32, size=size if forecast else 0, element_shape=(windows, self.runs))

        def epoch(index, figures, forecasts):
            cleared = protocol.zero(variables, where=tf.logical_or(tf.equal(first + index, 0), resets))
            with tf.control_dependencies(cleared):
                values = [*self._train_epoch(*train)]
            with tf.control_dependencies(values):
                values += self._evaluate(*test)
            figures = [array.write(index, value) for array, value in zip(figures, values, strict=True)]
            if forecast:
                with tf.control_dependencies(values):
                    forecasts = forecasts.write(index, self._forecast(*forecast))
            return index + 1, figures, forecasts

        _, figures, forecasts = tf.while_loop(
            lambda index, *_: index < count, epoch, (tf.constant(0), figures, forecasts)
        )
        return [array.stack() for array in figures], forecasts.stack() if forecast else tf.zeros((size, 0, self.runs))

    def epochs_per_call(self, windows: int) -> int:
        """The most epochs `train_epochs` trains in a call, for forecasts of
        `windows` windows: EPOCHS_PER_CALL, or fewer where their forecasts would
        exceed FORECASTS_KEPT values."""
        return max(1, min(EPOCHS_PER_CALL, FORECASTS_KEPT // max(1, windows * self.runs)))

    def _train_epoch(self, x_batches, y_batches):
        """Every batch in order with an optimizer step for every run; each run's
        mean loss and accuracy over the epoch, shape (runs,) each."""

        def step(index, loss_sum, correct_sum):
            protocol.zero_before(index, self.reset_every, self._flat(self.states))
            with tf.GradientTape() as tape:
                y_pred, final = self._forward(x_batches[index], self.states)
                loss, correct = self._figures(y_batches[index], y_pred)
                total = tf.reduce_sum(loss)  # runs never mix: d total / d loss_r = 1
            gradients = tape.gradient(total, self.weights)
            self.optimizer.apply(gradients, self.weights)
            self._carry(self.states, final)
            return loss_sum + loss, correct_sum + correct

        return self._mean_over_batches(step, x_batches)

    def _evaluate(self, x_batches, y_batches):
        """The test set in order for every run, from a zero state that is then put back."""

        def step(index, loss_sum, correct_sum):
            protocol.zero_before(index, self.reset_every, self._flat(self.states))
            y_pred, final = self._forward(x_batches[index], self.states)
            self._carry(self.states, final)
            loss, correct = self._figures(y_batches[index], y_pred)
            return loss_sum + loss, correct_sum + correct

        return protocol.evaluated_from_zero(self._flat(self.states), lambda: self._mean_over_batches(step, x_batches))

    def _mean_over_batches(self, step, x_batches):
        """Run `step(index, loss_sum, correct_sum)` over the batches in order; each
        run's mean loss and accuracy."""
        batches = tf.shape(x_batches)[0]
        zeros = tf.zeros(self.runs)
        _, loss_sum, correct_sum = tf.while_loop(
            lambda index, *_: index < batches,
            lambda index, *sums: (index + 1, *step(index, *sums)),
            (tf.constant(0), zeros, zeros),
        )
        count = tf.cast(batches, tf.float32)
        return loss_sum / count, correct_sum / count

    def _forecast(self, x_prime, x_test):
        """Walk-forward forecasts of every run, shape (windows, runs), each run
        priming and resetting as its own regime says."""

        def step(window):
            y_pred, final = self._forward(window, self.twin_states)
            self._carry(self.twin_states, final)
            return y_pred[0, 0]

        return protocol.walk_forward(step, self._flat(self.twin_states), x_prime, x_test, self.primes, self.resets_each)

    @staticmethod
    def _flat(states) -> list[tf.Variable]:
        return [variable for layer in states for variable in layer]


class _Optimizer:
    """Keras 3's Adam, SGD and RMSprop update rules (keras/src/optimizers),
    element-wise on stacked variables, with `clipnorm` applied per run and per
    variable as Keras applies it per variable. One step counter serves all runs:
    they all take every step."""

    def __init__(self, train):
        self.kind = train.optimizer
        self.learning_rate = train.learning_rate
        self.clipnorm = train.clipnorm
        self.epsilon = None
        """Each run's epsilon, shape (runs,), set by `reset`."""
        self.beta_1, self.beta_2, self.rho = 0.9, 0.999, 0.9
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.slots: list[list[tf.Variable]] = []

    def build(self, variables: list[tf.Variable]) -> None:
        count = {"adam": 2, "rmsprop": 1, "sgd": 0}[self.kind]
        self.slots = [[tf.Variable(tf.zeros_like(v), trainable=False) for v in variables] for _ in range(count)]
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
        local_step = tf.cast(self.iterations + 1, tf.float32)
        for index, (gradient, variable) in enumerate(zip(gradients, variables, strict=True)):
            if self.clipnorm:
                gradient = self._clipped(gradient)
            if self.kind == "adam":
                m, v = self.slots[0][index], self.slots[1][index]
                beta_1_power = tf.pow(tf.constant(self.beta_1, tf.float32), local_step)
                beta_2_power = tf.pow(tf.constant(self.beta_2, tf.float32), local_step)
                alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
                m.assign_add((gradient - m) * (1 - self.beta_1))
                v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
                variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))
            elif self.kind == "rmsprop":
                velocity = self.slots[0][index]
                velocity.assign(self.rho * velocity + (1 - self.rho) * tf.square(gradient))
                variable.assign_sub((lr * gradient) / tf.sqrt(velocity + self.epsilon))
            else:
                variable.assign_sub(gradient * lr)
        self.iterations.assign_add(1)


_GATES = {name: keras.activations.get(function) for name, function in RECURRENT_ACTIVATIONS.items()}


def _dot(a, b):
    """Each run's matrix product, (n, k, runs) x (k, m, runs) -> (n, m, runs):
    `_fused_dot` for small matrices, else a batched matrix product."""
    if a.shape[0] is not None and a.shape[0] * a.shape[1] * b.shape[1] <= FUSED_DOT_SIZE:
        return _fused_dot(a, b)
    return tf.einsum("nkr,kmr->nmr", a, b)


def _fused_dot(a, b):
    """(n, k, runs) x (k, m, runs) -> (n, m, runs) as a broadcast multiply and a
    sum: one fused loop over all runs, vectorized along the run axis. For the
    lab's usual tiny matrices (a few units and lanes) it beats a batched matrix
    product, which pays a call per run; for larger ones it does not. Measured
    per training step at 30 runs, fused against batched: n k m = 4 3 12, 10.7 us
    against 23.2 us; 8 8 32, 38.5 against 49.1; 32 5 256, 1255 against 742; 32 64
    256, 27.8 ms against 5.0 ms."""
    return tf.reduce_sum(a[:, :, None, :] * b[None], axis=1)


EPOCHS_PER_CALL = 100
"""Epochs a compiled call trains at most: a 1000-epoch forecasting group makes 10
calls after its first epoch, not 3000."""
FORECASTS_KEPT = 2**24
"""Forecast values (64 MB) a call may return: its epochs' forecasts, kept until
they are scored."""

FUSED_DOT_SIZE = 4096
"""n * k * m up to which products are fused (8 * 8 * 32 = 2048 was faster that
way, 32 * 5 * 256 was not)."""


def bytes_per_run(experiment: Experiment, variant: str, arrays: list[np.ndarray]) -> int:
    """A generous estimate of one run's share of a group's memory: its arrays, its
    weights four times over (weights, gradients, two optimizer slots), and the
    activations one batch's gradient keeps (every gate of every step and layer)."""
    spec, train = experiment.model, experiment.train
    data_bytes = sum(array.size for array in arrays) * 4
    steps = experiment.data.timesteps * (2 if variant == "wide_window" else 1)
    activations = train.batch_size * steps * sum(spec.units) * (GATES[spec.cell] + 4) * 4
    return data_bytes + weight_count(experiment) * 4 * 4 + activations * 4


def weight_count(experiment: Experiment) -> int:
    """One run's weights: each recurrent layer's kernel, recurrent kernel and
    biases (two for a GRU), and the Dense head."""
    spec = experiment.model
    weights, inputs = 1 + spec.units[-1], experiment.data.features
    for units in spec.units:
        weights += (inputs + units + 2) * GATES[spec.cell] * units
        inputs = units
    return weights


def runs_in_cache(experiment: Experiment) -> int:
    """The most runs of `experiment` whose weights, gradients and two optimizer
    slots fit in CACHE_BYTES: larger groups of large layers run slower per run,
    their working set spilling out of the cache the workers share. Measured on
    the lab's previous machine (8 MB of L3) on stacked_clipnorm's 64- and 32-unit
    layers (30 thousand weights a run),
    seconds per run and epoch, training and evaluation: 0.150 in groups of 5,
    0.167 of 10, 0.161 of 15, 0.200 of 30. The blog's 3-unit model is never cut."""
    return max(1, CACHE_BYTES // (4 * 4 * weight_count(experiment)))


CACHE_BYTES = 4 * 2**20
"""Half the 8 MB L3 cache of the lab's previous machine's two cores, each
worker's share. Fixed rather than read from the machine: a large layer's run
can differ in its last bits with the size of its group (measured: a
stacked_clipnorm run alone against the same run in a group of 6 or 12, which
agree), so groups sized by the cache would make the figures depend on it."""


def memory_budget() -> int:
    """Bytes a group may take: a quarter of the memory available now, at most 4 GiB."""
    try:
        with open("/proc/meminfo") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        available = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) if hasattr(os, "sysconf") else 2**32
    return min(available // 4, 4 * 2**30)


def even_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into groups of at most `largest`, all of one size (one compiled
    program serves them all) where up to twice the fewest groups allow it, else
    as equal as possible."""
    fewest = max(1, math.ceil(runs / max(1, largest)))
    for groups in range(fewest, min(runs, 2 * fewest) + 1):
        if runs % groups == 0:
            return [runs // groups] * groups
    return split_sizes(runs, largest)


def split_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into the fewest groups of at most `largest`, as equal as possible."""
    groups = max(1, math.ceil(runs / max(1, largest)))
    base, extra = divmod(runs, groups)
    return [base + (index < extra) for index in range(groups)]
