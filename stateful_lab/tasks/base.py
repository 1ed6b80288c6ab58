"""What every task declares: its `data:` section, its kind of target, its size
checks and its generator (docs/design.md, "Tasks").

A task is one module with one subclass of `TaskData`, registered with
`@register`; config.py assembles the `data:` union from the registry and names
no task itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from stateful_lab.schema import StrictModel

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class TaskData(StrictModel):
    """The `data:` keys every task has; each task adds its own and a `task` tag."""

    timesteps: int = Field(5, ge=1)
    """Time steps per sample, the window length T."""
    features: int = Field(1, ge=1)
    """Features per time step (bit tasks have exactly 1)."""
    strict: bool = False
    """Reject the config instead of trimming samples to a multiple of the batch size."""

    classification: ClassVar[bool]
    """Bit targets scored by accuracy (True) or real-valued targets scored by loss alone."""
    per_step_targets: ClassVar[bool] = False
    """The model predicts every time step, not one value per window."""
    default_loss: ClassVar[str] = "mse"
    """The loss when the config names none (mse, the blog's choice, also for bits)."""
    output_units: ClassVar[int] = 1
    """Units of the model's Dense head: one, or one per class of a categorical target."""

    @property
    def default_activation(self) -> str:
        """The head's activation when the config names none."""
        return "sigmoid" if self.classification else "linear"

    metrics: ClassVar[tuple[str, ...]] = ()
    """Per-epoch metrics of this task beyond the losses and accuracies (forecast: test_rmse)."""
    wide_window: ClassVar[bool] = True
    """Whether the wide_window variant (the previous window joined in front) makes sense."""
    value_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys that change only the values of the arrays, never a shape or anything the
    model or optimizer is built from; runs that differ only in these may share one
    compiled training function."""

    @property
    def windows_per_sequence(self) -> int:
        """Consecutive windows that make one sample sequence (1: a sample is a window)."""
        return 1

    def resolved(self, config_dir: Path | None = None) -> TaskData:
        """This section with every default that depends on other keys filled in;
        file paths are relative to `config_dir`, the config file's folder."""
        return self

    def problems(self, batch_size: int) -> list[str]:
        """What makes these sizes unusable with this batch size, one line each."""
        return []

    def generate(self, batch_size: int, rng: np.random.Generator) -> Arrays:
        """x_train, y_train, x_test, y_test in feeding order (row k*B + i is lane i
        of batch k), train drawn first."""
        raise NotImplementedError

    def forecast_set(self):
        """What walk-forward forecasting needs (tasks.forecast.ForecastSet), for a
        forecasting task; None for the others."""
        return None

    def lane_starts(self, batch_size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For data of several entities on lanes: the (batches, B) bool arrays of
        the lanes that take their next entity before each train and test batch
        (`tasks.lanes.Lanes`); None for every other task."""
        return None

    def notes(self, train_windows: int, batch_size: int) -> list[str]:
        """What the console should say about how the data was cut."""
        return []

    def tiny(self, batch_size: int) -> dict[str, Any]:
        """Data keys that make a smoke run of this task take a second or two."""
        return {}

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        """Without generating anything: how many numbers the task's arrays hold
        (inputs and targets, train and test, before cutting into batches), and
        how many training windows it yields. For the memory estimate."""
        raise NotImplementedError


class SampleTask(TaskData):
    """Tasks of independent bit samples: train and test sets of a given size."""

    train_samples: int = Field(1024, ge=1)
    """Training samples (default 1024, the blog's figure)."""
    test_samples: int = Field(256, ge=1)
    """Test samples (default 256)."""

    classification: ClassVar[bool] = True

    def problems(self, batch_size: int) -> list[str]:
        problems = []
        if self.features != 1:
            problems.append(f"data.features: task {self.task} has exactly 1 feature, got {self.features}")
        for key in ("train_samples", "test_samples"):
            count = getattr(self, key)
            if batch_size > count:
                problems.append(
                    f"train.batch_size: {batch_size} is larger than data.{key} ({count}); "
                    f"use a batch size of at most {count}"
                )
            elif self.strict and count % batch_size:
                kept = count - count % batch_size
                problems.append(
                    f"data.{key}: {count} is not a multiple of train.batch_size {batch_size} and "
                    f"data.strict is true; use {kept} or {kept + batch_size}"
                )
        return problems

    def tiny(self, batch_size: int) -> dict[str, Any]:
        return {"train_samples": 8 * batch_size, "test_samples": 4 * batch_size}

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        steps = self.timesteps * self.windows_per_sequence
        samples = self.train_samples + self.test_samples
        return samples * (steps * self.features + 1), self.train_samples * self.windows_per_sequence


TASKS: dict[str, type[TaskData]] = {}


def register(task: type[TaskData]) -> type[TaskData]:
    """Add a task, under the default of its `task` field, to the registry."""
    TASKS[task.model_fields["task"].default] = task
    return task
