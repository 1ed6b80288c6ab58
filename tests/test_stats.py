"""The statistics verdicts rest on: scipy's tests chosen by a stated rule, seeded
bootstrap intervals, and Holm's adjustment."""

import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from stateful_lab.results import stats


def test_bootstrap_interval_is_bca_seeded_and_reproducible():
    values = np.random.default_rng(3).normal(0.7, 0.1, 30)
    low, high = stats.mean_interval(values)
    reference = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(stats.BOOTSTRAP_SEED)
    ).confidence_interval
    assert (low, high) == (reference.low, reference.high)
    assert stats.mean_interval(values) == (low, high)  # the same values, the same interval
    assert low < values.mean() < high


def test_a_large_sample_is_resampled_in_batches_and_gets_the_same_interval():
    """A sweep of thousands of seeds: mean_interval resamples BATCH at a time (its
    memory in proportion to the batch); the interval equals scipy's drawn in one
    go from the same generator, bit for bit."""
    values = np.random.default_rng(4).normal(0.7, 0.1, 2_500)
    assert stats.RESAMPLES > 2 * stats.BATCH  # several batches
    reference = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=stats.RESAMPLES, method="BCa", rng=np.random.default_rng(stats.BOOTSTRAP_SEED)
    ).confidence_interval
    assert stats.mean_interval(values) == (reference.low, reference.high)


def test_bootstrap_interval_of_bimodal_accuracies_stays_in_range_and_degenerate_cases_are_exact():
    solved = np.r_[np.ones(8), 0.46, 0.80]  # 8 seeds solve the task, 2 stall
    low, high = stats.mean_interval(solved)
    assert 0.0 <= low < solved.mean() < high <= 1.0
    assert stats.mean_interval(np.ones(5)) == (1.0, 1.0)
    assert all(math.isnan(bound) for bound in stats.mean_interval(np.array([0.7])))


def test_holm_matches_the_step_down_definition():
    raw = [0.01, 0.04, 0.03, math.nan, 0.2]
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> 0.09 (monotone), 0.2*1=0.2
    adjusted = stats.holm(raw)
    assert adjusted[:3] == pytest.approx([0.04, 0.09, 0.09])
    assert math.isnan(adjusted[3]) and adjusted[4] == pytest.approx(0.2)
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_paired_groups_use_the_paired_t_test_on_normal_differences():
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.05, 30)
    first = pd.Series(base + rng.normal(0.03, 0.01, 30))
    second = pd.Series(base)
    comparison, a, b = stats.compare(first, second)
    assert comparison.paired and comparison.test == stats.PAIRED_T
    assert comparison.p_value == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    # pairing removes the shared seed effect: Welch on the same values is far weaker
    assert comparison.p_value < stats.compare(first, second, paired=False)[0].p_value
    assert comparison.effect_size == pytest.approx((a - b).mean() / (a - b).std(ddof=1))


def test_far_from_normal_differences_switch_to_wilcoxon():
    differences = np.r_[np.zeros(25), 0.5, 0.5, 0.54, 0.2, 0.3]  # most seeds tie, a few move a lot
    assert scipy_stats.shapiro(differences).pvalue < stats.NORMALITY_ALPHA
    first, second = pd.Series(0.5 + differences), pd.Series(np.full(30, 0.5))
    comparison, a, b = stats.compare(first, second)
    assert comparison.test == stats.WILCOXON
    assert comparison.p_value == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)


def test_groups_without_shared_seeds_keep_welch_and_unmatched_seeds_are_counted():
    first = pd.Series([0.9, 0.95, 0.97, 0.92], index=[0, 1, 2, 3])
    second = pd.Series([0.8, 0.85, 0.9, 0.7], index=[10, 11, 12, 13])
    comparison, a, b = stats.compare(first, second)
    assert not comparison.paired and comparison.test == stats.WELCH
    assert comparison.p_value == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    partly = stats.compare(first, pd.Series([0.8, 0.85, 0.9], index=[1, 2, 3]))[0]
    assert partly.paired and partly.n_first == 3 and partly.unmatched == 1


def test_shifted_tests_are_scipys_against_the_shift():
    first, second = np.array([1.0, 1.2, 0.9, 1.1, 1.05]), np.array([0.5, 0.6, 0.55, 0.4, 0.5])
    assert stats.shifted_p(stats.PAIRED_T, first, second, 0.3, "greater") == pytest.approx(
        scipy_stats.ttest_1samp(first - second, 0.3, alternative="greater").pvalue
    )
    assert stats.shifted_p(stats.WELCH, first, second, 0.3, "greater") == pytest.approx(
        scipy_stats.ttest_ind(first - 0.3, second, equal_var=False, alternative="greater").pvalue
    )


def test_share_interval_is_clopper_pearson():
    low, high = stats.share_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.444, 0.975)


def test_band_covers_each_row_and_is_seeded():
    matrix = np.random.default_rng(1).normal(0, 1, (50, 30))
    band = stats.band(matrix)
    assert band.shape == (50, 2)
    assert np.all(band[:, 0] < matrix.mean(axis=1)) and np.all(matrix.mean(axis=1) < band[:, 1])
    assert np.array_equal(band, stats.band(matrix))


def test_band_equals_nanpercentile_of_the_same_resamples_with_and_without_gaps():
    """The band takes np.percentile for rows without NaN and nanpercentile for the
    rest: both must give what nanpercentile gives on every row (the reference)."""
    matrix = np.random.default_rng(2).normal(0, 1, (40, 12))
    matrix[30:, 5] = np.nan  # a seed that stopped early: its later epochs are missing
    matrix[38:] = np.nan  # epochs no seed reached
    picks = stats._generator().integers(0, 12, size=(1999, 12))
    means = matrix[:, picks].mean(axis=2)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.nanpercentile(means, [2.5, 97.5], axis=1).T
    band = stats.band(matrix)
    np.testing.assert_allclose(band, reference, rtol=1e-12, atol=1e-14)  # the two interpolate in another order
    assert np.isfinite(band[:30]).all() and np.isfinite(band[30:38]).all() and np.isnan(band[38:]).all()


SUMMARY_IN_A_FRESH_PROCESS = """
import sys
import pandas as pd
from stateful_lab.results import tables
seeds = int(sys.argv[1])
runs = pd.DataFrame({
    "variant": ["stateless"] * seeds + ["stateful"] * seeds,
    "status": "ok",
    "test_loss": [0.1 + 0.01 * index for index in range(2 * seeds)],
    "test_accuracy": [0.5 + 0.01 * index for index in range(2 * seeds)],
    "epoch_seconds": 0.1,
})
tables.summarize(runs, [])
print("scipy.stats" in sys.modules)
"""


@pytest.mark.parametrize(("seeds", "imports_scipy"), [(1, False), (2, True)])
def test_scipy_is_imported_only_when_an_interval_is_drawn(seeds, imports_scipy):
    """scipy.stats' import takes a second or more of a one-seed run, which draws no
    interval (one value per variant): a summary of one seed must not import it,
    and a summary of two must (else this test would pass for a summary that
    drew no interval at all). A fresh process, since this one has scipy already."""
    shown = subprocess.run(
        [sys.executable, "-c", SUMMARY_IN_A_FRESH_PROCESS, str(seeds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown[-1] == str(imports_scipy)
