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
the persistence forecast (next value = last observed value).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.errors import LabError
from stateful_lab.tasks.base import TaskData, register
from stateful_lab.userfiles import UserFileError, echo, read_bytes, shorten

DATA = Path(__file__).resolve().parent.parent / "data"
SERIES = {"shampoo": ("shampoo.csv", "sales"), "airline": ("airline.csv", "passengers")}
"""Series shipped with the lab (stateful_lab/data/README.md says where they come from)."""


class SeriesError(LabError, ValueError):
    """A series that cannot be read or used; the message is one line."""


@dataclass(frozen=True)
class ForecastSet:
    """What walk-forward forecasting needs, beside the training arrays."""

    x_prime: np.ndarray
    """Every training window in time order, to prime a stateful model's state."""
    x_test: np.ndarray
    """One window of observed (scaled) values before each test observation."""
    actual: np.ndarray
    """The test observations, in the series' units."""
    previous: np.ndarray
    """The observation before each test observation (the persistence forecast)."""
    low: float
    high: float
    """The training part's range, which maps to [-1, 1]."""
    difference: int
    prime: bool
    """Run x_prime through a stateful model before the first forecast."""
    reset_each: bool
    """Reset a stateful model's state after every forecast."""

    def invert(self, predictions: np.ndarray) -> np.ndarray:
        """Scaled (and differenced) predictions back in the series' units."""
        values = (np.asarray(predictions, dtype=np.float64) + 1) / 2 * (self.high - self.low) + self.low
        return values + self.previous if self.difference else values

    def rmse(self, forecasts: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.asarray(forecasts, dtype=np.float64) - self.actual) ** 2)))

    @property
    def persistence_rmse(self) -> float:
        return self.rmse(self.previous)


