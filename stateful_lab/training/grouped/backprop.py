"""A small LSTM layer's backward pass written out: backpropagation through the
window's time steps for every run of a group, in place of TensorFlow's gradient
of the step loop.

TensorFlow differentiates a `tf.while_loop` by pushing every intermediate value
of every step onto stacks of their own, each zero-filled, then copied, then
popped by a second loop of generic gradient ops. Written out, a step keeps one
record (its gates and the state it leaves) and the backward loop is the
textbook one. The blog's model at 1,000 runs, two shards side by side, one
process, medians of 8 interleaved: 89.8 ms an epoch with TensorFlow's gradient,
78.6 ms written out (one core, 500 runs: 82.6 and 78.0 ms).

Used for the layers it is written for (`applies`): LSTM cells with Keras'
sigmoid gates, whose matrices are small enough to be fused (`shapes.fused`),
returning their last output only. Everything else keeps TensorFlow's gradient.
Its gradients equal TensorFlow's own within float32 rounding
(tests/test_grouped.py), and trained runs equal Keras within 1e-5 like every
grouped run."""

from __future__ import annotations

import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from stateful_lab.training.grouped.cells import expanded_dot


def applies(cell: str, gates: tuple[str, ...], runs_first: bool, sequences: bool) -> bool:
    """Whether a layer's backward pass is written out here (the module says which)."""
    return cell == "lstm" and gates == ("sigmoid",) and not runs_first and not sequences


