"""Sweeps expand as the config says, claims get verdicts by their stated rule, and
the report is written from a results folder."""

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from stateful_lab.claims import evaluate_claim, welch
from stateful_lab.cli import main
from stateful_lab.config import Claim, load_experiment, parse_experiment

from .conftest import CONFIGS


def claim(**expect):
    return Claim(id="c", kind="claim", source="An article", statement="s", expect=expect)


def runs_table(groups: dict[tuple, list[float]], metric="test_accuracy", key="data.lag"):
    """runs.csv-like rows: {(variant, swept value): [value per seed]}."""
    rows = [{"variant": variant, key: point, "seed": seed, "status": "ok", metric: value}
            for (variant, point), values in groups.items() for seed, value in enumerate(values)]
    return pd.DataFrame(rows)


# --- sweeps -----------------------------------------------------------------------

def test_sweep_runs_the_cartesian_product_with_each_value_applied():
    experiment = parse_experiment({
        "data": {"task": "lag_copy", "stream_length": 100},
        "sweep": {"data.lag": [0, 2, 4], "train.batch_size": [1, 8]},
    })
    points = experiment.points
    assert [point for point, _ in points] == [
        {"data.lag": lag, "train.batch_size": batch} for lag in (0, 2, 4) for batch in (1, 8)]
    for point, resolved in points:
        assert resolved.data.lag == point["data.lag"]
        assert resolved.train.batch_size == point["train.batch_size"]
        assert not resolved.sweep


def test_no_sweep_is_one_point_of_the_experiment_itself():
    experiment = parse_experiment({})
    assert experiment.points == [({}, experiment)]


def test_validate_lists_the_sweep_points(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(CONFIGS / "reset_policy.yaml")])
    assert result.exit_code == 0, result.output
    assert "# sweep: 2 points x 10 seeds x 1 variants = 20 runs" in result.output
    assert "#   train.reset=epoch" in result.output and "#   train.reset=never" in result.output


@pytest.mark.parametrize(("sweep", "message"), [
    ({"data.lagg": [1]}, "sweep.data.lagg: not a key that can be swept; did you mean data.lag?"),
    ({"seeds": [1, 2]}, "sweep.seeds: not a key that can be swept"),
    ({"data.lag": []}, "sweep.data.lag: the list of values is empty"),
    ({"data.lag": [1, -1]}, "sweep point data.lag=-1: data.lag: got -1"),
])
def test_bad_sweeps_exit_2_naming_the_key(tmp_path, sweep, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"data": {"task": "lag_copy"}, "sweep": sweep}))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_claims_must_select_what_exists(tmp_path):
    bad = {"id": "x", "kind": "claim", "source": "s", "statement": "s",
           "expect": {"metric": "test_accuracy", "test": "greater", "select": {"data.lag": 2}}}
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [bad]}))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "claims[0] (x): test greater needs expect.versus" in result.output
    assert "selects by 'data.lag', which is neither variant nor a swept key" in result.output


# --- claims -----------------------------------------------------------------------

def test_greater_is_supported_by_a_significant_difference_in_that_direction():
    runs = runs_table({("stateful", 2): [0.99, 1.0, 0.98, 1.0], ("stateless", 2): [0.79, 0.8, 0.78, 0.81]})
    verdict = evaluate_claim(claim(metric="test_accuracy", test="greater", select={"variant": "stateful"},
                                   versus={"variant": "stateless"}), runs)
    assert verdict.passed is True and verdict.word == "supported"
    assert "Welch p=" in verdict.numbers and "Welch's t-test p < 0.05" in verdict.rule
    reversed_claim = claim(metric="test_accuracy", test="greater", select={"variant": "stateless"},
                           versus={"variant": "stateful"})
    assert evaluate_claim(reversed_claim, runs).word == "not supported"


def test_a_higher_mean_without_significance_is_not_supported():
    """Borderline: the means differ, but the seeds overlap too much for p < 0.05."""
    runs = runs_table({("stateful", 2): [0.50, 0.70, 0.55, 0.66], ("stateless", 2): [0.52, 0.61, 0.50, 0.58]})
    expectation = claim(metric="test_accuracy", test="greater", select={"variant": "stateful"},
                        versus={"variant": "stateless"})
    first, second = (runs[runs["variant"] == v]["test_accuracy"].to_numpy() for v in ("stateful", "stateless"))
    assert first.mean() > second.mean()
    assert welch(first, second)[3] >= 0.05
    assert evaluate_claim(expectation, runs).word == "not supported"


def test_threshold_tests_and_result_wording():
    runs = runs_table({("stateless", 0): [1.0, 1.0, 0.9, 0.86]})  # mean 0.94
    result = Claim(id="r", kind="result", source="a", statement="s",
                   expect={"metric": "test_accuracy", "test": "at_least", "value": 0.95,
                           "select": {"variant": "stateless"}})
    assert evaluate_claim(result, runs).word == "not reproduced"
    runs = runs_table({("stateless", 0): [1.0, 1.0, 0.9, 0.9]})  # mean 0.95: on the threshold
    assert evaluate_claim(result, runs).word == "reproduced"
    between = claim(metric="test_accuracy", test="between", low=0.4, high=0.6, select={"variant": "stateless"})
    assert evaluate_claim(between, runs).word == "not supported"


