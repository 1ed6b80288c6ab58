"""The tasks (docs/design.md, "Tasks"): one module each, registered by name.

Every generator draws from the run's seeded `numpy.random.Generator`, train set
first, and returns arrays in feeding order (row k*B + i is lane i of batch k).
`make_dataset` then cuts them into whole batches and windows, the same for every
task. Adding a task: write a module with a registered `TaskData` subclass and
import it below.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from stateful_lab.tasks import (  # noqa: F401  (registers them)
    collocated,
    first_timestep,
    forecast,
    lag_copy,
    random_series,
    table,
)
from stateful_lab.tasks.base import TASKS, TaskData
from stateful_lab.tasks.batching import cut_sequences, join_previous_window, trim_to_batches
from stateful_lab.tasks.windows import ForecastSet

DEFAULT_TASK = "first_timestep"
"""The task of a config whose `data:` section names none."""


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
    forecast: ForecastSet | None = None
    """For a forecasting task: what walk-forward forecasts need (untrimmed)."""
    lane_starts_train: np.ndarray | None = None
    """With entities: (batches, B) bool, the lanes that take their next entity
    before each training batch (their state, and only theirs, is zeroed)."""
    lane_starts_test: np.ndarray | None = None
    """The same for the test batches."""

    @property
    def baselines(self) -> dict[str, float]:
        """The figures a model must beat, the same for every seed: for a
        forecasting task, the RMSE of each baseline forecast (tasks.windows)."""
        return self.forecast.baselines if self.forecast is not None else {}


def make_dataset(data: TaskData, batch_size: int, seed: int) -> Dataset:
    """Generate the task's train and test sets for one seed, cut to whole batches."""
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = data.generate(batch_size, rng)
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
    notes += data.notes(len(x_train), batch_size)
    starts = data.lane_starts(batch_size)
    return Dataset(x_train, y_train, x_test, y_test, seed, tuple(notes), data.forecast_set(), *(starts or ()))


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


__all__ = ["DEFAULT_TASK", "TASKS", "Dataset", "TaskData", "for_variant", "make_dataset"]
