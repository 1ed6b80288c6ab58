"""The one CSV reader of the lab: the user's table, read bounded and strictly, and
its columns as numbers or labels. Every problem is a SeriesError of one line that
names the file, and the row and column where there is one."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stateful_lab.errors import LabError
from stateful_lab.userfiles import UserFileError, echo, read_bytes, shorten

MAX_TABLE_BYTES = 256 * 2**20
"""The largest CSV file the lab reads (a series of millions of values fits)."""
MAX_MAGNITUDE = 1e150
"""Values beyond this overflow float64 when differenced and squared (RMSE)."""


class SeriesError(LabError, ValueError):
    """A series that cannot be read or used; the message is one line."""


@dataclass(frozen=True)
class Table:
    """A CSV file's header and its rows (each numbered as in the file, 2 onwards)."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]

    def cells(self, column: str, key: str) -> list[tuple[int, str]]:
        """The column's cells with their row numbers; `key` is the config key that
        named the column, for the message if there is none."""
        if column not in self.header:
            columns = shorten(", ".join(self.header), 200)
            raise SeriesError(f"{key}: {echo(column)} is not a column of {self.path}; its columns are {columns}")
        index = self.header.index(column)
        return [(number, row[index].strip()) for number, row in self.rows]

    def numbers(self, column: str, key: str) -> np.ndarray:
        """The column's values as float64, each a finite number of a size whose
        arithmetic cannot overflow."""
        values = []
        for number, cell in self.cells(column, key):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                what = "empty" if not cell else f"not a finite number ({echo(cell)})"
                raise SeriesError(
                    f"data.csv: {self.path} row {number}, column {column!r} is {what}; every row needs a value"
                )
            if abs(value) > MAX_MAGNITUDE:
                raise SeriesError(
                    f"data.csv: {self.path} row {number}, column {column!r} is {value:g}; values beyond "
                    f"{MAX_MAGNITUDE:g} overflow the forecast errors' arithmetic, so rescale the column"
                )
            values.append(value)
        return np.array(values, dtype=np.float64)


def read_table(path: Path) -> Table:
    """The file at `path` as a Table: read bounded (MAX_TABLE_BYTES), UTF-8 with a
    byte-order mark allowed, every row as wide as the header and every column name
    once. A blank line is a row of empty cells (in a one-column file, a missing value)."""
    try:
        data = read_bytes(path, MAX_TABLE_BYTES, "a CSV file")
    except UserFileError as error:
        raise SeriesError(f"data.csv: {error}") from None
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
    return Table(path, header, rows)


def read_series(path: Path, column: str) -> np.ndarray:
    """One column's values as float64, in file order."""
    return read_table(path).numbers(column, "data.column")