def records(lanes: int, steps: int, units: int, runs: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Buffers for a window's records, (T + 1, B, columns, runs) each: the gates
    (entry t: step t's; entry T all ones, the forget gate the cell state meets
    after the last step, which no window writes), c and h (entry t + 1: the state
    step t leaves; entry 0: the starting state). A window writes every other entry
    before it reads it, so a training loop makes them once and passes each
    window's on to the next (`lstm_window`'s `buffers`): made for every window,
    XLA zero-filled them every batch (the blog's model, 504 runs on one core,
    medians of 30 epochs, three alternations: 64.5 ms an epoch made every batch,
    61.9 ms carried)."""
    gates = tf.concat([tf.zeros((steps, lanes, 4 * units, runs)), tf.ones((1, lanes, 4 * units, runs))], axis=0)
    return gates, tf.zeros((steps + 1, lanes, units, runs)), tf.zeros((steps + 1, lanes, units, runs))


def lstm_window(inputs, carried, kernel, recurrent, bias, buffers=None):
    """An LSTM layer over the window, inputs (B, T, F, runs), from the state
    `carried` ([h, c], each (B, units, runs)) with weights (F, 4 units, runs),
    (units, 4 units, runs) and (4 units, runs): the last output and the final
    state, as `GroupedLoop._layer` returns them, and the window's records, to be
    passed on as the next window's `buffers` (None: fresh ones, `records`). Its
    gates are Keras' sigmoid, computed as `cells.sigmoid_by_tanh` computes it,
    whose derivative is a (1 - a) for a gate value a."""
    steps = inputs.shape[1]
    if buffers is None:
        buffers = records(inputs.shape[0], steps, recurrent.shape[0], inputs.shape[-1])

    @tf.custom_gradient
    def window(inputs, h, c, kernel, recurrent, bias, gates, cs, hs):
        expanded_kernel, expanded_recurrent = kernel[None], recurrent[None]  # broadcast once: cells.expanded_dot
        units = recurrent.shape[0]
        # The four gates' activations as one expression over all columns, scale *
        # tanh(scale * z) + shift: 0.5 tanh(z / 2) + 0.5 (`cells.sigmoid_by_tanh`,
        # the same operations) for i, f and o, and tanh(z) for g (times 1, plus 0:
        # exact). XLA computes them in one loop with the step's matrix products
        # and writes them as one record; the blog's model, 504 runs on one core,
        # medians of 30 interleaved epochs: 67.7 ms an epoch with four gates and
        # four records, 65.6 ms with one.
        scale = tf.constant([0.5] * (2 * units) + [1.0] * units + [0.5] * units)[:, None]
        shift = tf.constant([0.5] * (2 * units) + [0.0] * units + [0.5] * units)[:, None]

        def step(index, h, c, gates, cs, hs):
            x = tf.gather(inputs, index, axis=1)
            z = expanded_dot(x, expanded_kernel)
            z = z + expanded_dot(h, expanded_recurrent)
            z = z + bias
            a = scale * tf.tanh(scale * z) + shift
            i, f, g, o = tf.split(a, 4, axis=1)
            c_next = f * c + i * g
            h_next = o * tf.tanh(c_next)
            gates = xla.dynamic_update_slice(gates, a[None], [index, 0, 0, 0])
            cs = xla.dynamic_update_slice(cs, c_next[None], [index + 1, 0, 0, 0])
            hs = xla.dynamic_update_slice(hs, h_next[None], [index + 1, 0, 0, 0])
            return index + 1, h_next, c_next, gates, cs, hs

        # A step's record: its gates (entry t of `gates`) and the state it leaves
        # (entry t + 1 of `cs` and `hs`; entry 0 holds the starting state). (Gates and
        # state written as one concatenated record, the write cost more than the
        # step's gates, XLA picking each element's source in the fused write: 76.1
        # against 70.3 ms. Recording the state a step starts from instead, XLA
        # copied the loop's carried h and c every step, to keep them for the
        # record while the new ones took their place.)
        cs = xla.dynamic_update_slice(cs, c[None], [0, 0, 0, 0])
        hs = xla.dynamic_update_slice(hs, h[None], [0, 0, 0, 0])
        _, h_last, c_last, gates, cs, hs = tf.while_loop(
            lambda index, *_: index < steps, step, (tf.constant(0), h, c, gates, cs, hs), maximum_iterations=steps
        )

        def gradient(d_h, d_c, *_):
            d_c = tf.zeros_like(c_last) if d_c is None else d_c

            # The loop carries the gradient of the cell state a step leaves as it
            # reached the next step, before that step's forget gate (entry t + 1 of
            # the gates; entry T: ones), and applies the gate when it takes it up.
            # (Applied at the end of the step instead, XLA copied the carried
            # gradients every step, both the old ones and their replacements being
            # live at once; the blog's model, 504 runs on one core, medians of 30
            # interleaved epochs: 71.4 ms before, 65.1 ms after.)
            def step_back(index, d_h, d_c, d_kernel, d_recurrent, d_bias, d_inputs):
                i, f, g, o = tf.split(tf.gather(gates, index), 4, axis=1)
                c_before, c_after, h_before = tf.gather(cs, index), tf.gather(cs, index + 1), tf.gather(hs, index)
                tanh_c = tf.tanh(c_after)
                d_c = d_c * tf.gather(gates, index + 1)[:, units : 2 * units] + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat(
                    [
                        d_c * g * (i * (1 - i)),
                        d_c * c_before * (f * (1 - f)),
                        d_c * i * (1 - g * g),
                        d_h * tanh_c * (o * (1 - o)),
                    ],
                    axis=1,
                )  # (B, 4 units, runs)
                x = tf.gather(inputs, index, axis=1)
                d_kernel += tf.reduce_sum(x[:, :, None] * d_z[:, None], axis=0)
                d_recurrent += tf.reduce_sum(h_before[:, :, None] * d_z[:, None], axis=0)
                d_bias += tf.reduce_sum(d_z, axis=0)
                d_inputs = d_inputs.write(index, tf.reduce_sum(d_z[:, None] * expanded_kernel, axis=2))
                d_h = tf.reduce_sum(d_z[:, None] * expanded_recurrent, axis=2)
                return index - 1, d_h, d_c, d_kernel, d_recurrent, d_bias, d_inputs

            start = (tf.constant(steps - 1), d_h, d_c, tf.zeros_like(kernel), tf.zeros_like(recurrent))
            d_inputs = tf.TensorArray(tf.float32, size=steps)
            _, d_h, d_c, d_kernel, d_recurrent, d_bias, d_inputs = tf.while_loop(
                lambda index, *_: index >= 0,
                step_back,
                (*start, tf.zeros_like(bias), d_inputs),
                maximum_iterations=steps,
            )
            d_c = d_c * gates[0, :, units : 2 * units]  # through the first step's forget gate, to the starting state
            d_inputs = tf.transpose(d_inputs.stack(), [1, 0, 2, 3])
            return d_inputs, d_h, d_c, d_kernel, d_recurrent, d_bias, None, None, None

        return (h_last, c_last, gates, cs, hs), gradient

    h, c = carried
    weights = (tf.convert_to_tensor(weight) for weight in (kernel, recurrent, bias))
    h, c, *buffers = window(inputs, h, c, *weights, *buffers)
    return h, [h, c], buffers
