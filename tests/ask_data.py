"""Tables whose answer to "should my model be stateful?" is known by construction,
for the known-answer tests of `ask` (tests/test_ask.py says why each answer must be
what it is). Each is small, so that `ask` answers it in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def carried(path: Path, sequences: int = 30, length: int = 40, seed: int = 0) -> Path:
    """One series of consecutive sequences: each sequence's first row sets a sign
    (the marker column, +1 or -1 on that row, 0 on every other), and every row's
    target is that sign times the row's own input x."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(sequences):
        sign = rng.choice([-1.0, 1.0])
        x = rng.normal(size=length)
        marker = np.zeros(length)
        marker[0] = sign
        rows += zip(marker, x, sign * x)
    return _write(path, pd.DataFrame(rows, columns=["marker", "x", "y"]))


def far_copy(path: Path, rows: int = 1000, lag: int = 30, seed: int = 1) -> Path:
    """The target copies the input x from `lag` rows back; x is white noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows + lag)
    return _write(path, pd.DataFrame({"x": x[lag:], "y": x[:rows]}))


def inside_window(path: Path, rows: int = 1000, seed: int = 2) -> Path:
    """The target is the product of two inputs on its own row (white noise each)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, rows))
    return _write(path, pd.DataFrame({"a": a, "b": b, "y": a * b}))


def noise(path: Path, rows: int = 1000, seed: int = 3) -> Path:
    """An input and a target, both white noise, independent of each other."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2, rows))
    return _write(path, pd.DataFrame({"x": x, "y": y}))


def entities(path: Path, count: int = 24, seed: int = 4) -> Path:
    """Several series in one file (entity, step), of different lengths: each
    entity's first row sets its own sign (marker), and its target is that sign
    times its own input x, as in `carried`."""
    rng = np.random.default_rng(seed)
    rows = []
    for entity in range(count):
        length = int(rng.integers(30, 51))
        sign = rng.choice([-1.0, 1.0])
        x = rng.normal(size=length)
        marker = np.zeros(length)
        marker[0] = sign
        rows += [(f"e{entity:02d}", step, marker[step], x[step], sign * x[step]) for step in range(length)]
    return _write(path, pd.DataFrame(rows, columns=["entity", "step", "marker", "x", "y"]))


def near_product(path: Path, rows: int = 1000, lag: int = 3, seed: int = 5) -> Path:
    """The target is the product of two inputs `lag` rows back (white noise each)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, rows + lag))
    return _write(path, pd.DataFrame({"a": a[lag:], "b": b[lag:], "y": (a * b)[:rows]}))


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.round(5).to_csv(path, index=False)
    return path
