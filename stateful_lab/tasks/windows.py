"""Cutting a table of series into forecasting windows, for the forecast and table
tasks alike (docs/design.md, "Your own data").

Rows are time steps 0..N-1. A window ends at row t and holds the input columns at
rows t-T+1..t; its target is the target column at row t+h (the horizon h >= 0).
With `difference: 1` each input column is fed as its change from the row before,
and the target as its change over the horizon, y[t+h] - y[t], which a forecast
adds back to y[t], the last value observed (so h >= 1). The test part is the
windows whose target lies in the last `test_size` rows; every other window trains.
Each input column and the target are scaled with figures fitted on the rows
before the test part (or, on request and with a warning, on every row). The
baselines are fitted and scored on the same windows: persistence (the last
observed target, y[t] for h >= 1 and y[t-1] for h = 0), the seasonal naive
forecast (the value one season back), and a ridge regression on the flattened
window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from stateful_lab.tasks.csvfile import SeriesError

SCALED_RANGE = {"range": (-1.0, 1.0), "unit": (0.0, 1.0), "standard": (-1.0, 1.0)}
"""What each `scale` maps a column to: its training range onto [-1, 1] (the
default, as the source articles), onto [0, 1], or mean -/+ one standard deviation
onto [-1, 1] (standardization)."""


@dataclass(frozen=True)
class Scaling:
    """An affine map of a column's `low`..`high` onto `out_low`..`out_high`."""

    low: float
    high: float
    out_low: float = -1.0
    out_high: float = 1.0

    @classmethod
    def fitted(cls, values: np.ndarray, scale: str) -> Scaling:
        if scale == "standard":
            mean, spread = float(values.mean()), float(values.std())
            low, high = mean - spread, mean + spread
        else:
            low, high = float(values.min()), float(values.max())
        return cls(low, high, *SCALED_RANGE[scale])

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (self.out_high - self.out_low) * (values - self.low) / (self.high - self.low) + self.out_low

    def invert(self, scaled: np.ndarray) -> np.ndarray:
        return (np.asarray(scaled, dtype=np.float64) - self.out_low) / (self.out_high - self.out_low) * (
            self.high - self.low
        ) + self.low


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
    """The last target value observed before each test observation (the
    persistence forecast; with differencing, what a forecast is added to)."""
    low: float
    high: float
    """The training part's range (or mean -/+ one deviation), which maps to
    out_low..out_high."""
    difference: int
    prime: bool
    """Run x_prime through a stateful model before the first forecast."""
    reset_each: bool
    """Reset a stateful model's state after every forecast."""
    out_low: float = -1.0
    out_high: float = 1.0
    more_baselines: tuple[tuple[str, float], ...] = field(default=())
    """Baselines beyond persistence, by name (ridge_rmse, seasonal_naive_rmse)."""

    @property
    def scaling(self) -> Scaling:
        return Scaling(self.low, self.high, self.out_low, self.out_high)

    def invert(self, predictions: np.ndarray) -> np.ndarray:
        """Scaled (and differenced) predictions back in the series' units."""
        values = self.scaling.invert(predictions)
        return values + self.previous if self.difference else values

    def rmse(self, forecasts: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.asarray(forecasts, dtype=np.float64) - self.actual) ** 2)))

    @property
    def persistence_rmse(self) -> float:
        return self.rmse(self.previous)

    @property
    def baselines(self) -> dict[str, float]:
        """Every baseline's RMSE over the test part, the same for every seed."""
        return {"persistence_rmse": self.persistence_rmse, **dict(self.more_baselines)}


