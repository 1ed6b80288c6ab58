"""Claims get three-way verdicts by their stated rule, on runs tables: supported
only when significant after Holm and clear of the declared size."""

import numpy as np
import pandas as pd
import pytest

from stateful_lab.config.claims import Claim
from stateful_lab.results.claims import evaluate_claim, evaluate_claims

RNG = np.random.default_rng(7)


def claim(kind="claim", **expect):
    return Claim(id="c", kind=kind, source="An article", statement="s", expect=expect)


def runs_table(groups: dict[tuple, list[float]], metric="test_accuracy", key="data.lag"):
    """runs.csv-like rows: {(variant, swept value): [value per seed]}."""
    rows = [
        {"variant": variant, key: point, "seed": seed, "status": "ok", metric: value}
        for (variant, point), values in groups.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def noisy(mean, n=30, spread=0.01):
    return list(mean + RNG.normal(0, spread, n))


GREATER = dict(metric="test_accuracy", test="greater", select={"variant": "stateful"}, versus={"variant": "stateless"})


def test_greater_needs_significance_and_an_interval_clear_of_the_declared_size():
    runs = runs_table({("stateful", 2): noisy(1.0), ("stateless", 2): noisy(0.8)})
    verdict = evaluate_claim(claim(**GREATER, min_difference=0.02), runs)
    assert verdict.word == "supported" and verdict.passed is True
    assert verdict.test == "paired t-test" and "paired by seed, n=30" in verdict.numbers
    assert "Holm p=" in verdict.numbers and verdict.p_adjusted == verdict.p_value  # a family of one
    # the same data, but the claim needs a gap larger than the one measured
    assert evaluate_claim(claim(**GREATER, min_difference=0.3), runs).word == "not supported"
    reversed_claim = claim(
        **GREATER | {"select": {"variant": "stateless"}, "versus": {"variant": "stateful"}}, min_difference=0.02
    )
    assert evaluate_claim(reversed_claim, runs).word == "not supported"


def test_a_significant_but_negligible_difference_is_not_supported():
    """never-reset vs epoch-reset in round 1: 0.001 accuracy, p < 0.01, and it mattered to no one."""
    runs = runs_table({("stateful", 0): noisy(0.999, spread=0.0005), ("stateless", 0): noisy(1.0, spread=0.0005)})
    lower = claim(**GREATER | {"test": "less"}, min_difference=0.02)
    verdict = evaluate_claim(lower, runs)
    assert verdict.p_value < 0.05 and verdict.word == "not supported"


def test_a_difference_that_may_or_may_not_matter_is_inconclusive():
    runs = runs_table({("stateful", 0): noisy(0.53, spread=0.05), ("stateless", 0): noisy(0.50, spread=0.05)})
    verdict = evaluate_claim(claim(**GREATER, min_difference=0.02), runs)
    assert verdict.word == "inconclusive" and verdict.passed is None


def test_holm_over_the_family_can_turn_supported_into_inconclusive():
    runs = runs_table({("stateful", 0): [0.52, 0.56, 0.60, 0.55, 0.58, 0.61], ("stateless", 0): [0.5] * 6})
    single = evaluate_claim(claim(**GREATER, min_difference=0.0), runs)
    assert single.word == "supported" and 0.001 < single.p_value < 0.05
    # twenty claims as strong as this one: the smallest p is multiplied by 20, and so on
    family = evaluate_claims([(claim(**GREATER, min_difference=0.0), runs, None)] * 20)
    assert all(v.p_value == single.p_value and v.p_adjusted > 0.05 for v in family)
    assert all(v.word == "inconclusive" for v in family)
    few = evaluate_claims([(claim(**GREATER, min_difference=0.0), runs, None)] * 2)
    assert few[0].p_adjusted == pytest.approx(2 * single.p_value) and few[0].word == "supported"


def test_threshold_results_use_a_one_sample_test_and_show_the_share_reached():
    result = dict(metric="test_accuracy", test="at_least", value=0.95, select={"variant": "stateless"}, reach=0.99)
    solved = runs_table({("stateless", 0): [1.0] * 26 + [0.999, 1.0, 0.998, 1.0]})
    verdict = evaluate_claim(claim("result", **result), solved)
    assert verdict.word == "reproduced" and "≥ 0.99 in 30/30 seeds" in verdict.numbers
    bimodal = runs_table({("stateless", 0): [1.0] * 8 + [0.46, 0.8]})
    verdict = evaluate_claim(claim("result", **result), bimodal)
    assert verdict.word == "inconclusive" and "in 8/10 seeds" in verdict.numbers
    failed = runs_table({("stateless", 0): noisy(0.6)})
    assert evaluate_claim(claim("result", **result), failed).word == "not reproduced"
    between = claim(metric="test_accuracy", test="between", low=0.4, high=0.7, select={"variant": "stateless"})
    assert evaluate_claim(between, failed).word == "supported"
    assert evaluate_claim(between, solved).word == "not supported"


def test_share_claims_use_the_binomial_test():
    share = dict(metric="test_accuracy", test="share_at_least", value=0.5, reach=0.99, select={"variant": "stateless"})
    mostly = runs_table({("stateless", 0): [1.0] * 25 + [0.5] * 5})
    verdict = evaluate_claim(claim(**share), mostly)
    assert verdict.word == "supported" and verdict.test == "exact binomial test" and "25/30" in verdict.numbers
    rarely = runs_table({("stateless", 0): [1.0] * 3 + [0.5] * 27})
    assert evaluate_claim(claim(**share), rarely).word == "not supported"


SIMILAR = dict(metric="test_accuracy", test="similar", select={"variant": "stateful"}, versus={"variant": "stateless"})


def test_similar_is_an_equivalence_test_against_the_declared_size():
    close = runs_table({("stateful", 0): noisy(0.50), ("stateless", 0): noisy(0.50)})
    assert evaluate_claim(claim(**SIMILAR, min_difference=0.05), close).word == "supported"
    assert "two one-sided tests" in evaluate_claim(claim(**SIMILAR, min_difference=0.05), close).rule
    vague = runs_table({("stateful", 0): [0.40, 0.60, 0.45, 0.57], ("stateless", 0): [0.50, 0.50, 0.51, 0.49]})
    assert evaluate_claim(claim(**SIMILAR, min_difference=0.05), vague).word == "inconclusive"  # too uncertain
    apart = runs_table({("stateful", 0): noisy(0.60), ("stateless", 0): noisy(0.50)})
    assert evaluate_claim(claim(**SIMILAR, min_difference=0.05), apart).word == "not supported"


def test_not_greater_is_non_inferiority():
    expectation = dict(
        metric="test_rmse",
        test="not_greater",
        select={"variant": "stateless"},
        versus={"variant": "stateful"},
        min_difference=7,
    )
    close = runs_table({("stateless", 0): noisy(97, spread=1), ("stateful", 0): noisy(95, spread=1)}, "test_rmse")
    assert evaluate_claim(claim(**expectation), close).word == "supported"
    worse = runs_table({("stateless", 0): noisy(110, spread=1), ("stateful", 0): noisy(95, spread=1)}, "test_rmse")
    assert evaluate_claim(claim(**expectation), worse).word == "not supported"


def gap_runs(gap_at_64):
    return runs_table(
        {
            ("stateful", 1): noisy(1.0),
            ("stateless", 1): noisy(0.8),
            ("stateful", 64): noisy(0.9),
            ("stateless", 64): noisy(0.9 - gap_at_64),
        },
        key="train.batch_size",
    )


def test_gap_shrinks_compares_per_seed_gaps_at_the_ends_of_the_sweep():
    expectation = claim(
        metric="test_accuracy",
        test="gap_shrinks",
        over="train.batch_size",
        select={"variant": "stateless"},
        versus={"variant": "stateful"},
        min_difference=0.02,
    )
    assert evaluate_claim(expectation, gap_runs(0.0)).word == "supported"
    assert evaluate_claim(expectation, gap_runs(0.2)).word == "not supported"


def curve_runs(means):
    return runs_table(
        {("stateless", size): noisy(mean, spread=0.002) for size, mean in means.items()},
        metric="epoch_seconds",
        key="train.batch_size",
    )


def test_falls_then_rises_needs_an_inner_minimum_clear_of_both_ends():
    expectation = claim(
        metric="epoch_seconds",
        test="falls_then_rises",
        over="train.batch_size",
        select={"variant": "stateless"},
        min_difference=0.01,
    )
    assert evaluate_claim(expectation, curve_runs({1: 0.5, 16: 0.1, 256: 0.3})).word == "supported"
    falling = evaluate_claim(expectation, curve_runs({1: 0.5, 16: 0.1, 256: 0.05}))
    assert falling.word == "not supported" and "lowest at an end (256)" in falling.numbers
    flat_end = evaluate_claim(expectation, curve_runs({1: 0.5, 16: 0.1, 256: 0.1005}))
    assert flat_end.word == "not supported"


def test_seconds_to_reach_counts_training_time_up_to_the_first_epoch_that_reaches():
    epochs = pd.DataFrame(
        [
            {
                "variant": variant,
                "seed": seed,
                "epoch": epoch,
                "test_accuracy": accuracy,
                "seconds": 1.0,
                "status": "ok",
            }
            for variant, curve in {"stateful": [0.5, 0.99, 1.0], "stateless": [0.5, 0.6, 0.99]}.items()
            for seed in range(6)
            for epoch, accuracy in enumerate(curve)
        ]
    )
    runs = epochs[epochs["epoch"] == 2].drop(columns=["epoch", "seconds"]).assign(epoch_seconds=1.0)
    faster = claim(
        metric="seconds_to_reach",
        reach=0.99,
        test="less",
        select={"variant": "stateful"},
        versus={"variant": "stateless"},
        min_difference=0.5,
    )
    verdict = evaluate_claim(faster, runs, epochs)
    # epochs to reach (2 and 3) at the steady time per epoch, not epoch 0's tracing-laden seconds
    assert "2.000 vs stateless 3.000" in verdict.numbers and verdict.word == "supported"
    assert "stateful reached 0.99 in 6/6 runs; stateless reached 0.99 in 6/6 runs" in verdict.numbers
    never = epochs.assign(test_accuracy=epochs["test_accuracy"].where(epochs["variant"] == "stateful", 0.5))
    verdict = evaluate_claim(faster, runs, never)
    assert "vs stateless 3.000" in verdict.numbers and "stateless reached 0.99 in 0/6 runs" in verdict.numbers
    with pytest.raises(ValueError, match="epochs table"):
        evaluate_claim(faster, runs)


def test_diverged_runs_do_not_count_and_no_runs_means_no_data():
    runs = runs_table({("stateful", 0): [0.9, 0.95, 0.92]})
    runs["status"] = "diverged"
    verdict = evaluate_claim(
        claim(metric="test_accuracy", test="at_least", value=0.5, select={"variant": "stateful"}), runs
    )
    assert verdict.passed is None and verdict.word == "no data"
    assert (
        evaluate_claims([(verdict.claim, runs, None)])[0].p_value
        != evaluate_claims([(verdict.claim, runs, None)])[0].p_value
    )  # NaN


def test_a_variant_is_judged_against_a_baseline_figure_seed_by_seed():
    """The ridge baseline's RMSE is one figure (100, the same in every row). A
    variant at 90 +/- 1 beats it by more than the declared 5: supported; one at
    99.5 +/- 1 is within 5 of it: the interval rules a difference of 5 out, so
    not supported; the metric must be the baseline's own."""
    for mean, verdict in ((90.0, "supported"), (99.5, "not supported")):
        runs = runs_table({("stateful", 0): noisy(mean, spread=1.0)}, metric="test_rmse")
        runs["ridge_rmse"] = 100.0
        expect = dict(
            metric="test_rmse", test="less", select={"variant": "stateful"}, versus={"baseline": "ridge_rmse"}
        )
        result = evaluate_claim(claim(**expect, min_difference=5.0), runs)
        assert result.word == verdict, result.numbers
        assert "baseline=ridge_rmse" in result.numbers


def test_a_baseline_claim_names_a_known_baseline_in_its_own_metric():
    from stateful_lab.config.claims import claim_problems

    wrong = claim(metric="test_accuracy", test="less", versus={"baseline": "ridge_rmse"}, min_difference=1)
    unknown = claim(metric="test_rmse", test="less", versus={"baseline": "oracle_rmse"}, min_difference=1)
    problems = claim_problems([wrong], []) + claim_problems([unknown], [])
    assert "ridge_rmse is a test_rmse figure; compare it with metric test_rmse, not test_accuracy" in problems[0]
    assert "'oracle_rmse' is not one of persistence_rmse" in problems[1]
