"""random_series: one uniform series cut into windows by a layout ("How can a
custom training loop leverage stateful LSTMs?"); the target is the first feature
of the window's last step, or independent noise ("Does Keras LSTM with
stateful=True maintain gradient flow across batches?"). A regression task."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import TaskData, register
from stateful_lab.tasks.batching import LAYOUTS, window_count


@register
class RandomSeries(TaskData):
    task: Literal["random_series"] = "random_series"
    """A uniform random series, a regression target."""
    series_length: int = Field(1000, ge=1)
    """Steps in each of the train and test series (default 1000)."""
    layout: Literal["streams", "blocks"] = "streams"
    """How windows fill batches: streams keeps lane i continuous across batches,
    blocks puts consecutive windows side by side."""
    target: Literal["last_value", "noise"] = "last_value"
    """What to predict: the first feature of the window's last step, or independent
    uniform noise."""

    classification: ClassVar[bool] = False
    value_keys: ClassVar[frozenset[str]] = frozenset({"layout", "target"})

    def problems(self, batch_size: int) -> list[str]:
        if window_count(self.series_length, self.timesteps, batch_size, self.layout) == 0:
            return [
                f"train.batch_size: {batch_size} windows of {self.timesteps} steps need a series of at "
                f"least {batch_size * self.timesteps} steps, but data.series_length is "
                f"{self.series_length}; lower the batch size or lengthen the series"
            ]
        return []

    def generate(self, batch_size: int, rng: np.random.Generator):
        arrays = []
        for _ in ("train", "test"):
            series = rng.random((self.series_length, self.features), dtype=np.float32)
            x = LAYOUTS[self.layout](series, self.timesteps, batch_size)
            y = x[:, -1, 0].copy() if self.target == "last_value" else rng.random(len(x), dtype=np.float32)
            arrays += [x, y]
        return tuple(arrays)

    def notes(self, train_windows: int, batch_size: int) -> list[str]:
        return [
            f"note: layout {self.layout} uses {train_windows * self.timesteps} of {self.series_length} "
            f"steps per series ({train_windows // batch_size} batches of {batch_size} windows of "
            f"{self.timesteps} steps)"
        ]

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        windows = window_count(self.series_length, self.timesteps, batch_size, self.layout)
        return 2 * (self.series_length * self.features + windows * (self.timesteps * self.features + 1)), windows

    def tiny(self, batch_size: int):
        return {"series_length": 8 * batch_size * self.timesteps}
