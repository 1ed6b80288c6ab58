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
(`tasks.windows.Lanes`): a stateful model carries each entity's state along its
own history, and a lane's state (only that lane's) is zeroed when the lane takes
its next entity. Forecasts walk through each entity in turn, from a zero state.

What is not here yet (the your-own-data issue): label targets (binary and
categorical), per-variant windows.
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
from stateful_lab.tasks.windows import Segment, Windows, cut, cut_segments
from stateful_lab.userfiles import echo

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

    per_step_targets: ClassVar[bool] = False

    def resolved(self, config_dir: Path | None = None) -> TableTask:
        update = {
            "csv": absolute(self.csv, config_dir),
            "inputs": self.inputs or [self.target],
            "difference": (1 if self.horizon >= 1 else 0) if self.difference is None else self.difference,
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
        target = table.numbers(self.target, "data.target")
        columns = np.stack([table.numbers(name, "data.inputs") for name in inputs], axis=1)
        what = f"column {self.target!r} of {self.csv}"
        options = self.window_options() | {"difference": self.difference or 0}
        if self.entity is None:
            test_size = self.held_out(len(target))
            return cut(columns, target, horizon=self.horizon, test_size=test_size, what=what, **options)
        segments = [
            Segment(columns[rows], target[rows], self.held_out(len(rows)), name)
            for name, rows in self._entities(table).items()
        ]
        return cut_segments(segments, horizon=self.horizon, what=what, entities=True, **options)

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


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
