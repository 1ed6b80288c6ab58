"""What a model's shape implies, without TensorFlow: the weight blocks of each
cell, and which of a group's matrix products are small enough to fuse. Kept free
of TensorFlow so that planning and the memory estimate can run before a pool's
workers start (each importing TensorFlow while this process plans)."""

from __future__ import annotations

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
"""Weight blocks per recurrent cell: LSTM i, f, c, o; GRU z, r, h; SimpleRNN one."""

FUSED_DOT_SIZE = 4096
"""n * k * m up to which products are fused (both forms timed in commit 7bfb5f4)."""


def fused(n: int, k: int, m: int) -> bool:
    """Whether an (n, k) x (k, m) product is small enough to fuse (a broadcast
    multiply and a sum, `grouped.cells.fused_dot`) rather than batched."""
    return n * k * m <= FUSED_DOT_SIZE
