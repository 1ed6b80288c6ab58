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

from stateful_lab.training.grouped.cells import expanded_dot


def applies(cell: str, gates: tuple[str, ...], runs_first: bool, sequences: bool) -> bool:
    """Whether a layer's backward pass is written out here (the module says which)."""
    return cell == "lstm" and gates == ("sigmoid",) and not runs_first and not sequences


def lstm_window(inputs, carried, kernel, recurrent, bias):
    """An LSTM layer over the window, inputs (B, T, F, runs), from the state
    `carried` ([h, c], each (B, units, runs)) with weights (F, 4 units, runs),
    (units, 4 units, runs) and (4 units, runs): the last output and the final
    state, as `GroupedLoop._layer` returns them. Its gates are Keras' sigmoid,
    computed as `cells.sigmoid_by_tanh` computes it, whose derivative is a (1 - a)
    for a gate value a."""
    steps = inputs.shape[1]

    @tf.custom_gradient
    def window(inputs, h, c, kernel, recurrent, bias):
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

        def step(index, h, c, gates, states):
            x = tf.gather(inputs, index, axis=1)
            z = expanded_dot(x, expanded_kernel)
            z = z + expanded_dot(h, expanded_recurrent)
            z = z + bias
            a = scale * tf.tanh(scale * z) + shift
            i, f, g, o = tf.split(a, 4, axis=1)
            c_next = f * c + i * g
            h_next = o * tf.tanh(c_next)
            gates = gates.write(index, a)
            states = tuple(array.write(index + 1, value) for array, value in zip(states, (c_next, h_next)))
            return index + 1, h_next, c_next, gates, states

        # A step's record: its gates (entry t of `gates`) and the state it leaves
        # (entry t + 1 of `states`; entry 0 holds the starting state). (Gates and
        # state written as one concatenated record, the write cost more than the
        # step's gates, XLA picking each element's source in the fused write: 76.1
        # against 70.3 ms. Recording the state a step starts from instead, XLA
        # copied the loop's carried h and c every step, to keep them for the
        # record while the new ones took their place.)
        gates = tf.TensorArray(tf.float32, size=steps)
        states = tuple(tf.TensorArray(tf.float32, size=steps + 1).write(0, value) for value in (c, h))
        _, h_last, c_last, gates, states = tf.while_loop(
            lambda index, *_: index < steps, step, (tf.constant(0), h, c, gates, states), maximum_iterations=steps
        )
        gates = gates.stack()  # (T, B, 4 units, runs)
        cs, hs = (array.stack() for array in states)  # each (T + 1, B, units, runs)

        def gradient(d_h, d_c):
            d_c = tf.zeros_like(c_last) if d_c is None else d_c
            # The loop carries the gradient of the cell state a step leaves as it
            # reached the next step, before that step's forget gate (`forget_next`,
            # ones after the last step), and applies the gate when it takes it up.
            # (Applied at the end of the step instead, XLA copied the carried
            # gradients every step, both the old ones and their replacements being
            # live at once; the blog's model, 504 runs on one core, medians of 30
            # interleaved epochs: 71.4 ms before, 65.1 ms after.)
            forget = gates[:, :, units : 2 * units]
            forget_next = tf.concat([forget[1:], tf.ones_like(forget[:1])], axis=0)

            def step_back(index, d_h, d_c, d_kernel, d_recurrent, d_bias, d_inputs):
                i, f, g, o = tf.split(tf.gather(gates, index), 4, axis=1)
                c_before, c_after, h_before = tf.gather(cs, index), tf.gather(cs, index + 1), tf.gather(hs, index)
                tanh_c = tf.tanh(c_after)
                d_c = d_c * tf.gather(forget_next, index) + d_h * o * (1 - tanh_c * tanh_c)
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
            d_c = d_c * forget[0]  # through the first step's forget gate, to the starting state
            return tf.transpose(d_inputs.stack(), [1, 0, 2, 3]), d_h, d_c, d_kernel, d_recurrent, d_bias

        return (h_last, c_last), gradient

    h, c = carried
    h, c = window(inputs, h, c, *(tf.convert_to_tensor(weight) for weight in (kernel, recurrent, bias)))
    return h, [h, c]
