"""lag_copy: bit streams whose target at every step is the bit `lag` steps
earlier (0 before the stream starts). Inside a window a model can learn the copy;
a window's first `lag` targets need the previous window, which only carried state
provides, and only if the lane continues. Explains when state helps."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import TaskData, register
from stateful_lab.tasks.batching import block_windows, streams_to_windows


@register
class LagCopy(TaskData):
    task: Literal["lag_copy"] = "lag_copy"
    """Per-step copy of the bit `lag` steps back."""
    stream_length: int = Field(1000, ge=1)
    """Steps in each of the B train and B test bit streams (default 1000)."""
    lag: int = Field(1, ge=0)
    """How far back the copied bit is: target[t] = bit[t - lag]."""
    layout: Literal["streams", "blocks"] = "streams"
    """streams: B independent streams, one per lane; blocks: one stream of B times
    the length, its consecutive windows side by side in a batch (as the custom-loop
    article lays out its series)."""

    classification: ClassVar[bool] = True
    per_step_targets: ClassVar[bool] = True
    value_keys: ClassVar[frozenset[str]] = frozenset({"lag", "layout"})

    def problems(self, batch_size: int) -> list[str]:
        problems = []
        if self.features != 1:
            problems.append(f"data.features: task {self.task} has exactly 1 feature, got {self.features}")
        if self.stream_length < self.timesteps:
            problems.append(
                f"data.stream_length: {self.stream_length} is shorter than one window of "
                f"data.timesteps {self.timesteps}; lengthen the streams"
            )
        elif self.lag >= self.stream_length:
            problems.append(f"data.lag: {self.lag} must be shorter than data.stream_length {self.stream_length}")
        return problems

    def generate(self, batch_size: int, rng: np.random.Generator):
        arrays = []
        for _ in ("train", "test"):
            if self.layout == "streams":
                streams = rng.integers(0, 2, size=(batch_size, self.stream_length)).astype(np.float32)
            else:
                streams = rng.integers(0, 2, size=(1, batch_size * self.stream_length)).astype(np.float32)
            targets = np.zeros_like(streams)
            targets[:, self.lag :] = streams[:, : streams.shape[1] - self.lag]
            if self.layout == "streams":
                arrays += [streams_to_windows(streams, self.timesteps), streams_to_windows(targets, self.timesteps)]
            else:
                arrays += [
                    block_windows(streams[0][:, None], self.timesteps, batch_size),
                    block_windows(targets[0][:, None], self.timesteps, batch_size),
                ]
        return tuple(arrays)

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        windows = batch_size * (self.stream_length // self.timesteps)
        return 2 * 2 * (batch_size * self.stream_length + windows * self.timesteps), windows

    def tiny(self, batch_size: int):
        return {"stream_length": max(8 * self.timesteps, self.lag + 1)}
