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

from stateful_lab.tasks.baselines import logistic, predicted_classes, ridge
from stateful_lab.tasks.csvfile import SeriesError
from stateful_lab.tasks.lanes import Lanes, Walk, walk_of

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
    walk: Walk | None = None
    """With entities: the walk through each entity in turn, which replaces priming
    on x_prime and forecasting x_test."""
    labels: int = 0
    """The target is a label of this many classes (2: binary, one probability per
    window; more: categorical, one per class), scored by accuracy; 0: a number,
    scored by RMSE."""

    @property
    def scaling(self) -> Scaling:
        return Scaling(self.low, self.high, self.out_low, self.out_high)

    def invert(self, predictions: np.ndarray) -> np.ndarray:
        """Scaled (and differenced) predictions back in the series' units; for
        labels, the predicted class (binary: a probability above one half is 1;
        categorical: the most probable class)."""
        if self.labels:
            return predicted_classes(predictions, self.labels, axis=-1)
        values = self.scaling.invert(predictions)
        return values + self.previous if self.difference else values

    def rmse(self, forecasts: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.asarray(forecasts, dtype=np.float64) - self.actual) ** 2)))

    def accuracy(self, forecasts: np.ndarray) -> float:
        return float(np.mean(np.asarray(forecasts, dtype=np.float64) == self.actual))

    @property
    def metric(self) -> str:
        """The walk-forward forecasts' figure: forecast_accuracy for labels, test_rmse else."""
        return "forecast_accuracy" if self.labels else "test_rmse"

    def score(self, forecasts: np.ndarray) -> float:
        return self.accuracy(forecasts) if self.labels else self.rmse(forecasts)

    @property
    def persistence_rmse(self) -> float:
        return self.rmse(self.previous)

    @property
    def baselines(self) -> dict[str, float]:
        """Every baseline's figure over the test part (RMSE, or accuracy for
        labels), the same for every seed: the last value (label) observed first."""
        if self.labels:
            return {"previous_accuracy": self.accuracy(self.previous), **dict(self.more_baselines)}
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
        self.labels = sets[0].labels
        self.metric = sets[0].metric
        walks = [one.walk for one in sets if one.walk is not None]
        self.positions = np.stack([walk.forecasts for walk in walks], axis=-1) if walks else None
        """Through entities: which windows' predictions are each run's forecasts."""

    def scored(self, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled predictions (forecasts, runs) back in the series' units, and each
        run's RMSE: ForecastSet.invert and rmse, column by column."""
        if self.positions is not None:  # every window's prediction: keep the forecasts'
            predictions = np.asarray(predictions)
            positions = self.positions if predictions.ndim == 2 else self.positions[:, None, :]  # (.., classes, ..)
            predictions = np.take_along_axis(predictions, positions, axis=0)
        if self.labels:
            values = predicted_classes(predictions, self.labels, axis=1)  # (windows, classes, runs)
            return values, np.mean(values == self.actual, axis=0)
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
    lanes: Lanes | None = None
    """With entities: how they fill the batch's lanes (`pack`), for `Lanes.arrays`."""


@dataclass(frozen=True)
class Segment:
    """One series of a table (an entity's rows, in time order)."""

    inputs: np.ndarray
    """(rows, input columns)"""
    target: np.ndarray
    """(rows,)"""
    test_size: int
    name: str = ""


def rows_needed(timesteps: int, horizon: int, difference: int, test_size: int) -> int:
    """The fewest rows that give one training window and the test part."""
    return difference + timesteps + horizon + test_size


def cut(
    inputs: np.ndarray,
    target: np.ndarray,
    *,
    test_size: int,
    what: str = "the series",
    **options,
) -> Windows:
    """The windows of one series, `inputs` (rows, columns) predicting `target`
    (rows), cut as the module says (options: those of `cut_segments`)."""
    return cut_segments([Segment(inputs, target, test_size)], what=what, **options)


def cut_segments(
    segments: list[Segment],
    *,
    timesteps: int,
    horizon: int,
    difference: int,
    scale: str = "range",
    fit_whole: bool = False,
    prime: bool = True,
    reset_each: bool = False,
    season: int | None = None,
    ridge_alpha: float | None = None,
    what: str = "the series",
    entities: bool = False,
    labels: int = 0,
) -> Windows:
    """The windows of one or more series, each cut as the module says, scaled with
    figures fitted on all of them. SeriesError when a series has too few rows or a
    column is constant where it is fitted; `what` names the data in those messages.
    With `entities`, each segment is an entity: the forecast walks through each
    entity's windows in turn, its state zeroed at each entity's first window
    (`ForecastSet.walk`), and `Windows.lanes` says how to pack them into lanes.
    With `labels` (the number of classes), the target is a class index: neither
    differenced nor scaled, and the baselines are the previous label, the training
    part's majority label, and a logistic regression on the window (one against
    the rest for more than two classes), each scored by accuracy."""
    h, steps = horizon, timesteps
    if difference and h == 0:
        raise SeriesError("data.difference: a target differenced over horizon 0 is always 0; use difference: 0")
    for segment in segments:
        rows, needed = len(segment.target), rows_needed(steps, h, difference, segment.test_size)
        if rows < needed:
            named = f"entity {segment.name!r} of {what}" if entities else what
            raise SeriesError(
                f"data: {named} has {rows} values; {steps} time steps, differencing {difference}"
                + (f", horizon {h}" if h != 1 else "")
                + f" and {segment.test_size} test values need at least {needed} (one training window)"
            )
    offset = h if difference else 0
    features, changes, fit_inputs, fit_target = [], [], [], []
    for segment in segments:
        first_test = len(segment.target) - segment.test_size
        feature = np.diff(segment.inputs, axis=0) if difference else segment.inputs  # [i] is row i + difference
        change = segment.target[h:] - segment.target[:-h] if difference else segment.target  # [i] is row i + offset
        features.append(feature)
        changes.append(change)
        fit_inputs.append(feature if fit_whole else feature[: first_test - difference])
        fit_target.append(change if fit_whole else change[: first_test - offset])
    fit_inputs = fit_inputs[0] if len(segments) == 1 else np.concatenate(fit_inputs)
    fit_target = fit_target[0] if len(segments) == 1 else np.concatenate(fit_target)
    test_sizes = sorted({segment.test_size for segment in segments})
    held_out = f"{test_sizes[0]}" if len(test_sizes) == 1 else "held-out"
    part = "every row" if fit_whole else f"the training part (all but the last {held_out} values"
    part += ", differenced" if difference else ""
    part += "" if fit_whole else ")"
    columns = segments[0].inputs.shape[1]
    scalings = [
        _fitted(fit_inputs[:, column], scale, part, what if columns == 1 else None) for column in range(columns)
    ]
    target_scaling = Scaling(0.0, 1.0, 0.0, 1.0) if labels else _fitted(fit_target, scale, part, what)

    pieces = []  # per segment: windows, labels, train mask, target rows of the test windows
    for segment, feature, change in zip(segments, features, changes, strict=True):
        scaled = np.stack([scaling(feature[:, column]) for column, scaling in enumerate(scalings)], axis=1)
        scaled = scaled.astype(np.float32)
        scaled_target = (change if labels else target_scaling(change)).astype(np.float32)
        rows, first_test = len(segment.target), len(segment.target) - segment.test_size
        ends = np.arange(difference + steps - 1, rows - h)  # the row each window ends at
        starts = ends - steps + 1 - difference  # in `feature`
        windows = np.stack([scaled[start : start + steps] for start in starts])
        goals = scaled_target[ends + h - offset]
        train = ends + h < first_test
        pieces.append((windows, goals, train, ends[~train] + h))

    target_rows = [rows for *_, rows in pieces]
    actual = np.concatenate([segment.target[rows] for segment, rows in zip(segments, target_rows, strict=True)])
    previous = np.concatenate(
        [segment.target[rows - max(h, 1)] for segment, rows in zip(segments, target_rows, strict=True)]
    )
    more = []
    if season:
        lag = season * max(1, math.ceil(h / season))
        if all(rows[0] - lag >= 0 for rows in target_rows):
            seasonal = np.concatenate(
                [segment.target[rows - lag] for segment, rows in zip(segments, target_rows, strict=True)]
            )
            if labels:
                more.append(("seasonal_naive_accuracy", float(np.mean(seasonal == actual))))
            else:
                more.append(("seasonal_naive_rmse", _rmse(seasonal, actual)))
    x_train = np.concatenate([windows[train] for windows, _, train, _ in pieces])
    y_train = np.concatenate([goals[train] for _, goals, train, _ in pieces])
    x_test = np.concatenate([windows[~train] for windows, _, train, _ in pieces])
    y_test = np.concatenate([goals[~train] for _, goals, train, _ in pieces])
    walk = walk_of(pieces, prime, reset_each) if entities else None
    forecast = ForecastSet(
        x_prime=x_train,
        x_test=x_test,
        actual=actual,
        previous=previous,
        low=target_scaling.low,
        high=target_scaling.high,
        difference=difference,
        prime=prime,
        reset_each=reset_each,
        out_low=target_scaling.out_low,
        out_high=target_scaling.out_high,
        walk=walk,
        labels=labels,
    )
    if labels:
        majority = float(np.bincount(y_train.astype(int), minlength=labels).argmax())
        more.append(("majority_accuracy", forecast.accuracy(np.full(len(actual), majority))))
        if ridge_alpha is not None:
            if labels == 2:
                predictions = logistic(x_train, y_train, x_test, ridge_alpha)
            else:  # one against the rest
                predictions = np.stack(
                    [logistic(x_train, (y_train == k).astype(np.float64), x_test, ridge_alpha) for k in range(labels)],
                    axis=-1,
                )
            more.append(("logistic_accuracy", forecast.accuracy(forecast.invert(predictions))))
    elif ridge_alpha is not None:
        predictions = ridge(x_train, y_train, x_test, ridge_alpha)
        more.append(("ridge_rmse", forecast.rmse(forecast.invert(predictions))))
    forecast = replace(forecast, more_baselines=tuple(more))
    lanes = None
    if entities:
        lanes = Lanes(
            [int(train.sum()) for _, _, train, _ in pieces],
            [int((~train).sum()) for _, _, train, _ in pieces],
            [segment.name for segment in segments],
        )
    return Windows(x_train, y_train, x_test, y_test, forecast, lanes)


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
