"""`stateful-lab compare` on a small hand-made result folder: the numbers are
scipy's, the verdict is the report's, every format parses."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from stateful_lab.cli import main

STATEFUL = [0.99, 1.0, 0.98, 1.0, 0.97, 0.99, 1.0, 0.98]
STATELESS = [0.80, 0.79, 0.81, 0.80, 0.78, 0.82, 0.80, 0.79]


@pytest.fixture
def folder(tmp_path):
    """A lag_copy-like result folder: a sweep over data.lag, two variants, 8 seeds."""
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "config.yaml").write_text(
        "name: tiny\ndata: {task: lag_copy}\nvariants: [stateless, stateful]\nseeds: 8\nsweep: {data.lag: [0, 2]}\n"
    )
    rows = []
    for lag in (0, 2):
        for variant, values in (("stateful", STATEFUL), ("stateless", STATELESS)):
            for seed, value in enumerate(values):
                accuracy = value if lag == 2 else 1.0 - seed * 0.001
                rows.append(
                    {
                        "config": "tiny",
                        "data.lag": lag,
                        "variant": variant,
                        "seed": seed,
                        "status": "ok",
                        "epochs": 1,
                        "test_accuracy": accuracy,
                        "test_loss": 1 - accuracy,
                        "epoch_seconds": 0.01,
                        "peak_memory_mb": float("nan"),
                    }
                )
    runs = pd.DataFrame(rows)
    runs.to_csv(out / "runs.csv", index=False)
    runs.assign(epoch=0, seconds=0.01).to_csv(out / "epochs.csv", index=False)
    pd.DataFrame([{"data.lag": 0, "variant": "stateful"}]).to_csv(out / "summary.csv", index=False)
    return out


def invoke(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_paired_comparison_matches_scipy_and_the_verdict_is_the_reports(folder):
    result = invoke(
        folder,
        "--a",
        "variant=stateful",
        "--b",
        "variant=stateless",
        "--at",
        "data.lag=2",
        "--expect",
        "greater",
        "--min-difference",
        "0.02",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    differences = np.array(STATEFUL) - np.array(STATELESS)
    assert row["paired"] is True and row["n_a"] == 8 and row["test"] == "paired t-test"
    assert row["difference"] == pytest.approx(differences.mean())
    assert row["p_value"] == pytest.approx(scipy_stats.ttest_rel(STATEFUL, STATELESS).pvalue)
    assert row["ci_low"] < row["difference"] < row["ci_high"]
    assert row["effect_size"] == pytest.approx(differences.mean() / differences.std(ddof=1))
    assert row["verdict"] == "supported" and row["metric"] == "test_accuracy"
    too_big = invoke(
        folder,
        "--a",
        "variant=stateful",
        "--b",
        "variant=stateless",
        "--at",
        "data.lag=2",
        "--expect",
        "greater",
        "--min-difference",
        "0.5",
        "--format",
        "json",
    )
    assert json.loads(too_big.output)["verdict"] == "not supported"


def test_groups_at_different_sweep_points_and_every_format(folder):
    args = [folder, "--a", "variant=stateful", "--a", "data.lag=0", "--b", "variant=stateful", "--b", "data.lag=2"]
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert "data.lag=0, variant=stateful" in table.output.replace(
        "variant=stateful, data.lag=0", "data.lag=0, variant=stateful"
    )
    assert "difference" in table.output and "Cohen's d_z" in table.output
    csv = pd.read_csv(io.StringIO(invoke(*args, "--format", "csv").output))
    assert len(csv) == 1 and csv.loc[0, "n_b"] == 8
    markdown = invoke(*args, "--format", "md").output
    assert markdown.startswith("| field | value |") and "| p_value |" in markdown


def test_bad_groups_are_one_line_errors(folder):
    unknown = invoke(folder, "--a", "varant=stateful", "--b", "variant=stateless")
    assert unknown.exit_code == 2 and "varant is not a column" in unknown.output and "Traceback" not in unknown.output
    empty = invoke(folder, "--a", "variant=stateful", "--b", "variant=nope")
    assert empty.exit_code == 2 and "variant has" in empty.output
    missing = invoke(folder, "--a", "variant=stateful")
    assert missing.exit_code == 2 and "--b: give the group" in missing.output
    nothing = invoke(folder.parent, "--a", "variant=stateful", "--b", "variant=stateless")
    assert nothing.exit_code == 2 and "not a result folder" in nothing.output