class ForecastSets:
    """Several runs' ForecastSets side by side (one column per run), to score all
    runs' forecasts at once with ForecastSet's arithmetic (a grouped epoch)."""

    def __init__(self, sets: list[ForecastSet]):
        self.low = np.array([one.low for one in sets])
        self.high = np.array([one.high for one in sets])
        self.differenced = np.array([bool(one.difference) for one in sets])
        self.previous = np.stack([one.previous for one in sets], axis=-1)
        self.actual = np.stack([one.actual for one in sets], axis=-1)

    def scored(self, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled predictions (forecasts, runs) back in the series' units, and each
        run's RMSE: ForecastSet.invert and rmse, column by column."""
        values = (np.asarray(predictions, dtype=np.float64) + 1) / 2 * (self.high - self.low) + self.low
        values = np.where(self.differenced, values + self.previous, values)
        return values, np.sqrt(np.mean((values - self.actual) ** 2, axis=0))


@register
class Forecast(TaskData):
    task: Literal["forecast"] = "forecast"
    """One-step forecasts of a real series, walk-forward over its last values."""
    series: Literal["shampoo", "airline"] | None = None
    """A series shipped with the lab: shampoo (36 monthly sales) or airline (144
    monthly passenger counts). Default shampoo, unless `csv` is given."""
    csv: str | None = None
    """Your own series: a CSV file (a path relative to the config file), with `column`."""
    column: str | None = None
    """The CSV column that holds the series (needed with `csv`)."""
    difference: Literal[0, 1] = 1
    """Difference the series once (1) to remove a trend, or not (0)."""
    test_size: int = Field(12, ge=1)
    """Observations held out at the end and forecast walk-forward (Brownlee: 12)."""
    timesteps: int = Field(1, ge=1)
    """Past values in each window (Brownlee: 1)."""
    prime: bool = True
    """Before forecasting, run the training inputs through a stateful model to build
    up its state (Brownlee's "seeding"); false: forecast from a zero state."""
    forecast_reset: Literal["never", "each"] = "never"
    """Reset a stateful model's state after each forecast (each) or carry it (never)."""

    classification: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ("test_rmse",)
    wide_window: ClassVar[bool] = False

    def resolved(self, config_dir: Path | None = None) -> Forecast:
        if self.csv is None:
            return self.model_copy(update={"series": self.series or "shampoo"})
        path = Path(self.csv).expanduser()
        if not path.is_absolute():
            path = (config_dir or Path.cwd()) / path
        return self.model_copy(update={"csv": os.path.abspath(path)})  # never resolve(): a link loop raises

    def problems(self, batch_size: int) -> list[str]:
        if self.features != 1:
            return [f"data.features: task forecast has exactly 1 feature, got {self.features}"]
        if self.csv is not None and self.series is not None:
            return ["data.series and data.csv: give one source, a shipped series or your CSV file"]
        if (self.csv is None) != (self.column is None):
            return [
                "data.column: give data.csv and data.column together (the file and the column that holds the series)"
            ]
        try:
            self.forecast_set()  # reads and checks the series
        except SeriesError as error:
            return [str(error)]
        return []

    @property
    def source(self) -> tuple[Path, str]:
        if self.csv is not None:
            return Path(self.csv), self.column
        file, column = SERIES[self.series or "shampoo"]
        return DATA / file, column

    @cached_property
    def prepared(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, ForecastSet]:
        values = read_series(*self.source)
        needed = self.difference + self.timesteps + 1 + self.test_size
        if len(values) < needed:
            raise SeriesError(
                f"data: the series has {len(values)} values; {self.timesteps} time steps, differencing "
                f"{self.difference} and {self.test_size} test values need at least {needed} (one training window)"
            )
        changes = np.diff(values) if self.difference else values
        # changes[i] belongs to observation i + difference; the test part is the last test_size observations.
        train_end = len(changes) - self.test_size
        low, high = float(changes[:train_end].min()), float(changes[:train_end].max())
        if high == low:
            raise SeriesError(
                f"data: the training part (all but the last {self.test_size} values"
                f"{', differenced' if self.difference else ''}) is constant at {low:g}; it cannot be scaled to "
                "[-1, 1]; use another series, column or test_size"
            )
        scaled = (2 * (changes - low) / (high - low) - 1).astype(np.float32)
        targets = np.arange(self.timesteps, len(changes))
        windows = np.stack([scaled[target - self.timesteps : target] for target in targets])[:, :, None]
        train, test = targets < train_end, targets >= train_end
        forecast = ForecastSet(
            x_prime=windows[train],
            x_test=windows[test],
            actual=values[-self.test_size :],
            previous=values[-self.test_size - 1 : -1],
            low=low,
            high=high,
            difference=self.difference,
            prime=self.prime,
            reset_each=self.forecast_reset == "each",
        )
        return windows[train], scaled[targets[train]], windows[test], scaled[targets[test]], forecast

    def generate(self, batch_size: int, rng: np.random.Generator):
        x_train, y_train, x_test, y_test, _ = self.prepared
        return x_train.copy(), y_train.copy(), x_test.copy(), y_test.copy()

    def forecast_set(self) -> ForecastSet:
        return self.prepared[4]

    def notes(self, train_windows: int, batch_size: int) -> list[str]:
        forecast = self.forecast_set()
        return [
            f"note: persistence forecast RMSE {forecast.persistence_rmse:.3f} over the last {self.test_size} "
            "values (the same for every seed)"
        ]

    def array_elements(self, batch_size: int) -> tuple[int, int]:
        x_train, y_train, x_test, y_test, _ = self.prepared
        return 3 * (x_train.size + x_test.size) + y_train.size + y_test.size, len(x_train)


MAX_TABLE_BYTES = 256 * 2**20
"""The largest CSV file the lab reads (a series of millions of values fits)."""
MAX_MAGNITUDE = 1e150
"""Values beyond this overflow float64 when differenced and squared (RMSE)."""


def read_series(path: Path, column: str) -> np.ndarray:
    """The column's values as float64, in file order; SeriesError names the
    problem, the file and where in it, in one line."""
    try:
        data = read_bytes(path, MAX_TABLE_BYTES, "a CSV file")
    except UserFileError as error:
        raise SeriesError(f"data.csv: {error}") from None
    header, rows = _table(path, data)
    if column not in header:
        columns = shorten(", ".join(header), 200)
        raise SeriesError(f"data.column: {echo(column)} is not a column of {path}; its columns are {columns}")
    index, values = header.index(column), []
    for number, row in rows:
        cell = row[index].strip()
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            what = "empty" if not cell else f"not a finite number ({echo(cell)})"
            raise SeriesError(f"data.csv: {path} row {number}, column {column!r} is {what}; every row needs a value")
        if abs(value) > MAX_MAGNITUDE:
            raise SeriesError(
                f"data.csv: {path} row {number}, column {column!r} is {value:g}; values beyond "
                f"{MAX_MAGNITUDE:g} overflow the forecast errors' arithmetic, so rescale the column"
            )
        values.append(value)
    return np.array(values, dtype=np.float64)


def _table(path: Path, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the numbered rows of CSV bytes (UTF-8, a byte-order mark
    allowed), every row as wide as the header and every column name once. A blank
    line is a row of empty cells (in a one-column file, a missing value)."""
    try:
        lines = data.decode("utf-8-sig").splitlines()
        parsed = list(csv.reader(lines))
    except (UnicodeDecodeError, csv.Error) as error:
        raise SeriesError(f"data.csv: {path} cannot be read as CSV text ({shorten(str(error))})") from None
    if not parsed or not parsed[0]:
        raise SeriesError(f"data.csv: {path} is empty; it needs a header row and one value per row")
    header = [name.strip() for name in parsed[0]]
    rows = [(number, row or [""] * len(header)) for number, row in enumerate(parsed[1:], start=2)]
    if len(header) == 1 and ";" in header[0]:
        raise SeriesError(
            f"data.csv: {path} separates its columns with ';'; the lab reads comma-separated values, so save "
            "it with ',' between columns and '.' as the decimal point"
        )
    for position, name in enumerate(header):
        if name in header[:position]:
            raise SeriesError(
                f"data.csv: {path} names column {echo(name)} twice (columns {header.index(name) + 1} and "
                f"{position + 1}); give each column its own name"
            )
    for number, row in rows:
        if len(row) != len(header):
            hint = " (a decimal comma? write 1.5, not 1,5)" if len(row) > len(header) else ""
            raise SeriesError(
                f"data.csv: {path} row {number} has {len(row)} cells and the header {len(header)}{hint}; "
                "give every row one cell per column"
            )
    return header, rows