def test_similar_needs_the_whole_interval_inside_the_margin():
    close = runs_table({("stateful", 0): [0.50, 0.51, 0.49, 0.50], ("stateless", 0): [0.50, 0.50, 0.51, 0.49]})
    wide = runs_table({("stateful", 0): [0.40, 0.60, 0.45, 0.57], ("stateless", 0): [0.50, 0.50, 0.51, 0.49]})
    expectation = claim(metric="test_accuracy", test="similar", margin=0.05, select={"variant": "stateful"},
                        versus={"variant": "stateless"})
    assert evaluate_claim(expectation, close).word == "supported"
    assert evaluate_claim(expectation, wide).word == "not supported"  # same mean, too uncertain


def test_gap_shrinks_compares_per_seed_gaps_at_the_ends_of_the_sweep():
    shrinking = runs_table({
        ("stateful", 1): [1.0, 1.0, 0.99, 1.0], ("stateless", 1): [0.8, 0.79, 0.8, 0.81],
        ("stateful", 64): [0.9, 0.91, 0.9, 0.89], ("stateless", 64): [0.9, 0.9, 0.89, 0.9]},
        key="train.batch_size")
    steady = runs_table({
        ("stateful", 1): [1.0, 1.0, 0.99, 1.0], ("stateless", 1): [0.8, 0.79, 0.8, 0.81],
        ("stateful", 64): [1.0, 0.99, 1.0, 1.0], ("stateless", 64): [0.8, 0.8, 0.79, 0.8]},
        key="train.batch_size")
    expectation = claim(metric="test_accuracy", test="gap_shrinks", over="train.batch_size",
                        select={"variant": "stateless"}, versus={"variant": "stateful"})
    assert evaluate_claim(expectation, shrinking).word == "supported"
    assert evaluate_claim(expectation, steady).word == "not supported"


def test_diverged_runs_do_not_count_and_no_runs_means_no_data():
    runs = runs_table({("stateful", 0): [0.9, 0.95, 0.92]})
    runs["status"] = "diverged"
    verdict = evaluate_claim(claim(metric="test_accuracy", test="at_least", value=0.5,
                                   select={"variant": "stateful"}), runs)
    assert verdict.passed is None and verdict.word == "no data"


# --- report -----------------------------------------------------------------------

def test_report_from_a_small_results_folder(tmp_path):
    results = tmp_path / "results"
    for name in ("first_timestep", "reset_policy"):
        run = CliRunner().invoke(main, ["run", str(CONFIGS / "smoke" / f"{name}.yaml"),
                                        "--out", str(results / name), "--quiet"])
        assert run.exit_code == 0, run.output
    result = CliRunner().invoke(main, ["report", str(results), "--no-probe"])
    assert result.exit_code == 0, result.output
    report = (results / "REPORT.md").read_text()
    assert report.index("## Verdicts") < report.index("## smoke_first_timestep")
    for name in ("first_timestep", "reset_policy"):
        for item in load_experiment(CONFIGS / "smoke" / f"{name}.yaml").claims:
            assert item.statement in report.split("## Verdicts")[1].split("\n## ")[0]
    plots = sorted(path.name for path in (results / "plots").glob("*.png"))
    assert plots == ["smoke_first_timestep-curves.png", "smoke_reset_policy-curves.png",
                     "smoke_reset_policy-sweep.png"]
    for path in (results / "plots").glob("*.png"):
        assert path.stat().st_size > 5000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{path.name})" in report


def test_report_of_an_empty_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--no-probe"])
    assert result.exit_code == 2
    assert "no result folders" in result.output


def test_every_config_has_a_smoke_twin_of_the_same_structure():
    for path in sorted(CONFIGS.glob("*.yaml")):
        full, smoke = load_experiment(path), load_experiment(CONFIGS / "smoke" / path.name)
        assert smoke.data.task == full.data.task, path.name
        assert smoke.variants == full.variants, path.name
        assert list(smoke.sweep) == list(full.sweep), path.name
        assert [c.id for c in smoke.claims] == [c.id for c in full.claims], path.name
        assert len(full.seed_list) >= 10, f"{path.name}: claim configs run at least 10 seeds"


def test_welch_matches_scipy():
    from scipy import stats

    first, second = np.array([0.9, 0.95, 0.97, 0.92, 0.99]), np.array([0.8, 0.85, 0.9, 0.7])
    difference, low, high, p_value = welch(first, second)
    reference = stats.ttest_ind(first, second, equal_var=False)
    assert p_value == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (low, high) == pytest.approx((interval.low, interval.high))
    assert difference == pytest.approx(first.mean() - second.mean())
