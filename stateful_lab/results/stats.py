"""The statistics every verdict and table rests on, in one place (README, "How
verdicts are decided").

- Intervals: scipy.stats.bootstrap, BCa, 95%, 9999 resamples from a fixed seed,
  so a report is the same each time it is built (percentile where BCa is
  undefined); constant values give a zero-width interval.
- Two groups that share seeds are paired (the same data and initial weights per
  seed): the per-seed differences are tested with the paired t-test, or with the
  Wilcoxon signed-rank test when Shapiro-Wilk rejects their normality (p < 0.05).
  Groups without shared seeds keep Welch's t-test. The same rule picks the test
  for one group against a fixed value.
- Many claims: Holm's step-down adjustment of the p-values of a report.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _scipy_stats():
    """scipy.stats, imported when a figure first needs it: its import takes a second
    or more, and a table of one seed per point (no interval, no test) never does."""
    from scipy import stats

    return stats


ALPHA = 0.05
"""Significance level, after the Holm adjustment."""
CONFIDENCE = 0.95
RESAMPLES = 9999
BOOTSTRAP_SEED = 20_261_125
"""Every interval draws its resamples from a generator seeded with this, so the
same values always give the same interval."""
BATCH = 1000
"""A one-sample interval resamples this many at a time (scipy's `batch`): memory
in proportion to it times the sample, not to all RESAMPLES times the sample. A
10,000-run sweep's 5,000 seeds took 800 MB for each interval of its summary
(resamples and their indices), its process's peak. The same interval: scipy draws
the batches one after another from the one generator (tested). Two samples are
resampled in turn within each batch, which draws them in another order, so a
two-sample interval keeps one batch."""
NORMALITY_ALPHA = 0.05
"""Shapiro-Wilk p below this: the differences are far from normal, Wilcoxon decides."""

PAIRED_T, WILCOXON, WELCH = "paired t-test", "Wilcoxon signed-rank", "Welch's t-test"
ONE_SAMPLE_T = "one-sample t-test"


def _generator() -> np.random.Generator:
    return np.random.default_rng(BOOTSTRAP_SEED)


def mean_interval(values) -> tuple[float, float]:
    """95% BCa bootstrap interval of the mean (NaN with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    return _bootstrap((values,), lambda sample, axis: np.mean(sample, axis=axis), BATCH)


def difference_interval(first, second) -> tuple[float, float]:
    """95% BCa bootstrap interval of mean(first) - mean(second), two independent groups."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if min(len(first), len(second)) < 2:
        return math.nan, math.nan
    if np.ptp(first) == 0 and np.ptp(second) == 0:
        difference = float(first[0] - second[0])
        return difference, difference
    return _bootstrap((first, second), lambda one, two, axis: np.mean(one, axis=axis) - np.mean(two, axis=axis))


def _bootstrap(data: tuple, statistic, batch: int | None = None) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on a degenerate sample warns, and we fall back
        for method in ("BCa", "percentile"):
            result = _scipy_stats().bootstrap(
                data,
                statistic,
                n_resamples=RESAMPLES,
                confidence_level=CONFIDENCE,
                method=method,
                vectorized=True,
                rng=_generator(),
                batch=batch,
            )
            low, high = result.confidence_interval
            if not (math.isnan(low) or math.isnan(high)):
                return float(low), float(high)
    return math.nan, math.nan


def band(matrix: np.ndarray, resamples: int = 1999) -> np.ndarray:
    """Percentile bootstrap 95% band of the mean over the columns (seeds), for each
    row (an epoch or a forecast step) at once: one resampling of the seeds is used
    for every row. Shape (rows, 2); NaN with fewer than two columns."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[1] < 2:
        return np.full((matrix.shape[0], 2), math.nan)
    seeds = matrix.shape[1]
    picks = _generator().integers(0, seeds, size=(resamples, seeds))
    gaps = np.isnan(matrix).any(axis=1)  # a seed missing an epoch
    # A resample's mean is a product with how often it picked each seed: one matrix
    # product instead of a (rows, resamples, seeds) copy of the values (the report's
    # largest cost after drawing: 5 s of 17 over the committed results). A NaN times
    # a count of 0 is NaN in a product, so rows with a gap average their picks.
    counts = np.zeros((resamples, seeds))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
    means = np.empty((len(matrix), resamples))  # rows x resamples
    means[~gaps] = matrix[~gaps] @ counts.T / seeds
    means[gaps] = matrix[gaps][:, picks].mean(axis=2)
    tail = (1 - CONFIDENCE) / 2 * 100
    # nanpercentile goes row by row in Python; rows without NaN take np.percentile's
    # vectorized path: the same values, to rounding.
    bands = np.empty((len(means), 2))
    gaps = np.isnan(means).any(axis=1)
    bands[~gaps] = np.percentile(means[~gaps], [tail, 100 - tail], axis=1).T
    if gaps.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row of NaN only gives NaN
            bands[gaps] = np.nanpercentile(means[gaps], [tail, 100 - tail], axis=1).T
    return bands


def share_interval(reached: int, total: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a share (seeds reaching a threshold)."""
    if not total:
        return math.nan, math.nan
    interval = _scipy_stats().binomtest(reached, total).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(interval.low), float(interval.high)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest of m p-values is multiplied by
    m - k + 1, made non-decreasing, and capped at 1. NaN (no test) stays NaN and
    does not count towards m."""
    indexed = sorted((p, index) for index, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """Two groups of per-run values of one metric, compared by the rule above."""

    paired: bool
    test: str
    n_first: int
    n_second: int
    mean_first: float
    mean_second: float
    difference: float
    """mean(first) - mean(second); for paired groups, the mean per-seed difference."""
    low: float
    high: float
    """95% bootstrap interval of the difference."""
    p_value: float
    """Two-sided, no difference."""
    effect_size: float
    """Standardized: Cohen's d_z (mean difference / sd of the differences) when
    paired, Cohen's d with the pooled sd when not."""
    unmatched: int = 0
    """Runs left out of a paired comparison because their seed has no partner."""


def compare(
    first: pd.Series, second: pd.Series, paired: bool | None = None
) -> tuple[Comparison, np.ndarray, np.ndarray]:
    """Compare two groups' values, each a Series indexed by seed. Paired when the
    groups share at least two seeds (or as `paired` says): runs are matched by
    seed and unmatched ones left out. Returns the comparison and the two arrays
    it used (matched, in seed order, when paired)."""
    first, second = first.dropna(), second.dropna()
    shared = first.index.intersection(second.index)
    if paired is None:
        paired = len(shared) >= 2 and first.index.is_unique and second.index.is_unique
    if paired:
        shared = shared.sort_values()
        a, b = first.loc[shared].to_numpy(dtype=float), second.loc[shared].to_numpy(dtype=float)
        unmatched = len(first) + len(second) - 2 * len(shared)
        differences = a - b
        test = one_sample_test(differences)
        p_value = one_sample_p(test, differences, 0.0, "two-sided")
        low, high = mean_interval(differences)
        spread = differences.std(ddof=1) if len(differences) > 1 else math.nan
        comparison = Comparison(
            True,
            PAIRED_T if test == ONE_SAMPLE_T else test,
            len(a),
            len(b),
            float(a.mean()) if len(a) else math.nan,
            float(b.mean()) if len(b) else math.nan,
            float(differences.mean()) if len(differences) else math.nan,
            low,
            high,
            p_value,
            _ratio(differences.mean() if len(differences) else math.nan, spread),
            unmatched,
        )
        return comparison, a, b
    a, b = first.to_numpy(dtype=float), second.to_numpy(dtype=float)
    low, high = difference_interval(a, b)
    pooled = (
        math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
        if min(len(a), len(b)) > 1
        else math.nan
    )
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    comparison = Comparison(
        False,
        WELCH,
        len(a),
        len(b),
        float(a.mean()) if len(a) else math.nan,
        float(b.mean()) if len(b) else math.nan,
        difference,
        low,
        high,
        shifted_p(WELCH, a, b, 0.0, "two-sided"),
        _ratio(difference, pooled),
    )
    return comparison, a, b


def _ratio(difference: float, spread: float) -> float:
    if math.isnan(spread) or math.isnan(difference):
        return math.nan
    if spread == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return float(difference / spread)


def one_sample_test(values: np.ndarray) -> str:
    """The rule: Wilcoxon signed-rank when Shapiro-Wilk rejects normality (needs at
    least 3 values that are not all equal), else the t-test."""
    if len(values) >= 3 and np.ptp(values) > 0 and _scipy_stats().shapiro(values).pvalue < NORMALITY_ALPHA:
        return WILCOXON
    return ONE_SAMPLE_T


def one_sample_p(test: str, values: np.ndarray, value: float, alternative: str) -> float:
    """p-value of mean(values) against `value` (less/greater/two-sided), by `test`."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan
    shifted = values - value
    if np.ptp(shifted) == 0:  # no spread: the sign of the (common) value decides
        centre = shifted[0]
        holds = {"greater": centre > 0, "less": centre < 0, "two-sided": centre != 0}[alternative]
        return 0.0 if holds else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if test == WILCOXON:
            return float(_scipy_stats().wilcoxon(shifted, alternative=alternative).pvalue)
        return float(_scipy_stats().ttest_1samp(shifted, 0.0, alternative=alternative).pvalue)


def shifted_p(test: str, first: np.ndarray, second: np.ndarray, shift: float, alternative: str) -> float:
    """p-value of (first - second) against `shift`, by the comparison's test:
    per-seed differences for the paired tests, Welch for independent groups."""
    if test in (PAIRED_T, WILCOXON):
        return one_sample_p(ONE_SAMPLE_T if test == PAIRED_T else WILCOXON, first - second, shift, alternative)
    if min(len(first), len(second)) < 2:
        return math.nan
    if np.ptp(first) == 0 and np.ptp(second) == 0:
        centre = first[0] - second[0] - shift
        holds = {"greater": centre > 0, "less": centre < 0, "two-sided": centre != 0}[alternative]
        return 0.0 if holds else 1.0
    return float(_scipy_stats().ttest_ind(first - shift, second, equal_var=False, alternative=alternative).pvalue)
