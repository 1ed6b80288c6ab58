"""table: your own data, a CSV table with one row per time step. Several numeric
input columns, any numeric target column, a horizon h >= 0: each window of the
inputs' last `timesteps` rows predicts the target h rows after the window's last
one (0: at that row, as a filtered value; 1: the next value). Cut, scaled and
scored as the forecast task (`tasks.windows`), which is this task with one column
as input and target and horizon 1.

Several series in one file (the long format, `entity: customer`): each entity is
a series of its own, of its own length, differenced, windowed and split into its
training and test parts alone (its last `test_size` rows, or `test_fraction` of
them, are its test part), scaled with figures fitted on every entity's training
part. In training each entity is a stream on a lane of the batch
(`tasks.lanes.Lanes`): a stateful model carries each entity's state along its
own history, and a lane's state (only that lane's) is zeroed when the lane takes
its next entity. Forecasts walk through each entity in turn, from a zero state.

Label targets (binary and categorical) are predicted by a sigmoid or softmax
head and scored by accuracy, beside the previous-label, majority and logistic
baselines. Not here: per-variant windows (every variant of a sweep point reads
the same windows; `ask` sweeps `timesteps` instead).
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import register
from stateful_lab.tasks.csvfile import SeriesError, Table, read_table
from stateful_lab.tasks.forecast import WalkForward, absolute
from stateful_lab.tasks.windows import Segment, Windows, cut_segments
from stateful_lab.userfiles import echo

MAX_CLASSES = 100
"""The most classes a categorical target may have (a softmax of this many units)."""
DEFAULT_TEST_FRACTION = 0.2
"""The share of the rows held out when neither test_size nor test_fraction is given."""


@register
class TableTask(WalkForward):
    task: Literal["table"] = "table"
    """Your own table: inputs and a target from a CSV file, one row per time step."""
    csv: str
    """The CSV file (a path relative to the config file), one row per time step in
    time order, a header row naming the columns."""
    target: str
    """The column to predict."""
    inputs: list[str] | None = None
    """The columns the model reads at each step (default: the target alone, which
    gives univariate forecasting). The target may be one of them."""
    horizon: int = Field(1, ge=0)
    """Predict the target this many rows after the window's last row (0: at that
    row, from the inputs alone)."""
    difference: Literal[0, 1] | None = None
    """Feed each input as its change from the row before and predict the target's
    change over the horizon (1), or the values themselves (0). Default: 1 with a
    horizon of 1 or more, 0 with horizon 0."""
    test_size: int | None = Field(None, ge=1)
    """The last rows held out and forecast walk-forward."""
    test_fraction: float | None = Field(None, gt=0, lt=1)
    """Or the share of the rows held out (default 0.2 when neither is given)."""
    entity: str | None = None
    """The column naming the series each row belongs to (several series in one
    file); each entity's rows are in time order (or ordered by `order`)."""
    order: str | None = None
    """With `entity`: the column that orders an entity's rows in time (numbers, or
    text such as ISO dates); the file must be sorted by it within each entity."""
    kind: Literal["regression", "binary", "categorical"] | None = None
    """What the target is: a number (regression, scored by RMSE), a label of two
    classes (binary: a sigmoid head, scored by accuracy) or of more (categorical).
    Default: inferred from the target column, binary when it holds exactly two
    distinct values that are 0 and 1 or are not numbers, categorical for more than
    two non-numbers, else regression."""
    classes: list[str] | None = None
    """For a label: its classes, in the order of the model's outputs (default: the
    values the target holds, sorted); recorded in config.yaml."""

    per_step_targets: ClassVar[bool] = False

    @property
    def classification(self) -> bool:  # type: ignore[override]
        return self.kind in ("binary", "categorical")

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("forecast_accuracy",) if self.classification else ("test_rmse",)

    @property
    def default_loss(self) -> str:  # type: ignore[override]
        return {"binary": "binary_crossentropy", "categorical": "sparse_categorical_crossentropy"}.get(self.kind, "mse")

    @property
    def default_activation(self) -> str:
        return "softmax" if self.kind == "categorical" else super().default_activation

    @property
    def output_units(self) -> int:  # type: ignore[override]
        return len(self.classes or []) if self.kind == "categorical" else 1

    def resolved(self, config_dir: Path | None = None) -> TableTask:
        csv = absolute(self.csv, config_dir)
        kind, classes = self.kind, self.classes
        if kind is None or (kind != "regression" and classes is None):
            try:
                cells = [cell for _, cell in read_table(Path(csv)).cells(self.target, "t")]
                inferred, values = _label_kind(cells)[0], _classes(cells)
            except SeriesError:
                inferred, values = None, None  # problems() reports why the file cannot be read
            kind = kind or inferred
            if kind in ("binary", "categorical") and classes is None:
                classes = values
        labels = kind in ("binary", "categorical")
        update = {
            "csv": csv,
            "kind": kind,
            "classes": classes if labels else None,
            "inputs": self.inputs or [self.target],
            "difference": int(self.horizon >= 1 and not labels) if self.difference is None else self.difference,
        }
        if "features" not in self.model_fields_set:
            update["features"] = len(update["inputs"])
        return self.model_copy(update=update)

    def problems(self, batch_size: int) -> list[str]:
        inputs = self.inputs or [self.target]
        problems = []
        if self.features != len(inputs):
            problems.append(
                f"data.features: the table task reads one feature per input column ({len(inputs)}), got "
                f"{self.features}; leave data.features out"
            )
        repeated = sorted({name for name in inputs if inputs.count(name) > 1})
        if repeated:
            problems.append(f"data.inputs: {', '.join(map(repr, repeated))} named more than once")
        if self.test_size is not None and self.test_fraction is not None:
            problems.append("data.test_size and data.test_fraction: give one of them")
        if self.order is not None and self.entity is None:
            problems.append("data.order: orders the rows within an entity; give data.entity too, or leave order out")
        if self.kind == "categorical" and not 2 < len(self.classes or []) <= MAX_CLASSES:
            problems.append(
                f"data.classes: a categorical target has 3 to {MAX_CLASSES} classes, this one "
                f"{len(self.classes or [])}; with two, use kind: binary; with more, group rare classes together"
            )
        if self.classification and self.difference:
            problems.append("data.difference: a label cannot be differenced; use difference: 0")
        if self.classification and self.classes is not None and len(self.classes) != 2 and self.kind == "binary":
            problems.append(f"data.classes: a binary target has exactly two classes, got {len(self.classes)}")
        if self.difference and self.horizon == 0:
            problems.append(
                "data.difference: a target differenced over horizon 0 is always 0; use difference: 0 with horizon 0"
            )
        problems = problems or self.checked()
        if not problems and self.entity is not None and len(self.windows.lanes.names) < batch_size:
            entities = len(self.windows.lanes.names)
            problems.append(
                f"train.batch_size: {batch_size} lanes need at least {batch_size} entities, and the table has "
                f"{entities}; lower the batch size to at most {entities}"
            )
        return problems

    def held_out(self, rows: int) -> int:
        """The test part's rows for a table of `rows` rows."""
        if self.test_size is not None:
            return self.test_size
        return max(1, math.floor(rows * (self.test_fraction or DEFAULT_TEST_FRACTION)))

    @cached_property
    def windows(self) -> Windows:
        table = read_table(Path(self.csv))
        inputs = self.inputs or [self.target]
        target = self._labels(table) if self.classification else table.numbers(self.target, "data.target")
        columns = np.stack([table.numbers(name, "data.inputs") for name in inputs], axis=1)
        what = f"column {self.target!r} of {self.csv}"
        labels = len(self.classes or []) if self.classification else 0
        options = self.window_options() | {"difference": self.difference or 0, "labels": labels}
        if self.entity is None:
            segments = [Segment(columns, target, self.held_out(len(target)))]
        else:
            segments = [
                Segment(columns[rows], target[rows], self.held_out(len(rows)), name)
                for name, rows in self._entities(table).items()
            ]
        if self.classification:
            self._check_classes(segments)
        return cut_segments(segments, horizon=self.horizon, what=what, entities=self.entity is not None, **options)

    def _labels(self, table: Table) -> np.ndarray:
        """The target's labels as class indices, each checked to be a class."""
        classes, labels = self.classes or [], []
        for number, cell in table.cells(self.target, "data.target"):
            if cell not in classes:
                raise SeriesError(
                    f"data.target: {table.path} row {number}, column {self.target!r} is {echo(cell)}, not one of "
                    f"the classes {', '.join(map(repr, classes))}; fix the cell or list it in data.classes"
                )
            labels.append(classes.index(cell))
        return np.array(labels, dtype=np.float64)

    def _check_classes(self, segments: list[Segment]) -> None:
        """Every class the test parts hold appears in the training parts, and the
        training parts hold more than one class."""
        horizon = self.horizon
        train = np.concatenate([s.target[horizon : len(s.target) - s.test_size] for s in segments])
        test = np.concatenate([s.target[len(s.target) - s.test_size :] for s in segments])
        seen = set(train.tolist())
        if len(seen) < 2:
            raise SeriesError(
                f"data.target: the training part of column {self.target!r} holds one class only "
                f"({self.classes[int(train[0])]!r}); there is nothing to learn: use more rows or a smaller test part"
            )
        unseen = sorted(set(test.tolist()) - seen)
        if unseen:
            raise SeriesError(
                f"data.target: class {self.classes[int(unseen[0])]!r} of column {self.target!r} appears in the "
                "test part only; a model cannot learn it: move the split (test_size) or drop the class"
            )

    def _entities(self, table: Table) -> dict[str, np.ndarray]:
        """Each entity's row positions, in order of first appearance, each checked
        to be in time order by `order` (strictly increasing)."""
        names = [cell for _, cell in table.cells(self.entity, "data.entity")]
        positions: dict[str, list[int]] = {}
        for position, name in enumerate(names):
            positions.setdefault(name, []).append(position)
        if self.order is not None:
            cells = table.cells(self.order, "data.order")
            numeric = all(_is_number(cell) for _, cell in cells)
            keys = [float(cell) if numeric else cell for _, cell in cells]
            for name, rows in positions.items():
                for earlier, later in zip(rows, rows[1:]):
                    if not keys[earlier] < keys[later]:
                        what = "repeats" if keys[earlier] == keys[later] else "is lower than"
                        raise SeriesError(
                            f"data.order: {table.path} row {cells[later][0]}, column {self.order!r}: "
                            f"{echo(cells[later][1])} {what} {echo(cells[earlier][1])} of row {cells[earlier][0]} "
                            f"within entity {echo(name)}; sort the file by {self.entity} and {self.order}, "
                            "one row per step"
                        )
        return {name: np.array(rows) for name, rows in positions.items()}

    def generate(self, batch_size: int, rng: np.random.Generator):
        windows = self.windows
        if windows.lanes is None:
            return super().generate(batch_size, rng)
        lanes = windows.lanes
        x_train, y_train, _, _ = lanes.arrays(windows.x_train, windows.y_train, lanes.train_counts, batch_size)
        x_test, y_test, _, _ = lanes.arrays(windows.x_test, windows.y_test, lanes.test_counts, batch_size)
        return x_train, y_train, x_test, y_test

    def lane_starts(self, batch_size: int) -> tuple[np.ndarray, np.ndarray] | None:
        windows = self.windows
        if windows.lanes is None:
            return None
        lanes = windows.lanes
        _, _, train, _ = lanes.arrays(windows.x_train, windows.y_train, lanes.train_counts, batch_size)
        _, _, test, _ = lanes.arrays(windows.x_test, windows.y_test, lanes.test_counts, batch_size)
        return train, test

    def notes(self, train_windows: int, batch_size: int) -> list[str]:
        notes = super().notes(train_windows, batch_size)
        windows = self.windows
        if windows.lanes is not None:
            lanes = windows.lanes
            cut_train = lanes.arrays(windows.x_train, windows.y_train, lanes.train_counts, batch_size)[3]
            cut_test = lanes.arrays(windows.x_test, windows.y_test, lanes.test_counts, batch_size)[3]
            notes.append(
                f"note: {len(lanes.names)} entities on {batch_size} lanes; {cut_train} of {sum(lanes.train_counts)} "
                f"training and {cut_test} of {sum(lanes.test_counts)} test windows cut at the lanes' ends to "
                "make whole batches (the forecasts use every window)"
            )
        return notes


def _classes(cells: list[str]) -> list[str]:
    """A label column's classes: its distinct values, in numeric order if all are
    numbers, else in text order."""
    values = sorted(set(cells))
    return sorted(values, key=float) if all(_is_number(value) for value in values) else values


def _label_kind(cells: list[str]) -> tuple[str, list[str] | None]:
    """The kind a target column's cells suggest, and its classes if a label. A
    column of numbers with a few cells that are not (a typo, a missing value) is
    read as numbers, so that the numeric reader names the bad cell."""
    values = sorted(set(cells))
    numeric = [cell for cell in cells if _is_number(cell)]
    if 2 * len(numeric) > len(cells):
        numbers = sorted({float(cell) for cell in numeric})
        if numbers == [0.0, 1.0] and len(numeric) == len(cells):
            return "binary", sorted(values, key=float)
        return "regression", None
    return ("binary" if len(values) == 2 else "categorical"), values


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
