"""collocated: the label of lane i in batch k is the first bit of lane i in batch
k-1 (the blog post "stateful option in Keras LSTM", experiment 2), the sample a
stateful model has just carried its state over from. With batch size 1 it is the
previous sample's first bit, the article's retry."""

from __future__ import annotations

from typing import Literal

import numpy as np

from stateful_lab.tasks.base import SampleTask, register
from stateful_lab.tasks.first_timestep import first_bit_inputs


@register
class Collocated(SampleTask):
    task: Literal["collocated"] = "collocated"
    """Label = the first bit of the same lane one batch earlier."""

    def generate(self, batch_size: int, rng: np.random.Generator):
        x_train = first_bit_inputs(self.train_samples, self.timesteps, rng)
        y_train = collocated_labels(x_train, batch_size, rng)
        x_test = first_bit_inputs(self.test_samples, self.timesteps, rng)
        y_test = collocated_labels(x_test, batch_size, rng)
        return x_train, y_train, x_test, y_test


def collocated_labels(x: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """y[k*B + i] = x[(k-1)*B + i, 0, 0]: the first bit of the same lane one batch
    earlier. Batch 0 has no earlier batch and gets random labels."""
    y = np.empty(len(x), dtype=np.float32)
    y[batch_size:] = x[:-batch_size, 0, 0]
    y[:batch_size] = rng.integers(0, 2, size=min(batch_size, len(x)))
    return y
