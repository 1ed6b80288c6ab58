"""The typed result of one run, and its on-disk form (OUT/units/KEY.json).

Kept free of TensorFlow so that tables, reports and `show` can read results
without importing it. The format version is stored in every file; a file of
another version, or one that does not hold a result, reads as missing, so the
run is done again rather than misread.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from stateful_lab.atomic import write_atomic

FORMAT = 3
"""Bumped when a record's fields or their meaning change."""
FINISHED = ("ok", "diverged")


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    """Wall time of the epoch's training, evaluation excluded."""
    test_rmse: float = math.nan
    """Forecasting tasks: RMSE of the walk-forward forecasts, in the series' units."""
    forecast_accuracy: float = math.nan
    """Forecasting labels: the share of walk-forward forecasts that are the label."""
    forecasts: tuple[float, ...] = ()
    """Forecasting tasks: the walk-forward forecasts, in the series' units (the run
    keeps only the last epoch's, in RunResult.forecasts)."""


@dataclass
class RunResult:
    """What one run (sweep point x variant x seed) produced."""

    key: str
    """The hash of the run's settings, variant and seed (unit.Unit.key)."""
    point: dict[str, Any]
    """The sweep point: swept key -> value, as the config gives it."""
    variant: str
    seed: int
    status: Literal["ok", "diverged", "failed"] = "ok"
    error: str | None = None
    """For a failed run, the error in one line."""
    traceback: str | None = None
    epochs: list[EpochResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the data generation dropped or left out, for the console."""
    seconds: float = math.nan
    """Wall time of the whole run."""
    peak_memory_mb: float | None = None
    """The process's peak memory, for runs isolated in their own process only."""
    forecasts: list[float] = field(default_factory=list)
    """Forecasting tasks: the final epoch's walk-forward forecasts, in the series' units."""
    baselines: dict[str, float] = field(default_factory=dict)
    """Forecasting tasks: the persistence forecast's RMSE (persistence_rmse), the same
    for every seed."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def label(self) -> str:
        return run_label(self.point, self.variant, self.seed)

    def to_json(self) -> str:
        """One compact line, through json's C encoder (an indented file takes its
        pure-Python one) and without dataclasses.asdict (it deep-copies every epoch)."""
        record = {item.name: getattr(self, item.name) for item in fields(self)}
        record["epochs"] = [vars(epoch) for epoch in self.epochs]
        return json.dumps({"format": FORMAT, **record}, separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunResult:
        """The record stored as `raw`; ValueError if it is not one of this format."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} run record")
        names = {item.name for item in fields(cls)}
        try:
            values = {name: raw[name] for name in names if name in raw}
            values["epochs"] = [EpochResult(**epoch) for epoch in values.get("epochs", [])]
            return cls(**values)
        except TypeError as error:
            raise ValueError(f"a damaged run record: {error}") from None


def run_label(point: dict[str, Any], variant: str, seed: int) -> str:
    """How the console names a run: "seed 3 stateful data.lag=2"."""
    return f"seed {seed} {variant}" + "".join(f" {key}={value}" for key, value in point.items())


class UnitStore:
    """One JSON file per finished run under `folder`, written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, key: str) -> RunResult | None:
        """The stored result of run `key`, or None if none can be read."""
        try:
            record = RunResult.from_dict(json.loads((self.folder / f"{key}.json").read_text()))
        except (OSError, ValueError):
            return None
        return record if record.key == key else None

    def unreadable(self, key: str) -> bool:
        """A file is stored for `key`, but it does not hold a result of this format."""
        return (self.folder / f"{key}.json").exists() and self.load(key) is None

    def finished(self, key: str) -> bool:
        result = self.load(key)
        return result is not None and result.finished

    def save(self, result: RunResult) -> None:
        write_atomic(self.folder / f"{result.key}.json", result.to_json())
