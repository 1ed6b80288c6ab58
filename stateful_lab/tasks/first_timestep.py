"""first_timestep: the label is the sample's own first bit (the blog post
"stateful option in Keras LSTM", experiment 1). Nothing needs to cross a batch,
so a stateless LSTM solves it; with `sequence_length` > `timesteps` each sequence
is cut into windows fed as consecutive batches, and only the first window holds
the bit."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import SampleTask, register


@register
class FirstTimestep(SampleTask):
    task: Literal["first_timestep"] = "first_timestep"
    """Label = the sample's own first bit."""
    sequence_length: int | None = Field(None, ge=1)
    """Steps per sample sequence (default: timesteps). Longer sequences are cut into
    windows of `timesteps` fed as consecutive batches."""

    @property
    def windows_per_sequence(self) -> int:
        return self.sequence_length // self.timesteps

    def resolved(self, config_dir=None) -> FirstTimestep:
        return self.model_copy(update={"sequence_length": self.sequence_length or self.timesteps})

    def problems(self, batch_size: int) -> list[str]:
        problems = super().problems(batch_size)
        if self.sequence_length % self.timesteps:
            problems.append(
                f"data.sequence_length: {self.sequence_length} is not a multiple of data.timesteps "
                f"{self.timesteps}; sequences are cut into whole windows"
            )
        return problems

    def generate(self, batch_size: int, rng: np.random.Generator):
        x_train = first_bit_inputs(self.train_samples, self.sequence_length, rng)
        x_test = first_bit_inputs(self.test_samples, self.sequence_length, rng)
        return x_train, x_train[:, 0, 0].copy(), x_test, x_test[:, 0, 0].copy()


def first_bit_inputs(samples: int, timesteps: int, rng: np.random.Generator) -> np.ndarray:
    """Random bits, with the first step set to 1 in exactly half the samples."""
    x = np.zeros((samples, timesteps, 1), dtype=np.float32)
    x[:, 1:] = rng.integers(0, 2, size=(samples, timesteps - 1, 1))
    x[rng.choice(samples, size=samples // 2, replace=False), 0] = 1.0
    return x
