"""Claims get verdicts by their stated rule, on runs tables."""

import numpy as np
import pandas as pd
import pytest

from stateful_lab.claims import evaluate_claim, welch
from stateful_lab.claimspec import Claim


def claim(**expect):
    return Claim(id="c", kind="claim", source="An article", statement="s", expect=expect)


def runs_table(groups: dict[tuple, list[float]], metric="test_accuracy", key="data.lag"):
    """runs.csv-like rows: {(variant, swept value): [value per seed]}."""
    rows = [
        {"variant": variant, key: point, "seed": seed, "status": "ok", metric: value}
        for (variant, point), values in groups.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_greater_is_supported_by_a_significant_difference_in_that_direction():
    runs = runs_table({("stateful", 2): [0.99, 1.0, 0.98, 1.0], ("stateless", 2): [0.79, 0.8, 0.78, 0.81]})
    verdict = evaluate_claim(
        claim(metric="test_accuracy", test="greater", select={"variant": "stateful"}, versus={"variant": "stateless"}),
        runs,
    )
    assert verdict.passed is True and verdict.word == "supported"
    assert "Welch p=" in verdict.numbers and "Welch's t-test p < 0.05" in verdict.rule
    reversed_claim = claim(
        metric="test_accuracy", test="greater", select={"variant": "stateless"}, versus={"variant": "stateful"}
    )
    assert evaluate_claim(reversed_claim, runs).word == "not supported"


def test_a_higher_mean_without_significance_is_not_supported():
    """Borderline: the means differ, but the seeds overlap too much for p < 0.05."""
    runs = runs_table({("stateful", 2): [0.50, 0.70, 0.55, 0.66], ("stateless", 2): [0.52, 0.61, 0.50, 0.58]})
    expectation = claim(
        metric="test_accuracy", test="greater", select={"variant": "stateful"}, versus={"variant": "stateless"}
    )
    first, second = (runs[runs["variant"] == v]["test_accuracy"].to_numpy() for v in ("stateful", "stateless"))
    assert first.mean() > second.mean()
    assert welch(first, second)[3] >= 0.05
    assert evaluate_claim(expectation, runs).word == "not supported"


def test_threshold_tests_and_result_wording():
    runs = runs_table({("stateless", 0): [1.0, 1.0, 0.9, 0.86]})  # mean 0.94
    result = Claim(
        id="r",
        kind="result",
        source="a",
        statement="s",
        expect={"metric": "test_accuracy", "test": "at_least", "value": 0.95, "select": {"variant": "stateless"}},
    )
    assert evaluate_claim(result, runs).word == "not reproduced"
    runs = runs_table({("stateless", 0): [1.0, 1.0, 0.9, 0.9]})  # mean 0.95: on the threshold
    assert evaluate_claim(result, runs).word == "reproduced"
    between = claim(metric="test_accuracy", test="between", low=0.4, high=0.6, select={"variant": "stateless"})
    assert evaluate_claim(between, runs).word == "not supported"


def test_similar_needs_the_whole_interval_inside_the_margin():
    close = runs_table({("stateful", 0): [0.50, 0.51, 0.49, 0.50], ("stateless", 0): [0.50, 0.50, 0.51, 0.49]})
    wide = runs_table({("stateful", 0): [0.40, 0.60, 0.45, 0.57], ("stateless", 0): [0.50, 0.50, 0.51, 0.49]})
    expectation = claim(
        metric="test_accuracy",
        test="similar",
        margin=0.05,
        select={"variant": "stateful"},
        versus={"variant": "stateless"},
    )
    assert evaluate_claim(expectation, close).word == "supported"
    assert evaluate_claim(expectation, wide).word == "not supported"  # same mean, too uncertain


def test_gap_shrinks_compares_per_seed_gaps_at_the_ends_of_the_sweep():
    shrinking = runs_table(
        {
            ("stateful", 1): [1.0, 1.0, 0.99, 1.0],
            ("stateless", 1): [0.8, 0.79, 0.8, 0.81],
            ("stateful", 64): [0.9, 0.91, 0.9, 0.89],
            ("stateless", 64): [0.9, 0.9, 0.89, 0.9],
        },
        key="train.batch_size",
    )
    steady = runs_table(
        {
            ("stateful", 1): [1.0, 1.0, 0.99, 1.0],
            ("stateless", 1): [0.8, 0.79, 0.8, 0.81],
            ("stateful", 64): [1.0, 0.99, 1.0, 1.0],
            ("stateless", 64): [0.8, 0.8, 0.79, 0.8],
        },
        key="train.batch_size",
    )
    expectation = claim(
        metric="test_accuracy",
        test="gap_shrinks",
        over="train.batch_size",
        select={"variant": "stateless"},
        versus={"variant": "stateful"},
    )
    assert evaluate_claim(expectation, shrinking).word == "supported"
    assert evaluate_claim(expectation, steady).word == "not supported"


def test_diverged_runs_do_not_count_and_no_runs_means_no_data():
    runs = runs_table({("stateful", 0): [0.9, 0.95, 0.92]})
    runs["status"] = "diverged"
    verdict = evaluate_claim(
        claim(metric="test_accuracy", test="at_least", value=0.5, select={"variant": "stateful"}), runs
    )
    assert verdict.passed is None and verdict.word == "no data"


def test_welch_matches_scipy():
    from scipy import stats

    first, second = np.array([0.9, 0.95, 0.97, 0.92, 0.99]), np.array([0.8, 0.85, 0.9, 0.7])
    difference, low, high, p_value = welch(first, second)
    reference = stats.ttest_ind(first, second, equal_var=False)
    assert p_value == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (low, high) == pytest.approx((interval.low, interval.high))
    assert difference == pytest.approx(first.mean() - second.mean())
