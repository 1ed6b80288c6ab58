"""Evaluate a config's claims against its runs: a verdict, the numbers behind it,
and the rule that decided it.

Differences rest on Welch's t-test (two-sided, p < 0.05, in the claimed
direction), never on means alone; "alike" means the 95% Welch interval of the
difference lies within ±margin. Threshold tests compare the mean, and report its
95% interval beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .claimspec import Claim
from .results import METRIC_RANGES, confidence_interval

ALPHA = 0.05
VERDICTS = {"claim": ("supported", "not supported"), "result": ("reproduced", "not reproduced")}


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    passed: bool | None
    """None when there were no finished runs to judge."""
    numbers: str
    rule: str

    @property
    def word(self) -> str:
        if self.passed is None:
            return "no data"
        yes, no = VERDICTS[self.claim.kind]
        return yes if self.passed else no


def evaluate_claim(claim: Claim, runs: pd.DataFrame) -> Verdict:
    """Judge one claim on a runs table (one row per run, as runs.csv)."""
    expect = claim.expect
    selected = _values(runs, expect.select, expect.metric)
    if expect.test == "gap_shrinks":
        return _gap_shrinks(claim, runs)
    if not len(selected):
        return Verdict(claim, None, "no finished runs match " + _describe(expect.select), "")
    if expect.test in ("at_least", "at_most", "between"):
        return _threshold(claim, selected)
    other = _values(runs, expect.versus or {}, expect.metric)
    if not len(other):
        return Verdict(claim, None, "no finished runs match " + _describe(expect.versus or {}), "")
    if expect.test in ("similar", "not_greater"):
        return _within_margin(claim, selected, other)
    return _differs(claim, selected, other)


def _selected(runs: pd.DataFrame, select: dict) -> pd.DataFrame:
    """The rows whose columns hold the selected values. Both sides carry their
    config types (Experiment.typed: report.load_results types the columns, the
    config its selections), so 1 selects a float key's 1.0 and never "1"."""
    for key, value in select.items():
        runs = runs[runs[key].map(lambda cell, value=value: cell == value).astype(bool)]
    return runs


def _values(runs: pd.DataFrame, select: dict, metric: str) -> np.ndarray:
    return _selected(runs[runs["status"] == "ok"], select)[metric].dropna().to_numpy(dtype=float)


def _threshold(claim: Claim, values: np.ndarray) -> Verdict:
    expect = claim.expect
    mean = values.mean()
    low, high = confidence_interval(values, bounds=METRIC_RANGES[expect.metric])
    numbers = (
        f"{expect.metric}, {_describe(expect.select)}: mean {mean:.3f} [{_fmt(low)}, {_fmt(high)}], n={len(values)}"
    )
    if expect.test == "at_least":
        return Verdict(claim, bool(mean >= expect.value), numbers, f"mean ≥ {expect.value}")
    if expect.test == "at_most":
        return Verdict(claim, bool(mean <= expect.value), numbers, f"mean ≤ {expect.value}")
    return Verdict(claim, bool(expect.low <= mean <= expect.high), numbers, f"{expect.low} ≤ mean ≤ {expect.high}")


def welch(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float, float]:
    """Mean difference, its 95% Welch interval, and the two-sided p-value."""
    difference = first.mean() - second.mean()
    var_first, var_second = first.var(ddof=1) / len(first), second.var(ddof=1) / len(second)
    standard_error = math.sqrt(var_first + var_second)
    if standard_error == 0:
        return difference, difference, difference, 0.0 if difference else 1.0
    freedom = (var_first + var_second) ** 2 / (var_first**2 / (len(first) - 1) + var_second**2 / (len(second) - 1))
    half = stats.t.ppf(1 - ALPHA / 2, freedom) * standard_error
    p_value = 2 * stats.t.sf(abs(difference) / standard_error, freedom)
    return difference, difference - half, difference + half, float(p_value)


def _differs(claim: Claim, selected: np.ndarray, other: np.ndarray) -> Verdict:
    expect = claim.expect
    if min(len(selected), len(other)) < 2:
        return Verdict(claim, None, "fewer than 2 runs on a side", "")
    difference, low, high, p_value = welch(selected, other)
    direction = 1 if expect.test == "greater" else -1
    passed = bool(p_value < ALPHA and difference * direction > 0)
    numbers = (
        f"{expect.metric}, {_describe(expect.select)} {selected.mean():.3f} vs {_describe(expect.versus)} "
        f"{other.mean():.3f}: difference {difference:+.3f} [{low:+.3f}, {high:+.3f}], Welch p={p_value:.2g}"
    )
    sign = ">" if direction > 0 else "<"
    return Verdict(claim, passed, numbers, f"mean {sign} other, Welch's t-test p < {ALPHA}")


def _within_margin(claim: Claim, selected: np.ndarray, other: np.ndarray) -> Verdict:
    """similar: the difference's 95% interval inside ±margin; not_greater: its
    upper end at most +margin."""
    expect = claim.expect
    if min(len(selected), len(other)) < 2:
        return Verdict(claim, None, "fewer than 2 runs on a side", "")
    difference, low, high, p_value = welch(selected, other)
    if expect.test == "not_greater":
        passed = bool(high <= expect.margin)
        rule = f"95% interval of the difference below +{expect.margin}"
    else:
        passed = bool(-expect.margin <= low and high <= expect.margin)
        rule = f"95% interval of the difference within ±{expect.margin}"
    numbers = (
        f"{expect.metric}, {_describe(expect.select)} {selected.mean():.3f} vs {_describe(expect.versus)} "
        f"{other.mean():.3f}: difference {difference:+.3f} [{low:+.3f}, {high:+.3f}]"
    )
    return Verdict(claim, passed, numbers, rule)


def _gap_shrinks(claim: Claim, runs: pd.DataFrame) -> Verdict:
    """Per seed, |selected - versus| at the smallest and the largest value of
    `over`; the gap shrinks if it is smaller at the largest (Welch, p < 0.05)."""
    expect = claim.expect
    ok = runs[runs["status"] == "ok"]
    values = sorted(ok[expect.over].unique())
    if len(values) < 2:
        return Verdict(claim, None, f"{expect.over} has fewer than two values", "")
    gaps = {}
    for value in (values[0], values[-1]):
        at_value = ok[ok[expect.over] == value]
        first = _per_seed(at_value, expect.select, expect.metric)
        second = _per_seed(at_value, expect.versus or {}, expect.metric)
        gaps[value] = (first - second).abs().dropna().to_numpy(dtype=float)
    small, large = gaps[values[0]], gaps[values[-1]]
    if min(len(small), len(large)) < 2:
        return Verdict(claim, None, "fewer than 2 seeds with both sides finished", "")
    difference, low, high, p_value = welch(large, small)
    passed = bool(p_value < ALPHA and difference < 0)
    numbers = (
        f"{expect.metric} gap |{_describe(expect.select)} - {_describe(expect.versus)}| at {expect.over}={values[0]}: "
        f"{small.mean():.3f}; at {values[-1]}: {large.mean():.3f}; change {difference:+.3f} "
        f"[{low:+.3f}, {high:+.3f}], Welch p={p_value:.2g}"
    )
    return Verdict(claim, passed, numbers, f"gap smaller at the largest {expect.over}, Welch p < {ALPHA}")


def _per_seed(runs: pd.DataFrame, select: dict, metric: str) -> pd.Series:
    return _selected(runs, select).set_index("seed")[metric]


def _describe(select: dict | None) -> str:
    return (
        ", ".join(f"{value}" if key == "variant" else f"{key}={value}" for key, value in (select or {}).items())
        or "all"
    )


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"
