"""Judge claims against runs: a verdict, the numbers behind it, the test that
decided it, and its raw and Holm-adjusted p-values.

Each claim is first assessed on its own (stats.py picks the test and the
bootstrap interval); then the p-values of every claim judged together (a
report) are Holm-adjusted, and each verdict is decided on its adjusted p-value:

- supported: the claim's test is significant after the adjustment, in the
  claimed direction, and the 95% interval clears the claim's min_difference;
- not supported: the 95% interval rules out any effect that matters in the
  claimed direction (the opposite direction, or inside ±min_difference);
- inconclusive: neither.

The adjustment guards against false "supported"; "not supported" rests on the
interval alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from stateful_lab.config.claims import HIGHER_IS_BETTER, Claim
from stateful_lab.results import stats
from stateful_lab.results.formatting import number

ALPHA = stats.ALPHA
WORDS = {
    "claim": {"yes": "supported", "no": "not supported"},
    "result": {"yes": "reproduced", "no": "not reproduced"},
}


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    outcome: str
    """yes, no, inconclusive, or no data (no finished runs to judge)."""
    numbers: str
    rule: str
    test: str = ""
    """The test whose p-value decided (stats.py's names), or what decided instead."""
    p_value: float = math.nan
    """Raw p-value of the claim's test."""
    p_adjusted: float = math.nan
    """Holm-adjusted over the claims judged together."""

    @property
    def word(self) -> str:
        if self.outcome in ("inconclusive", "no data"):
            return self.outcome
        return WORDS[self.claim.kind][self.outcome]

    @property
    def passed(self) -> bool | None:
        """True when supported, False when not, None when inconclusive or no data."""
        return {"yes": True, "no": False}.get(self.outcome)


@dataclass(frozen=True)
class _Finding:
    """A claim assessed alone: its test's raw p-value and how the verdict follows
    from the adjusted one."""

    claim: Claim
    numbers: str
    rule: str
    test: str = ""
    p_value: float = math.nan
    supportable: bool = False
    """The estimate lies where the claim says (direction, interval beyond the size)."""
    refuted: bool = False
    """The interval rules out an effect that matters in the claimed direction."""
    no_data: bool = False

    def verdict(self, p_adjusted: float) -> Verdict:
        if self.no_data:
            outcome = "no data"
        elif self.supportable and p_adjusted < ALPHA:
            outcome = "yes"
        elif self.refuted:
            outcome = "no"
        else:
            outcome = "inconclusive"
        numbers = self.numbers
        if not math.isnan(self.p_value):
            numbers += f"; {self.test} p={number(self.p_value, '.2g')}, Holm p={number(p_adjusted, '.2g')}"
        return Verdict(self.claim, outcome, numbers, self.rule, self.test, self.p_value, p_adjusted)


def evaluate_claims(judged: list[tuple[Claim, pd.DataFrame, pd.DataFrame | None]]) -> list[Verdict]:
    """Verdicts for claims judged together, each with its runs table (one row per
    run, as runs.csv) and epochs table (needed for seconds_to_reach, else None).
    The p-values are Holm-adjusted across all of them."""
    findings = [_assess(claim, runs, epochs) for claim, runs, epochs in judged]
    adjusted = stats.holm([finding.p_value for finding in findings])
    return [finding.verdict(p) for finding, p in zip(findings, adjusted)]


def evaluate_claim(claim: Claim, runs: pd.DataFrame, epochs: pd.DataFrame | None = None) -> Verdict:
    """One claim judged alone (Holm over one claim changes nothing)."""
    return evaluate_claims([(claim, runs, epochs)])[0]


def _assess(claim: Claim, runs: pd.DataFrame, epochs: pd.DataFrame | None) -> _Finding:
    expect = claim.expect
    ok = runs[runs["status"] == "ok"]
    if expect.metric == "seconds_to_reach":
        ok = _with_seconds_to_reach(ok, epochs, expect.reach)
        finding = _assess_metric(claim, ok)
        reached = "; ".join(
            f"{_describe(select)} reached {expect.reach:g} in {int(rows['reached_target'].sum())}/{len(rows)} runs"
            for select in (expect.select, expect.versus)
            if select is not None
            for rows in [_selected(ok, select)]
        )
        return replace(finding, numbers=f"{finding.numbers}; {reached}")
    return _assess_metric(claim, ok)


def _assess_metric(claim: Claim, ok: pd.DataFrame) -> _Finding:
    expect = claim.expect
    if expect.test == "gap_shrinks":
        return _gap_shrinks(claim, ok)
    if expect.test == "falls_then_rises":
        return _falls_then_rises(claim, ok)
    selected = per_seed(ok, expect.select, expect.metric)
    if not len(selected):
        return _Finding(claim, "no finished runs match " + _describe(expect.select), "", no_data=True)
    if expect.test in ("at_least", "at_most", "between"):
        return _threshold(claim, selected)
    if expect.test in ("share_at_least", "share_at_most"):
        return _share(claim, selected)
    other = _versus(ok, expect)
    if not len(other):
        return _Finding(claim, "no finished runs match " + _describe(expect.versus or {}), "", no_data=True)
    if min(len(selected), len(other)) < 2:
        return _Finding(claim, "fewer than 2 runs on a side", "", no_data=True)
    return _two_groups(claim, selected, other)


def _versus(ok: pd.DataFrame, expect) -> pd.Series:
    """The other side of a two-group test, by seed: the `versus` runs' metric, or,
    against a baseline, that baseline's figure beside each selected run (the same
    for every seed, so the paired test is the selected runs' against a constant)."""
    versus = dict(expect.versus or {})
    baseline = versus.pop("baseline", None)
    if baseline is None:
        return per_seed(ok, versus, expect.metric)
    if baseline not in ok:
        return pd.Series(dtype=float)
    return per_seed(ok, {**expect.select, **versus}, baseline)


def _selected(runs: pd.DataFrame, select: dict) -> pd.DataFrame:
    """The rows whose columns hold the selected values. Both sides carry their
    config types (Experiment.typed: report.load_results types the columns, the
    config its selections), so 1 selects a float key's 1.0 and never "1"."""
    for key, value in select.items():
        runs = runs[runs[key].map(lambda cell, value=value: cell == value).astype(bool)]
    return runs


def per_seed(runs: pd.DataFrame, select: dict, metric: str) -> pd.Series:
    """The selected runs' values, indexed by seed (the key that pairs two groups)."""
    rows = _selected(runs, select)
    return rows.set_index("seed")[metric].dropna().astype(float)


def _with_seconds_to_reach(runs: pd.DataFrame, epochs: pd.DataFrame | None, reach: float) -> pd.DataFrame:
    """runs with seconds_to_reach: the epochs up to and including the first whose
    test accuracy is at least `reach`, times the run's steady time per epoch
    (epoch_seconds, which leaves out epoch 0's one-off tracing and compilation).
    A run that never reaches it counts all its epochs, and reached_target False."""
    if epochs is None:
        raise ValueError("seconds_to_reach needs the epochs table")
    figures = {"status", "seconds", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_rmse"}
    figures.add("forecast_accuracy")
    keys = [column for column in runs.columns if column in epochs.columns and column not in figures]
    rows = []
    for _, run in epochs[epochs["status"] == "ok"].groupby(keys, sort=False, dropna=False):
        hit = np.flatnonzero(run.sort_values("epoch")["test_accuracy"].to_numpy() >= reach)
        rows.append(
            dict(run[keys].iloc[0])
            | {"epochs_to_reach": hit[0] + 1 if len(hit) else len(run), "reached_target": bool(len(hit))}
        )
    derived = pd.DataFrame(rows, columns=[*keys, "epochs_to_reach", "reached_target"])
    runs = runs.drop(columns=["seconds_to_reach", "epochs_to_reach", "reached_target"], errors="ignore").merge(
        derived, on=keys
    )
    return runs.assign(seconds_to_reach=runs["epochs_to_reach"] * runs["epoch_seconds"])


def _reached(values: pd.Series, claim: Claim) -> tuple[int, int]:
    """How many seeds reach the claim's threshold, of how many."""
    expect = claim.expect
    if expect.metric in HIGHER_IS_BETTER:
        return int((values >= expect.reach).sum()), len(values)
    return int((values <= expect.reach).sum()), len(values)


def _share_text(values: pd.Series, claim: Claim) -> str:
    if claim.expect.reach is None or claim.expect.metric == "seconds_to_reach":
        return ""
    reached, total = _reached(values, claim)
    sign = "≥" if claim.expect.metric in HIGHER_IS_BETTER else "≤"
    return f"; {sign} {claim.expect.reach:g} in {reached}/{total} seeds"


def _threshold(claim: Claim, values: pd.Series) -> _Finding:
    """The mean against a fixed value: a one-sample test (t, or Wilcoxon when
    Shapiro-Wilk rejects normality) in the claimed direction, the bootstrap
    interval of the mean for the other outcome."""
    expect = claim.expect
    array = values.to_numpy()
    test = stats.one_sample_test(array)
    low, high = stats.mean_interval(array)
    numbers = (
        f"{expect.metric}, {_describe(expect.select)}: mean {array.mean():.3f} [{number(low)}, {number(high)}], "
        f"n={len(array)}{_share_text(values, claim)}"
    )
    if expect.test == "at_least":
        p_value = stats.one_sample_p(test, array, expect.value, "greater")
        rule = f"mean > {expect.value:g}"
        refuted = high < expect.value
    elif expect.test == "at_most":
        p_value = stats.one_sample_p(test, array, expect.value, "less")
        rule = f"mean < {expect.value:g}"
        refuted = low > expect.value
    else:  # between: both one-sided tests must hold, so the larger p decides
        p_value = max(
            stats.one_sample_p(test, array, expect.low, "greater"),
            stats.one_sample_p(test, array, expect.high, "less"),
        )
        rule = f"{expect.low:g} < mean < {expect.high:g}"
        refuted = high < expect.low or low > expect.high
    return _Finding(claim, numbers, f"{test}: {rule}", test, p_value, supportable=True, refuted=bool(refuted))


def _share(claim: Claim, values: pd.Series) -> _Finding:
    """The share of seeds reaching `reach` against `value`: an exact binomial test,
    with the Clopper-Pearson interval for the other outcome."""
    from scipy.stats import binomtest

    expect = claim.expect
    reached, total = _reached(values, claim)
    low, high = stats.share_interval(reached, total)
    sign = "≥" if expect.metric in HIGHER_IS_BETTER else "≤"
    numbers = (
        f"{expect.metric}, {_describe(expect.select)}: {sign} {expect.reach:g} in {reached}/{total} seeds, "
        f"share {reached / total:.2f} [{low:.2f}, {high:.2f}]; mean {values.mean():.3f}"
    )
    if expect.test == "share_at_least":
        p_value = binomtest(reached, total, expect.value, alternative="greater").pvalue
        rule, refuted = f"share > {expect.value:g}", high < expect.value
    else:
        p_value = binomtest(reached, total, expect.value, alternative="less").pvalue
        rule, refuted = f"share < {expect.value:g}", low > expect.value
    test = "exact binomial test"
    return _Finding(claim, numbers, f"{test}: {rule}", test, float(p_value), supportable=True, refuted=bool(refuted))


def _two_groups(claim: Claim, selected: pd.Series, other: pd.Series) -> _Finding:
    expect = claim.expect
    size = expect.min_difference
    comparison, first, second = stats.compare(selected, other)
    low, high = comparison.low, comparison.high
    numbers = (
        f"{expect.metric}, {_describe(expect.select)} {comparison.mean_first:.3f} vs {_describe(expect.versus)} "
        f"{comparison.mean_second:.3f}: difference {comparison.difference:+.3f} "
        f"[{number(low, '+.3f')}, {number(high, '+.3f')}]"
        f" ({_pairing(comparison)}){_share_text(selected, claim)}"
    )
    test = comparison.test
    if expect.test in ("greater", "less"):
        sign = 1 if expect.test == "greater" else -1
        supportable = sign * comparison.difference > 0 and (low > size if sign > 0 else high < -size)
        refuted = high < size if sign > 0 else low > -size
        rule = f"{test}, {'>' if sign > 0 else '<'} by more than {size:g}"
        return _Finding(claim, numbers, rule, test, comparison.p_value, bool(supportable), bool(refuted))
    if expect.test == "similar":  # two one-sided tests against ±size: the larger p decides
        p_value = max(
            stats.shifted_p(test, first, second, -size, "greater"),
            stats.shifted_p(test, first, second, size, "less"),
        )
        refuted = low > size or high < -size
        rule = f"{test}, equivalence (two one-sided tests) within ±{size:g}"
        return _Finding(claim, numbers, rule, test, p_value, True, bool(refuted))
    # not_greater: one-sided test that the difference is below +size (non-inferiority)
    p_value = stats.shifted_p(test, first, second, size, "less")
    rule = f"{test}, non-inferiority: difference < +{size:g}"
    return _Finding(claim, numbers, rule, test, p_value, True, bool(low > size))


def _pairing(comparison: stats.Comparison) -> str:
    if comparison.paired:
        left_out = f", {comparison.unmatched} runs without a partner left out" if comparison.unmatched else ""
        return f"paired by seed, n={comparison.n_first}{left_out}"
    return f"unpaired, n={comparison.n_first} and {comparison.n_second}"


def _gap_shrinks(claim: Claim, ok: pd.DataFrame) -> _Finding:
    """Per seed, the gap |selected - versus| at the smallest and the largest value
    of `over`; the change (largest minus smallest) is a paired comparison, which
    must be below -min_difference."""
    expect = claim.expect
    values = sorted(ok[expect.over].unique())
    if len(values) < 2:
        return _Finding(claim, f"{expect.over} has fewer than two values", "", no_data=True)
    gaps = {}
    for value in (values[0], values[-1]):
        at_value = ok[ok[expect.over] == value]
        first = per_seed(at_value, expect.select, expect.metric)
        second = per_seed(at_value, expect.versus or {}, expect.metric)
        gaps[value] = (first - second).abs().dropna()
    small, large = gaps[values[0]], gaps[values[-1]]
    if min(len(small), len(large)) < 2:
        return _Finding(claim, "fewer than 2 seeds with both sides finished", "", no_data=True)
    comparison, _, _ = stats.compare(large, small)
    size = expect.min_difference
    numbers = (
        f"{expect.metric} gap |{_describe(expect.select)} - {_describe(expect.versus)}| at {expect.over}={values[0]}: "
        f"{small.mean():.3f}; at {values[-1]}: {large.mean():.3f}; change {comparison.difference:+.3f} "
        f"[{number(comparison.low, '+.3f')}, {number(comparison.high, '+.3f')}] ({_pairing(comparison)})"
    )
    rule = f"{comparison.test}, gap smaller at the largest {expect.over} by more than {size:g}"
    supportable = comparison.difference < 0 and comparison.high < -size
    return _Finding(
        claim, numbers, rule, comparison.test, comparison.p_value, bool(supportable), bool(comparison.low > -size)
    )


def _falls_then_rises(claim: Claim, ok: pd.DataFrame) -> _Finding:
    """The selected runs' mean over `over`: lowest at an inner value, and below
    both ends by more than min_difference (two paired comparisons; the larger p
    decides, as both must hold). Not supported when either end's interval rules
    out a difference of that size."""
    expect = claim.expect
    selected = _selected(ok, expect.select)
    values = sorted(selected[expect.over].unique())
    if len(values) < 3:
        return _Finding(claim, f"{expect.over} needs at least three values", "", no_data=True)
    means = selected.groupby(expect.over)[expect.metric].mean()
    lowest = means.idxmin()
    curve = ", ".join(f"{value}: {means[value]:.4g}" for value in values)
    if lowest in (values[0], values[-1]):
        numbers = f"{expect.metric}, {_describe(expect.select)} by {expect.over}: {curve}; lowest at an end ({lowest})"
        return _Finding(claim, numbers, "lowest mean at an inner value", "lowest mean", refuted=True)
    at = {value: selected[selected[expect.over] == value].set_index("seed")[expect.metric] for value in values}
    size = expect.min_difference
    ends = [stats.compare(at[end], at[lowest])[0] for end in (values[0], values[-1])]
    numbers = (
        f"{expect.metric}, {_describe(expect.select)} by {expect.over}: {curve}; lowest at {lowest}, "
        + "; ".join(
            f"{end} minus {lowest}: {c.difference:+.4g} [{number(c.low, '+.3f')}, {number(c.high, '+.3f')}]"
            for end, c in zip((values[0], values[-1]), ends)
        )
    )
    test = ends[0].test if ends[0].test == ends[1].test else f"{ends[0].test} / {ends[1].test}"
    rule = f"{test}, both ends above the lowest inner value by more than {size:g}"
    return _Finding(
        claim,
        numbers,
        rule,
        test,
        max(c.p_value for c in ends),
        all(c.low > size for c in ends),
        any(c.high < size for c in ends),
    )


def _describe(select: dict | None) -> str:
    return (
        ", ".join(f"{value}" if key == "variant" else f"{key}={value}" for key, value in (select or {}).items())
        or "all"
    )
