"""How the results side writes numbers, missing values, Markdown and CSV: one
home, so that every table, report and command says "n/a" and rounds alike."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pandas as pd

MISSING = "n/a"


def missing(value: Any) -> bool:
    """None, NaN or infinite: no figure (an infinite one is never a result)."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def number(value: float, spec: str = ".3f", absent: str = MISSING) -> str:
    """`value` in the format `spec` ("+.3f", ".2g", ...), or `absent` for no figure."""
    return absent if missing(value) else format(value, spec)


def interval(mean: float, low: float, high: float) -> str:
    """A mean and its interval: "0.512 [0.498, 0.526]"; the mean alone without one."""
    if missing(mean):
        return MISSING
    if missing(low):
        return number(mean)
    return f"{number(mean)} [{number(low)}, {number(high)}]"


def json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """A row with no figure as null, as JSON has no NaN."""
    return {key: None if missing(value) else value for key, value in row.items()}


def markdown_row(*cells: str) -> str:
    """A Markdown table row; a | inside a cell (|a - b|) would end the cell."""
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return [markdown_row(*header), "|" + "---|" * len(header), *(markdown_row(*row) for row in rows)]


def csv_text(frame: pd.DataFrame) -> str:
    """The table as CSV, as to_csv(index=False, float_format="%.6g") writes it
    (floats to six significant digits, a missing value as an empty field), but
    formatted a column at a time and written by the csv module: to_csv formats
    and writes value by value through several Python calls."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    writer.writerows(zip(*(_csv_column(values) for _, values in frame.items())))
    return buffer.getvalue()


def _csv_column(values: pd.Series) -> list:
    if values.dtype.kind == "f":
        return [f"{value:.6g}" if value == value else "" for value in values.tolist()]
    return ["" if value is None or value != value else value for value in values.tolist()]
