"""The grouped engine's program: a group's stacked weights, optimizer slots and
states, and its compiled functions (epochs, evaluation, forecasts), each
following the epoch protocol (`training.protocol`)."""

from __future__ import annotations

import json
import threading

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.config.experiment import Experiment
from stateful_lab.training import protocol
from stateful_lab.training.cache import recently_used
from stateful_lab.training.grouped import backprop
from stateful_lab.training.grouped.cells import STATES, StackedCell, dot, expanded_dot
from stateful_lab.training.grouped.optimizers import LOSSES, StackedOptimizer
from stateful_lab.training.models import initial_weights
from stateful_lab.training.shapes import fused

EPOCHS_PER_CALL = 100
"""Epochs a compiled call trains at most: a 1000-epoch forecasting group makes 10
calls after its first epoch, not 3000."""
FORECASTS_KEPT = 2**24
"""Forecast values (64 MB) a call may return: its epochs' forecasts, kept until
they are scored."""


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
        "outputs": experiment.data.output_units,
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
    _lock = threading.Lock()
    CACHED = 8
    """Compiled groups kept at once, least recently used dropped first."""

    @classmethod
    def for_group(cls, experiments: list[Experiment], shapes: tuple, slot: int = 0) -> GroupedLoop:
        """The compiled group for runs of `experiments` (one per run, agreeing on
        `program_settings`) whose arrays have `shapes`; re-used (weights, slots and
        states overwritten) by every group with the same settings, gate
        activations and shapes in the same `slot`. Groups trained side by side,
        each in a thread of its own, use different slots, so that none overwrites
        another's variables."""
        gates = tuple(sorted({experiment.model.recurrent_activation for experiment in experiments}))
        runs = len(experiments)
        key = json.dumps([program_settings(experiments[0]), gates, runs, shapes, slot], sort_keys=True)
        with cls._lock:
            group = recently_used(cls._cache, key, lambda: cls(experiments[0], runs, gates), cls.CACHED)
        group.key = key
        return group

    def __init__(self, experiment: Experiment, runs: int, gates: tuple[str, ...] = ()):
        spec, train = experiment.model, experiment.train
        self.runs = runs
        self.key = ""
        """The program's key (`for_group`): its settings, gates, runs, shapes and slot."""
        self.cell = spec.cell
        self.units = list(spec.units)
        self.batch_size = train.batch_size
        self.classification = experiment.classification
        self.per_step = experiment.per_step_targets
        self.reset_every = experiment.batches_between_resets
        self.gates = gates or (spec.recurrent_activation,)
        """The gate activations present in the group (each run's: `gate_of`)."""
        self.gate_of = tf.Variable(tf.zeros(runs, tf.int32), trainable=False)
        self.step = StackedCell(spec.cell, self.gates, self.gate_of)
        self.classes = experiment.data.output_units
        """The head's units: more than one for a categorical target (a softmax over them)."""
        self.output_activation = (
            (lambda logits: tf.nn.softmax(logits, axis=-2))  # over the classes; the runs are last
            if spec.output_activation == "softmax"
            else keras.activations.get(spec.output_activation)
        )
        self.loss = LOSSES[spec.loss]
        self.optimizer = StackedOptimizer(train)
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
        regime = experiment.data.forecast_set()
        self.forecasts = regime is not None
        self.walks = regime is not None and regime.walk is not None
        """Forecasting through entities in turn (`protocol.walk_through`)."""
        self.twin_states = self._state_variables(1) if self.forecasts else []
        # Loops are written as tf.while_loop, so AutoGraph has nothing to convert
        # (converting would add about a second to every trace).
        self.train_epochs = tf.function(self._train_epochs, jit_compile=True, autograph=False)
        self.train_epoch = tf.function(self._train_epoch, jit_compile=True, autograph=False)
        """Training alone, an epoch a call (for the bench; compiled only if called)."""

    def variables(self) -> list[tf.Variable]:
        """Every variable of the group, in a fixed order (a stored graph names
        its captured variables by their places here: `stored`)."""
        optimizer = self.optimizer
        slots = [slot for weight_slots in optimizer.slots for slot in weight_slots]
        fixed = [optimizer.iterations, optimizer.epsilon, self.gate_of, self.carries, self.primes, self.resets_each]
        return [*self.weights, *slots, *fixed, *self._flat(self.states), *self._flat(self.twin_states)]

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
    def lane_starts(starts: list[np.ndarray]) -> tf.Tensor:
        """Each run's lane starts as (batches, B, runs)."""
        return tf.constant(np.stack(starts, axis=-1))

    @staticmethod
    def forecast_inputs(forecasts: list) -> tuple[tf.Tensor, tf.Tensor]:
        """Each run's priming and test windows as (windows, 1, T, F, runs); through
        entities, each run's windows so and where it zeroes, (windows, runs)."""
        if forecasts[0].walk is not None:
            return (
                tf.constant(np.stack([forecast.walk.windows[:, None] for forecast in forecasts], axis=-1)),
                tf.constant(np.stack([forecast.walk.zero_before for forecast in forecasts], axis=-1)),
            )
        return (
            tf.constant(np.stack([forecast.x_prime[:, None] for forecast in forecasts], axis=-1)),
            tf.constant(np.stack([forecast.x_test[:, None] for forecast in forecasts], axis=-1)),
        )

    # -- the model -------------------------------------------------------------

    def _forward(self, x, states, buffers=None):
        """Predictions (B, 1, runs), or (B, T, 1, runs) per step, for inputs (B, T,
        F, runs) from `states` (zero for runs that do not carry state), and the
        states after the last step, as Keras' layers compute them; and the records
        of the layers whose backward pass is written out, by layer, kept in
        `buffers` (as `_record_buffers` makes them; None: fresh ones)."""
        weights = self.weights
        hidden = x
        final = []
        records = {}
        carries = self.carries > 0
        for layer in range(len(self.units)):
            kernel, recurrent, bias = weights[3 * layer : 3 * layer + 3]
            carried = [tf.where(carries, value, tf.zeros_like(value)) for value in states[layer]]
            sequences = self.per_step or layer < len(self.units) - 1
            kept = (buffers or {}).get(layer)
            hidden, carried, kept = self._layer(hidden, carried, kernel, recurrent, bias, sequences, kept)
            final.append(carried)
            if kept is not None:
                records[layer] = kept
        dense_kernel, dense_bias = weights[-2:]
        if self.per_step:  # the Dense head at every step
            lanes, steps = tf.shape(hidden)[0], hidden.shape[1]
            flat = tf.reshape(hidden, (-1, hidden.shape[2], self.runs))
            logits = dot(flat, dense_kernel) + dense_bias[None]
            return self.output_activation(tf.reshape(logits, (lanes, steps, 1, self.runs))), final, records
        return self.output_activation(dot(hidden, dense_kernel) + dense_bias[None]), final, records

    def _record_buffers(self, lanes: int, steps: int) -> dict:
        """Buffers for the records of the layers whose backward pass is written
        out, by layer (`backprop.records`), for windows of `lanes` x `steps`."""
        buffers = {}
        for layer, units in enumerate(self.units):
            columns = self.weights[3 * layer + 1].shape[1]
            sequences = self.per_step or layer < len(self.units) - 1
            if backprop.applies(self.cell, self.gates, not fused(lanes, units, columns), sequences):
                buffers[layer] = backprop.records(lanes, steps, units, self.runs)
        return buffers

    def _layer(self, inputs, carried, kernel, recurrent, bias, sequences: bool, buffers=None):
        """One recurrent layer over the window (B, T, F, runs): every step's output
        (B, T, units, runs) if `sequences`, else the last step's (B, units, runs);
        the final state; and, if its backward pass is written out, its records
        (kept in `buffers`, `backprop.lstm_window`), else None. The steps run in a loop (unrolled, XLA compiled for
        longer and ran slower: 371 against 221 ms an epoch at 1,000 runs, the blog's
        model). A large layer is turned runs-first for the
        window, as batched matrix products want it, and back (`cells.dot`)."""
        lanes, steps = inputs.shape[0], inputs.shape[1]
        runs_first = not fused(lanes, recurrent.shape[0], recurrent.shape[1])
        if backprop.applies(self.cell, self.gates, runs_first, sequences):  # its backward pass written out
            return backprop.lstm_window(inputs, carried, kernel, recurrent, bias, buffers)
        if runs_first:
            inputs = tf.transpose(inputs, [3, 0, 1, 2])  # (runs, B, T, F)
            kernel, recurrent = tf.transpose(kernel, [2, 0, 1]), tf.transpose(recurrent, [2, 0, 1])
            carried = [tf.transpose(value, [2, 0, 1]) for value in carried]
            bias = tf.transpose(bias, [len(bias.shape) - 1, *range(len(bias.shape) - 1)])
            product, gate_axis, time_axis = tf.matmul, 2, 2
        else:  # the weights broadcast once, outside the loop (`cells.expanded_dot` says why)
            kernel, recurrent = kernel[None], recurrent[None]
            product, gate_axis, time_axis = expanded_dot, 1, 1
        biases = self.step.biases(bias, runs_first)

        def body(step, carried, *outputs):
            x = tf.gather(inputs, step, axis=time_axis)
            output, carried = self.step.step(x, carried, kernel, recurrent, biases, product, gate_axis)
            return step + 1, carried, *(array.write(step, output) for array in outputs)

        # A small layer that returns its last output only keeps no output per step:
        # a cell's output is its new h, so the last one is the final state's h. (A
        # large layer keeps them: read from the final state, the head's batched
        # product rounded differently, and vowels_speaker's figures moved by 1e-4.)
        keeps = sequences or runs_first
        kept = [tf.TensorArray(tf.float32, size=steps)] if keeps else []
        _, carried, *kept = tf.while_loop(
            lambda step, *_: step < steps, body, (tf.constant(0), carried, *kept), maximum_iterations=steps
        )
        outputs = kept[0] if keeps else None
        if runs_first:  # back to runs last
            carried = [tf.transpose(value, [1, 2, 0]) for value in carried]
            if sequences:
                return tf.transpose(outputs.stack(), [2, 0, 3, 1]), carried, None
            return tf.transpose(outputs.read(steps - 1), [1, 2, 0]), carried, None
        if sequences:
            return tf.transpose(outputs.stack(), [1, 0, 2, 3]), carried, None
        return carried[0], carried, None

    def _figures(self, y_true, y_pred):
        """Each run's mean loss and accuracy over a batch, shape (runs,)."""
        axes = list(range(len(y_pred.shape) - 1))
        loss = tf.reduce_mean(self.loss(y_true, y_pred), axis=axes)
        if self.classes > 1:  # the most probable class, against the class index
            predicted = tf.cast(tf.argmax(y_pred, axis=-2), y_true.dtype)
            correct = tf.cast(tf.equal(y_true[:, 0, :], predicted), tf.float32)
            return loss, tf.reduce_mean(correct, axis=0)
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
        of `count` entries would make a new program for every count.) Many epochs
        a call, because on short series TensorFlow's dispatch of three calls an
        epoch cost more than their arithmetic."""
        variables = self._flat(self.states)
        windows = forecast[1].shape[0] if forecast else 0
        size = self.epochs_per_call(windows)
        figures = [tf.TensorArray(tf.float32, size=size, element_shape=(self.runs,)) for _ in range(4)]
        shape = (windows, self.runs) if self.classes == 1 else (windows, self.classes, self.runs)
        forecasts = tf.TensorArray(tf.float32, size=size if forecast else 0, element_shape=shape)

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
        return max(1, min(EPOCHS_PER_CALL, FORECASTS_KEPT // max(1, windows * self.classes * self.runs)))

    def _train_epoch(self, x_batches, y_batches, starts=None):
        """Every batch in order with an optimizer step for every run; each run's
        mean loss and accuracy over the epoch, shape (runs,) each. `starts`: the
        lanes that take their next entity before each batch, (batches, B, runs)."""

        def step(index, loss_sum, correct_sum, buffers):
            protocol.zero_before(index, self.reset_every, self._flat(self.states))
            if starts is not None:
                protocol.zero_lanes(self._flat(self.states), starts[index])
            with tf.GradientTape() as tape:
                y_pred, final, buffers = self._forward(x_batches[index], self.states, buffers)
                loss, correct = self._figures(y_batches[index], y_pred)
                total = tf.reduce_sum(loss)  # runs never mix: d total / d loss_r = 1
            gradients = tape.gradient(total, self.weights)
            self.optimizer.apply(gradients, self.weights)
            self._carry(self.states, final)
            return loss_sum + loss, correct_sum + correct, buffers

        # The written-out layers' records: made once, each batch's passed on to the next.
        buffers = self._record_buffers(x_batches.shape[1], x_batches.shape[2])
        return self._mean_over_batches(step, x_batches, buffers)

    def _evaluate(self, x_batches, y_batches, starts=None):
        """The test set in order for every run, from a zero state that is then put back."""

        def step(index, loss_sum, correct_sum):
            protocol.zero_before(index, self.reset_every, self._flat(self.states))
            if starts is not None:
                protocol.zero_lanes(self._flat(self.states), starts[index])
            y_pred, final, _ = self._forward(x_batches[index], self.states)
            self._carry(self.states, final)
            loss, correct = self._figures(y_batches[index], y_pred)
            return loss_sum + loss, correct_sum + correct

        return protocol.evaluated_from_zero(self._flat(self.states), lambda: self._mean_over_batches(step, x_batches))

    def _mean_over_batches(self, step, x_batches, *carried):
        """Run `step(index, loss_sum, correct_sum, *carried)` over the batches in
        order, each batch's `carried` (returned after the sums) passed on to the
        next; each run's mean loss and accuracy."""
        batches = tf.shape(x_batches)[0]
        zeros = tf.zeros(self.runs)
        _, loss_sum, correct_sum, *_ = tf.while_loop(
            lambda index, *_: index < batches,
            lambda index, *sums: (index + 1, *step(index, *sums)),
            (tf.constant(0), zeros, zeros, *carried),
        )
        count = tf.cast(batches, tf.float32)
        return loss_sum / count, correct_sum / count

    def _forecast(self, first, second):
        """Walk-forward forecasts of every run, shape (windows, runs), each run
        priming and resetting as its own regime says (`protocol.walk`; inputs as
        `forecast_inputs` gives them)."""

        def step(window):
            y_pred, final, _ = self._forward(window, self.twin_states)
            self._carry(self.twin_states, final)
            return y_pred[0, 0] if self.classes == 1 else y_pred[0]  # (runs,), or (classes, runs)

        states = self._flat(self.twin_states)
        return protocol.walk(step, states, (first, second), self.primes, self.resets_each, self.walks)

    @staticmethod
    def _flat(states) -> list[tf.Variable]:
        return [variable for layer in states for variable in layer]
