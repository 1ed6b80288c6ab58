"""table: your own data, a CSV table with one row per time step. Several numeric
input columns, any numeric target column, a horizon h >= 0: each window of the
inputs' last `timesteps` rows predicts the target h rows after the window's last
one (0: at that row, as a filtered value; 1: the next value). Cut, scaled and
scored as the forecast task (`tasks.windows`), which is this task with one column
as input and target and horizon 1.

What is not here yet (the your-own-data issue): label targets (binary and
categorical), several series in one file (an entity column), per-variant windows.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from stateful_lab.tasks.base import register
from stateful_lab.tasks.csvfile import read_table
from stateful_lab.tasks.forecast import WalkForward, absolute
from stateful_lab.tasks.windows import Windows, cut

DEFAULT_TEST_FRACTION = 0.2
"""The share of the rows held out when neither test_size nor test_fraction is given."""


@register
class Table(WalkForward):
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

    per_step_targets: ClassVar[bool] = False

    def resolved(self, config_dir: Path | None = None) -> Table:
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
        if self.difference and self.horizon == 0:
            problems.append(
                "data.difference: a target differenced over horizon 0 is always 0; use difference: 0 with horizon 0"
            )
        return problems or self.checked()

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
        return cut(columns, target, horizon=self.horizon, test_size=self.held_out(len(target)), what=what, **options)
