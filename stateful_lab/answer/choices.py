"""What the user's table says, for `ask` (docs/design.md, "ask"): the checks of
the options against the data, and the choices read from it (inputs,
differencing, the windows, the lanes), each with its reason. TensorFlow-free:
it reads the table and does arithmetic. `design` turns these into a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stateful_lab.errors import LabError
from stateful_lab.tasks.csvfile import SeriesError, Table, read_table
from stateful_lab.tasks.table import TableTask
from stateful_lab.userfiles import echo

WINDOW = 1
"""The window both variants share: one row, so a stateful model's windows follow
each other exactly."""
MIN_LONGER = 4
"""The shortest longer window, when no lag beyond the current row stands out."""
MAX_WINDOW = 24
"""The longest window `ask` tries (its cost grows with it, in training and in serving)."""
MAX_LANES = 16
"""The most entities trained side by side (lanes of a batch)."""
MAX_CUT = 0.1
"""The largest share of training windows the lanes may cut to make whole batches."""
MIN_TRAIN, MIN_TEST = 50, 10
"""The fewest training windows and test forecasts `ask` will judge on."""
TREND = 0.9
"""A target whose lag-1 autocorrelation reaches this is modelled by its changes."""
ALPHA = 0.05
TEST_FRACTION = 0.2
"""The share of each series held out and forecast walk-forward (the table task's default)."""
DEFAULT_SEEDS = 10


class QuestionError(LabError, ValueError):
    """Options that contradict the data, or data that cannot answer; one line."""


@dataclass(frozen=True)
class Question:
    """What the user asks: a table, the column to predict and how."""

    csv: Path
    target: str
    inputs: list[str] | None = None
    entity: str | None = None
    order: str | None = None
    horizon: int = 1
    kind: str | None = None
    seeds: int = DEFAULT_SEEDS


@dataclass(frozen=True)
class Choices:
    """What the table says: the settings read from it, and why each."""

    inputs: list[str]
    kind: str
    classes: list[str] | None
    difference: int
    longer: int
    batch: int
    batches: int
    """Batches an epoch at that batch size."""
    test_windows: int
    baselines: dict[int, dict[str, float]]
    """Every baseline's figure at each window (WINDOW and `longer`)."""
    reasons: dict[str, str]
    """why_inputs, why_difference, why_longer, why_batch."""

    @property
    def labels(self) -> bool:
        return self.kind in ("binary", "categorical")


def choose(question: Question) -> Choices:
    """Check the question against its table and read the settings from it; a
    QuestionError (one line) says why the data cannot answer."""
    table = _read(question.csv)
    inputs, why_inputs = _inputs(question, table)
    _check_options(question, table, inputs)
    segments = _segments(question, table)
    if _numeric(table, question.target):
        _check_not_constant(question, table.numbers(question.target, "--target"), segments)
    probe = _task(question, inputs, difference=0, timesteps=WINDOW)
    labels = probe.kind in ("binary", "categorical")
    target = None if labels else table.numbers(question.target, "--target")
    difference, why_difference = _difference(question, target, segments, probe, labels)
    task = _task(question, inputs, difference=difference, timesteps=WINDOW)
    windows = _windows(task)
    train_windows, test_windows = len(windows.y_train), len(windows.forecast.actual)
    if train_windows < MIN_TRAIN or test_windows < MIN_TEST:
        raise QuestionError(
            f"{question.csv}: {train_windows} training windows and {test_windows} test forecasts; ask needs at "
            f"least {MIN_TRAIN} and {MIN_TEST} to judge a model (use a longer table, or more entities)"
        )
    cap = _cap(segments, task)
    longer, why_longer = _longer(question, table, inputs, segments, task, cap, labels)
    batch, why_batch = _batch(windows)
    baselines = {
        WINDOW: dict(windows.forecast.baselines),
        longer: dict(_windows(_with(task, longer)).forecast.baselines),
    }
    return Choices(
        inputs,
        probe.kind,
        list(probe.classes) if labels else None,
        difference,
        longer,
        batch,
        max(1, (train_windows - _cut(windows, batch)) // batch),
        test_windows,
        baselines,
        {"inputs": why_inputs, "difference": why_difference, "longer": why_longer, "batch": why_batch},
    )


def _read(path: Path) -> Table:
    try:
        return read_table(path)
    except SeriesError as error:
        raise QuestionError(str(error).replace("data.csv: ", "", 1)) from None


def _numeric(table: Table, column: str) -> bool:
    cells = [cell for _, cell in table.cells(column, "--inputs")]
    try:
        return all(math.isfinite(float(cell)) for cell in cells)
    except ValueError:
        return False


def _inputs(question: Question, table: Table) -> tuple[list[str], str]:
    """The columns the model reads: as given, or every other numeric column (and
    the target too when it is a number predicted ahead)."""
    if question.target not in table.header:
        columns = ", ".join(table.header)
        raise QuestionError(
            f"--target: {echo(question.target)} is not a column of {question.csv}; its columns are {columns}"
        )
    if question.inputs:
        return list(question.inputs), "as given (--inputs)"
    keys = {question.entity, question.order, question.target}
    others = [column for column in table.header if column not in keys and _numeric(table, column)]
    own = question.horizon >= 1 and _numeric(table, question.target) and question.kind in (None, "regression")
    inputs = others + ([question.target] if own else [])
    if not inputs:
        raise QuestionError(
            f"--inputs: {question.csv} has no numeric column besides the target to read at horizon 0; name the "
            "inputs with --inputs, or predict ahead with --horizon 1"
        )
    why = "every numeric column but the entity and order" + (", the target's own past included" if own else "")
    return inputs, why


def _check_options(question: Question, table: Table, inputs: list[str]) -> None:
    if question.horizon == 0 and question.target in inputs:
        raise QuestionError(
            f"--inputs: the target {question.target!r} is an input and --horizon is 0, so the model would read "
            "the value it predicts; leave the target out of --inputs, or predict ahead with --horizon 1"
        )
    for option, column in (("--entity", question.entity), ("--order", question.order)):
        if column is not None and column not in table.header:
            raise QuestionError(
                f"{option}: {echo(column)} is not a column of {question.csv}; its columns are {', '.join(table.header)}"
            )
        if column is not None and column in (question.target, *inputs):
            raise QuestionError(f"{option}: {column!r} is also the target or an input; name a column of its own")
    if question.entity is not None:
        names = [cell for _, cell in table.cells(question.entity, "--entity")]
        if len(names) > 1 and len(set(names)) == len(names):
            raise QuestionError(
                f"--entity: column {question.entity!r} has a different value on every row ({len(names)} entities "
                "of one row each); name the column that groups rows into series, or leave --entity out"
            )


def _task(question: Question, inputs: list[str], difference: int, timesteps: int) -> TableTask:
    """The table task of the question, resolved and checked (its errors are the
    task's own one-line messages)."""
    raw = {
        "task": "table",
        "csv": str(question.csv),
        "target": question.target,
        "inputs": inputs,
        "entity": question.entity,
        "order": question.order,
        "horizon": question.horizon,
        "kind": question.kind,
        "difference": difference,
        "timesteps": timesteps,
        "test_fraction": TEST_FRACTION,
    }
    try:
        task = TableTask.model_validate({key: value for key, value in raw.items() if value is not None}).resolved()
    except Exception as error:  # pydantic: an option of the wrong kind
        raise QuestionError(f"{question.csv}: {error}".splitlines()[0]) from None
    problems = task.problems(1)
    if problems:
        raise QuestionError(problems[0])
    return task


def _with(task: TableTask, timesteps: int) -> TableTask:
    """The task at another window (a new object: `windows` is cached per task)."""
    return TableTask.model_validate({**task.model_dump(), "timesteps": timesteps})


def _windows(task: TableTask):
    try:
        return task.windows
    except SeriesError as error:
        raise QuestionError(str(error)) from None


def _segments(question: Question, table: Table) -> list[np.ndarray]:
    """Each series' row positions, in time order."""
    if question.entity is None:
        return [np.arange(len(table.rows))]
    probe = TableTask.model_validate(
        {"task": "table", "csv": str(question.csv), "target": question.target, "entity": question.entity}
        | ({"order": question.order} if question.order else {})
    )
    try:
        return list(probe._entities(table).values())
    except SeriesError as error:
        raise QuestionError(str(error)) from None


def _training_rows(segments: list[np.ndarray]) -> list[np.ndarray]:
    """Each series' rows before its test part (its last TEST_FRACTION)."""
    return [rows[: len(rows) - max(1, math.floor(len(rows) * TEST_FRACTION))] for rows in segments]


def _check_not_constant(question: Question, target: np.ndarray, segments) -> None:
    train = np.concatenate([target[rows] for rows in _training_rows(segments)])
    if len(train) and np.ptp(train) == 0:
        raise QuestionError(
            f"--target: column {question.target!r} is {train[0]:g} on every training row; there is nothing to "
            "predict (choose another column)"
        )


def _difference(question: Question, target, segments, task: TableTask, labels: bool) -> tuple[int, str]:
    if labels:
        return 0, "a label is predicted as it is"
    if question.horizon == 0:
        return 0, "horizon 0: the target's value at the window's last row, from the inputs"
    pieces = [target[rows] for rows in _training_rows(segments)]
    r = _lagged_correlation([piece for piece in pieces], [piece for piece in pieces], 1)
    if r >= TREND:
        return (
            1,
            f"the target's lag-1 autocorrelation is {r:.2f} (at least {TREND}): it wanders, so its changes are "
            "modelled",
        )
    return (
        0,
        f"the target's lag-1 autocorrelation is {r:.2f} (below {TREND}): its values are modelled, not their changes",
    )


def _lagged_correlation(inputs: list[np.ndarray], targets: list[np.ndarray], lag: int) -> float:
    """The correlation of input[t - lag] with target[t], pooled over the series
    (each series centred on its own mean)."""
    pairs = [(x[: len(x) - lag] if lag else x, y[lag:]) for x, y in zip(inputs, targets) if len(x) > lag + 1]
    if not pairs:
        return 0.0
    xs = np.concatenate([x - x.mean() for x, _ in pairs])
    ys = np.concatenate([y - y.mean() for _, y in pairs])
    scale = math.sqrt(float(xs @ xs) * float(ys @ ys))
    return float(xs @ ys) / scale if scale > 0 else 0.0


def _cap(segments: list[np.ndarray], task: TableTask) -> int:
    """The longest window the shortest series can afford: a quarter of its training rows."""
    shortest = min(len(rows) for rows in _training_rows(segments))
    return max(WINDOW + 1, min(MAX_WINDOW, (shortest - task.difference - task.horizon) // 4))


def _longer(question: Question, table: Table, inputs, segments, task: TableTask, cap: int, labels: bool):
    """The longer window: one past the farthest lag at which an input's
    correlation with the target stands out from noise (a Bonferroni bound over
    every lag and input tried), at least MIN_LONGER, at most `cap`."""
    train = _training_rows(segments)
    if labels:
        codes = np.array([float(task.classes.index(cell)) for _, cell in table.cells(question.target, "--target")])
        shift = question.horizon
        targets = [[(codes[rows][shift:] == k).astype(float) for rows in train] for k in range(len(task.classes))]
        if len(task.classes) == 2:
            targets = targets[1:]
    else:
        values = table.numbers(question.target, "--target")
        shift = question.horizon
        targets = [[_future(values[rows], shift, task.difference) for rows in train]]
    columns = {name: table.numbers(name, "--inputs") for name in inputs}
    series = {
        name: [np.diff(values[rows]) if task.difference else values[rows] for rows in train]
        for name, values in columns.items()
    }
    lags = range(cap)
    tests = len(lags) * len(series) * len(targets)
    from scipy.stats import norm

    rows = sum(len(rows) for rows in train)
    bound = norm.ppf(1 - ALPHA / (2 * tests)) / math.sqrt(max(rows, 1))
    farthest, strongest = -1, None
    for name, pieces in series.items():
        for target in targets:
            aligned = [(piece[: len(goal)], goal) for piece, goal in zip(pieces, target)]
            for lag in lags:
                r = _lagged_correlation([x for x, _ in aligned], [y for _, y in aligned], lag)
                if abs(r) > bound and lag > farthest:
                    farthest, strongest = lag, (name, lag, r)
    if strongest is None:
        longer = max(MIN_LONGER, WINDOW + 1)
        why = f"no input's correlation with the target stands out from noise (|r| > {bound:.3f}) at any lag below {cap}"
    else:
        name, lag, r = strongest
        longer = max(lag + 1, MIN_LONGER, WINDOW + 1)
        why = (
            f"the farthest lag at which an input is correlated with the target beyond noise is {name!r} {lag} rows "
            f"back (r = {r:.3f}, |r| > {bound:.3f})"
        )
    longer = min(longer, cap)
    if longer <= WINDOW:
        raise QuestionError(f"{question.csv}: the series are too short to try a window longer than {WINDOW} row")
    if longer == cap and (strongest is None or strongest[1] + 1 > cap):
        why += f"; capped at {cap}, a quarter of the shortest series' training rows or {MAX_WINDOW}"
    return longer, why


def _future(values: np.ndarray, horizon: int, difference: int) -> np.ndarray:
    """What a window ending at each row predicts: the target `horizon` rows on
    (its change over the horizon when differenced), aligned with the inputs as
    `_longer` cuts them (differenced inputs start one row later)."""
    if difference:
        change = values[horizon:] - values[: len(values) - horizon] if horizon else np.zeros(0)
        return change[1:]
    return values[horizon:]


def _batch(windows) -> tuple[int, str]:
    lanes = windows.lanes
    if lanes is None:
        return 1, "one series: one lane, so the stateful model carries its state along the whole series"
    entities = len(lanes.names)
    total = sum(lanes.train_counts)
    for size in range(min(entities, MAX_LANES), 0, -1):
        cut = _cut(windows, size)
        if cut <= MAX_CUT * total:
            return size, (
                f"{entities} entities, {size} side by side (one per lane, each carrying its own state); "
                f"{cut} of {total} training windows cut to make whole batches"
            )
    return 1, f"{entities} entities, one after another on one lane"


def _cut(windows, batch: int) -> int:
    lanes = windows.lanes
    if lanes is None:
        return 0
    return lanes.arrays(windows.x_train, windows.y_train, lanes.train_counts, batch)[3]
