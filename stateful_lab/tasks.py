"""Synthetic tasks (DESIGN section 2), one generator function each, in a registry.

Every generator draws from the run's seeded `numpy.random.Generator`, train set
first, and returns arrays in feeding order (row k*B + i is lane i of batch k).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .batching import LAYOUTS, block_windows, cut_sequences, join_previous_window, streams_to_windows, trim_to_batches
from .config import DataConfig


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    """The run's seed, which also orders any shuffling."""
    notes: tuple[str, ...] = ()
    """What was dropped or left out, for the console."""


Generator = Callable[[DataConfig, int, np.random.Generator], tuple[np.ndarray, ...]]
TASKS: dict[str, Generator] = {}


def register(name: str) -> Callable[[Generator], Generator]:
    def add(generator: Generator) -> Generator:
        TASKS[name] = generator
        return generator
    return add


def make_dataset(data: DataConfig, batch_size: int, seed: int) -> Dataset:
    """Generate the task's train and test sets for one seed, cut to whole batches."""
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = TASKS[data.task](data, batch_size, rng)
    notes = []
    x_train, y_train, dropped_train = trim_to_batches(x_train, y_train, batch_size)
    x_test, y_test, dropped_test = trim_to_batches(x_test, y_test, batch_size)
    for name, dropped, kept in (("train", dropped_train, len(x_train)), ("test", dropped_test, len(x_test))):
        if dropped:
            notes.append(
                f"warning: dropped {dropped} {name} samples to make whole batches of {batch_size} "
                f"(kept {kept}); set a multiple of {batch_size}, or data.strict: true to refuse"
            )
    if x_train.shape[1] > data.timesteps:  # sequences longer than one window
        x_train, y_train = cut_sequences(x_train, y_train, data.timesteps, batch_size)
        x_test, y_test = cut_sequences(x_test, y_test, data.timesteps, batch_size)
    if data.task == "random_series":
        used = len(x_train) * data.timesteps
        notes.append(
            f"note: layout {data.layout} uses {used} of {data.series_length} steps per series "
            f"({len(x_train) // batch_size} batches of {batch_size} windows of {data.timesteps} steps)"
        )
    return Dataset(x_train, y_train, x_test, y_test, seed, tuple(notes))


def for_variant(dataset: Dataset, variant: str, batch_size: int) -> Dataset:
    """The inputs a variant sees: its lane's previous window joined in front for
    `wide_window`, the dataset itself otherwise."""
    if variant != "wide_window":
        return dataset
    return replace(
        dataset,
        x_train=join_previous_window(dataset.x_train, batch_size),
        x_test=join_previous_window(dataset.x_test, batch_size),
    )


def _first_bit_inputs(samples: int, timesteps: int, rng: np.random.Generator) -> np.ndarray:
    """Random bits, with the first step set to 1 in exactly half the samples."""
    x = np.zeros((samples, timesteps, 1), dtype=np.float32)
    x[:, 1:] = rng.integers(0, 2, size=(samples, timesteps - 1, 1))
    x[rng.choice(samples, size=samples // 2, replace=False), 0] = 1.0
    return x


@register("first_timestep")
def first_timestep(data: DataConfig, batch_size: int, rng: np.random.Generator):
    """Label = the sample's own first bit (blog experiment 1). With a
    sequence_length longer than timesteps, the first bit of a whole sequence,
    which make_dataset then cuts into windows."""
    length = data.sequence_length or data.timesteps
    x_train = _first_bit_inputs(data.train_samples, length, rng)
    x_test = _first_bit_inputs(data.test_samples, length, rng)
    return x_train, x_train[:, 0, 0].copy(), x_test, x_test[:, 0, 0].copy()


def collocated_labels(x: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """y[k*B + i] = x[(k-1)*B + i, 0, 0]: the first bit of the same lane one batch
    earlier. Batch 0 has no earlier batch and gets random labels."""
    y = np.empty(len(x), dtype=np.float32)
    y[batch_size:] = x[:-batch_size, 0, 0]
    y[:batch_size] = rng.integers(0, 2, size=min(batch_size, len(x)))
    return y


@register("collocated")
def collocated(data: DataConfig, batch_size: int, rng: np.random.Generator):
    """Label = the first bit of the collocated sample in the previous batch (blog
    experiment 2); with B = 1 it is the previous sample's first bit."""
    x_train = _first_bit_inputs(data.train_samples, data.timesteps, rng)
    y_train = collocated_labels(x_train, batch_size, rng)
    x_test = _first_bit_inputs(data.test_samples, data.timesteps, rng)
    y_test = collocated_labels(x_test, batch_size, rng)
    return x_train, y_train, x_test, y_test


@register("random_series")
def random_series(data: DataConfig, batch_size: int, rng: np.random.Generator):
    """Uniform series cut into windows by the layout; the target is the window's
    last first-feature value (custom-loop article) or pure noise (gradient-flow
    article)."""
    arrays = []
    for _ in ("train", "test"):
        series = rng.random((data.series_length, data.features), dtype=np.float32)
        x = LAYOUTS[data.layout](series, data.timesteps, batch_size)
        if data.target == "last_value":
            y = x[:, -1, 0].copy()
        else:
            y = rng.random(len(x), dtype=np.float32)
        arrays += [x, y]
    return tuple(arrays)


@register("lag_copy")
def lag_copy(data: DataConfig, batch_size: int, rng: np.random.Generator):
    """Bit streams whose target at every step is the bit `lag` steps earlier (0
    before the stream starts). Within a window a model can learn the copy; a
    window's first `lag` targets need the previous window, which only carried
    state provides, and only if the lane continues (layout streams: B independent
    streams, one per lane; blocks: one stream of B times the length, its
    consecutive windows side by side in a batch, as the custom-loop article lays
    out its series)."""
    arrays = []
    for _ in ("train", "test"):
        if data.layout == "streams":
            streams = rng.integers(0, 2, size=(batch_size, data.stream_length)).astype(np.float32)
        else:
            streams = rng.integers(0, 2, size=(1, batch_size * data.stream_length)).astype(np.float32)
        targets = np.zeros_like(streams)
        targets[:, data.lag:] = streams[:, : streams.shape[1] - data.lag]
        if data.layout == "streams":
            arrays += [streams_to_windows(streams, data.timesteps), streams_to_windows(targets, data.timesteps)]
        else:
            arrays += [block_windows(streams[0][:, None], data.timesteps, batch_size),
                       block_windows(targets[0][:, None], data.timesteps, batch_size)]
    return tuple(arrays)