class ForecastSets:
    """Several runs' ForecastSets side by side (one column per run), to score all
    runs' forecasts at once with ForecastSet's arithmetic (a grouped epoch)."""

    def __init__(self, sets: list[ForecastSet]):
        self.low = np.array([one.low for one in sets])
        self.high = np.array([one.high for one in sets])
        self.out_low = np.array([one.out_low for one in sets])
        self.out_high = np.array([one.out_high for one in sets])
        self.differenced = np.array([bool(one.difference) for one in sets])
        self.previous = np.stack([one.previous for one in sets], axis=-1)
        self.actual = np.stack([one.actual for one in sets], axis=-1)

    def scored(self, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled predictions (forecasts, runs) back in the series' units, and each
        run's RMSE: ForecastSet.invert and rmse, column by column."""
        scaling = Scaling(self.low, self.high, self.out_low, self.out_high)
        values = scaling.invert(predictions)
        values = np.where(self.differenced, values + self.previous, values)
        return values, np.sqrt(np.mean((values - self.actual) ** 2, axis=0))


@dataclass(frozen=True)
class Windows:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    forecast: ForecastSet


def rows_needed(timesteps: int, horizon: int, difference: int, test_size: int) -> int:
    """The fewest rows that give one training window and the test part."""
    return difference + timesteps + horizon + test_size


def cut(
    inputs: np.ndarray,
    target: np.ndarray,
    *,
    timesteps: int,
    horizon: int,
    difference: int,
    test_size: int,
    scale: str = "range",
    fit_whole: bool = False,
    prime: bool = True,
    reset_each: bool = False,
    season: int | None = None,
    ridge_alpha: float | None = None,
    what: str = "the series",
) -> Windows:
    """The windows of `inputs` (rows, columns) predicting `target` (rows), cut as
    the module says. SeriesError when the rows are too few or a column is constant
    where it is fitted; `what` names the data in those messages."""
    rows, h, steps = len(target), horizon, timesteps
    if difference and h == 0:
        raise SeriesError("data.difference: a target differenced over horizon 0 is always 0; use difference: 0")
    needed = rows_needed(steps, h, difference, test_size)
    if rows < needed:
        raise SeriesError(
            f"data: {what} has {rows} values; {steps} time steps, differencing {difference}"
            + (f", horizon {h}" if h != 1 else "")
            + f" and {test_size} test values need at least {needed} (one training window)"
        )
    first_test = rows - test_size
    features = np.diff(inputs, axis=0) if difference else inputs  # features[i] is row i + difference
    changes = target[h:] - target[:-h] if difference else target  # changes[i] is row i + h (or i)
    offset = h if difference else 0
    fit_inputs = features if fit_whole else features[: first_test - difference]
    fit_target = changes if fit_whole else changes[: first_test - offset]
    part = "every row" if fit_whole else f"the training part (all but the last {test_size} values"
    part += ", differenced" if difference else ""
    part += "" if fit_whole else ")"
    scalings = []
    for column in range(inputs.shape[1]):
        scalings.append(_fitted(fit_inputs[:, column], scale, part, what if inputs.shape[1] == 1 else None))
    target_scaling = _fitted(fit_target, scale, part, what)
    scaled = np.stack([scaling(features[:, column]) for column, scaling in enumerate(scalings)], axis=1)
    scaled = scaled.astype(np.float32)
    scaled_target = target_scaling(changes).astype(np.float32)

    ends = np.arange(difference + steps - 1, rows - h)  # the row each window ends at
    starts = ends - steps + 1 - difference  # in `features`
    windows = np.stack([scaled[start : start + steps] for start in starts])
    labels = scaled_target[ends + h - offset]
    train, test = ends + h < first_test, ends + h >= first_test
    target_rows = ends[test] + h
    previous = target[target_rows - max(h, 1)]
    more = []
    if season:
        lag = season * max(1, math.ceil(h / season))
        if target_rows[0] - lag >= 0:
            more.append(("seasonal_naive_rmse", _rmse(target[target_rows - lag], target[target_rows])))
    forecast = ForecastSet(
        x_prime=windows[train],
        x_test=windows[test],
        actual=target[target_rows],
        previous=previous,
        low=target_scaling.low,
        high=target_scaling.high,
        difference=difference,
        prime=prime,
        reset_each=reset_each,
        out_low=target_scaling.out_low,
        out_high=target_scaling.out_high,
    )
    if ridge_alpha is not None:
        predictions = ridge(windows[train], labels[train], windows[test], ridge_alpha)
        more.append(("ridge_rmse", forecast.rmse(forecast.invert(predictions))))
    forecast = replace(forecast, more_baselines=tuple(more))
    return Windows(windows[train], labels[train], windows[test], labels[test], forecast)


def ridge(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alpha: float) -> np.ndarray:
    """A ridge regression on the flattened windows (an intercept, not penalized),
    fitted in float64 by its normal equations; its predictions for `x_test`."""
    design = np.hstack([np.ones((len(x_train), 1)), x_train.reshape(len(x_train), -1).astype(np.float64)])
    penalty = alpha * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    weights = np.linalg.solve(design.T @ design + penalty, design.T @ y_train.astype(np.float64))
    return np.hstack([np.ones((len(x_test), 1)), x_test.reshape(len(x_test), -1).astype(np.float64)]) @ weights


def _fitted(values: np.ndarray, scale: str, part: str, what: str | None) -> Scaling:
    scaling = Scaling.fitted(values, scale)
    if scaling.high == scaling.low:
        name = what or "an input column"
        raise SeriesError(
            f"data: {part} of {name} is constant at {scaling.low:g}; it cannot be scaled; use another column, "
            "series or test_size"
        )
    return scaling


def _rmse(forecasts: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forecasts - actual) ** 2)))
