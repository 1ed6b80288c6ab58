"""forecast: one-step forecasts of a real univariate series, the protocol of Jason
Brownlee's "Stateful and Stateless LSTM for Time Series Forecasting with Python"
(which "Stateless vs Stateful LSTMs" cites), and the blog's forecasting claims.

The protocol, each step a key: difference the series (order 0 or 1); hold out the
last `test_size` observations; scale to [-1, 1] with the range of the training
part only; cut windows of `timesteps` past values, each predicting the next. A
model is trained on the training windows, then forecasts the test part walk-forward:
each forecast from observed past values (never its own forecasts, never a later
value), through a batch-1 twin of the model, its state primed on the training
inputs first (or not) and reset after each forecast (or never). Forecasts are
unscaled and undifferenced, and scored by RMSE in the series' own units, beside
the baselines: the persistence forecast (next value = last observed value) and a
ridge regression on the same windows.

The forecast task is the table task (`tasks.table`) with one column as input and
target and horizon 1: both cut their windows with `tasks.windows.cut`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import TaskData, register
from stateful_lab.tasks.csvfile import MAX_MAGNITUDE, MAX_TABLE_BYTES, SeriesError, read_series
from stateful_lab.tasks.windows import ForecastSet, ForecastSets, Windows, cut

DATA = Path(__file__).resolve().parent.parent / "data"
SERIES = {"shampoo": ("shampoo.csv", "sales"), "airline": ("airline.csv", "passengers")}
"""Series shipped with the lab (stateful_lab/data/README.md says where they come from)."""


class WalkForward(TaskData):
    """The keys and the arithmetic the forecasting tasks share: windows of a
    table's past, a test part forecast walk-forward, baselines beside them."""

    difference: Literal[0, 1] = 1
    """Difference the series once (1) to remove a trend, or not (0)."""
    test_size: int = Field(12, ge=1)
    """Observations held out at the end and forecast walk-forward (Brownlee: 12)."""
    timesteps: int = Field(1, ge=1)
    """Past values in each window (Brownlee: 1). With more than one, consecutive
    windows overlap by all but one step: a stateful model then reads each step
    several times and carries its state from a window that already held the next
    one's steps (the console says so)."""
    prime: bool = True
    """Before forecasting, run the training inputs through a stateful model to build
    up its state (Brownlee's "seeding"); false: forecast from a zero state."""
    forecast_reset: Literal["never", "each"] = "never"
    """Reset a stateful model's state after each forecast (each) or carry it (never)."""
    scale: Literal["range", "unit", "standard"] = "range"
    """How each column is scaled: its range onto [-1, 1] (the source articles'),
    onto [0, 1], or standardized (mean 0, deviation 1)."""
    scale_fit: Literal["train", "whole"] = "train"
    """Fit the scaling on the training part only (train), or on every row (whole:
    what some published experiments did; it leaks the test part, and the console
    warns)."""
    season: int | None = Field(None, ge=1)
    """The season's length in rows (12 for monthly data): adds the seasonal naive
    forecast (the value one season back) to the baselines."""
    ridge_alpha: float = Field(1.0, gt=0)
    """The penalty of the ridge-regression baseline on the flattened window (in
    scaled units; its intercept is not penalized)."""

    classification: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ("test_rmse",)
    wide_window: ClassVar[bool] = False

    @property
    def windows(self) -> Windows:
        raise NotImplementedError

    def window_options(self) -> dict:
        """`windows.cut`'s keyword arguments that come from these keys."""
        return {
            "timesteps": self.timesteps,
            "difference": self.difference,
            "scale": self.scale,
            "fit_whole": self.scale_fit == "whole",
            "prime": self.prime,
            "reset_each": self.forecast_reset == "each",
            "season": self.season,
            "ridge_alpha": self.ridge_alpha,
        }

    def generate(self, batch_size: int, rng: np.random.Generator):
        windows = self.windows
        return windows.x_train.copy(), windows.y_train.copy(), windows.x_test.copy(), windows.y_test.copy()

    def forecast_set(self) -> ForecastSet:
        return self.windows.forecast

    def notes(self, train_windows: int, batch_size: int) -> list[str]:
        forecast = self.forecast_set()
        test = len(forecast.actual)
        named = ", ".join(
            f"{name.removesuffix('_rmse').removesuffix('_accuracy')} {value:.3f}"
            for name, value in forecast.baselines.items()
        )
        figure = "accuracy" if forecast.labels else "RMSE"
        notes = [f"note: baseline {figure} over the {test} test values (the same for every seed): {named}"]
        if self.timesteps > 1:
            notes.append(
                f"note: windows of {self.timesteps} steps slide one step at a time, so a stateful model reads "
                "each step several times and carries its state from a window that already held the next "
                "one's steps; timesteps: 1 makes the windows follow each other exactly"
            )
        if self.scale_fit == "whole":
            notes.append(
                "warning: data.scale_fit: whole fits the scaling on the test part too, so the training data "
                "knows the test part's range: a leak that flatters every model; use train for honest figures"
            )
        return notes

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        windows = self.windows
        x_train, y_train, x_test, y_test = windows.x_train, windows.y_train, windows.x_test, windows.y_test
        return 3 * (x_train.size + x_test.size) + y_train.size + y_test.size, len(x_train)

    def checked(self) -> list[str]:
        """Read and cut the data; its problem, if any, as the config's."""
        try:
            self.windows  # noqa: B018  (reads and checks the data)
        except SeriesError as error:
            return [str(error)]
        return []


def absolute(path: str, config_dir: Path | None) -> str:
    """A user's path, relative to the config file's folder; never resolve(): a
    link loop raises."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (config_dir or Path.cwd()) / candidate
    return os.path.abspath(candidate)


@register
class Forecast(WalkForward):
    task: Literal["forecast"] = "forecast"
    """One-step forecasts of a real series, walk-forward over its last values."""
    series: Literal["shampoo", "airline"] | None = None
    """A series shipped with the lab: shampoo (36 monthly sales) or airline (144
    monthly passenger counts). Default shampoo, unless `csv` is given."""
    csv: str | None = None
    """Your own series: a CSV file (a path relative to the config file), with `column`."""
    column: str | None = None
    """The CSV column that holds the series (needed with `csv`)."""

    def resolved(self, config_dir: Path | None = None) -> Forecast:
        if self.csv is None:
            return self.model_copy(update={"series": self.series or "shampoo"})
        return self.model_copy(update={"csv": absolute(self.csv, config_dir)})

    def problems(self, batch_size: int) -> list[str]:
        if self.features != 1:
            return [f"data.features: task forecast has exactly 1 feature, got {self.features}"]
        if self.csv is not None and self.series is not None:
            return ["data.series and data.csv: give one source, a shipped series or your CSV file"]
        if (self.csv is None) != (self.column is None):
            return [
                "data.column: give data.csv and data.column together (the file and the column that holds the series)"
            ]
        return self.checked()

    @property
    def source(self) -> tuple[Path, str]:
        if self.csv is not None:
            return Path(self.csv), self.column
        file, column = SERIES[self.series or "shampoo"]
        return DATA / file, column

    @cached_property
    def windows(self) -> Windows:
        values = read_series(*self.source)
        return cut(values[:, None], values, horizon=1, test_size=self.test_size, **self.window_options())


__all__ = [
    "DATA",
    "MAX_MAGNITUDE",
    "MAX_TABLE_BYTES",
    "SERIES",
    "Forecast",
    "ForecastSet",
    "ForecastSets",
    "SeriesError",
    "WalkForward",
    "read_series",
]
