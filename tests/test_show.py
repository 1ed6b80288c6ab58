"""`stateful-lab show`: one table across result folders, filtered, sorted and in
four formats, read from the files alone."""

import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.results.tables import load_results

from .conftest import ROOT

RESULTS = ROOT / "results"  # the committed output of make reproduce: its structure, not its numbers


def show(*args):
    return CliRunner().invoke(main, ["show", *map(str, args)])


def test_one_row_per_config_point_and_variant_with_counts():
    result = show(RESULTS, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    configs = load_results(RESULTS)
    assert len(rows) == sum(len(c.experiment.points) * len(c.experiment.variants) for c in configs)
    lag_two = [row for row in rows if row["config"] == "lag_copy" and row["point"] == "data.lag=2"]
    assert [row["variant"] for row in lag_two] == ["stateless", "stateful"]
    runs = next(c.runs for c in configs if c.experiment.name == "lag_copy")
    stateful = runs[(runs["data.lag"] == 2) & (runs["variant"] == "stateful")]
    assert lag_two[1]["finished"] == (stateful["status"] == "ok").sum()
    assert lag_two[1]["test_accuracy_mean"] == pytest.approx(stateful["test_accuracy"].mean(), abs=1e-6)
    assert lag_two[1]["test_accuracy_ci_low"] <= lag_two[1]["test_accuracy_mean"] <= lag_two[1]["test_accuracy_ci_high"]


def test_where_filters_by_typed_values_and_sort_orders():
    result = show(
        RESULTS / "lag_copy",
        RESULTS / "batch_size",
        "--where",
        "variant=stateful",
        "--where",
        "data.lag=2.0",
        "--sort",
        "-test_accuracy",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.output))
    assert list(table[["config", "point", "variant"]].itertuples(index=False, name=None)) == [
        ("lag_copy", "data.lag=2", "stateful")
    ]
    result = show(RESULTS / "lag_copy", "--where", "variant=stateless", "--sort", "-test_accuracy", "--format", "csv")
    accuracies = pd.read_csv(io.StringIO(result.output))["test_accuracy_mean"]
    assert list(accuracies) == sorted(accuracies, reverse=True) and len(accuracies) == 9


def test_other_metrics_are_computed_from_the_runs():
    result = show(RESULTS / "memory", "--metric", "peak_memory_mb", "--metric", "epoch_seconds", "--format", "md")
    assert result.exit_code == 0, result.output
    assert "| config | point | variant | finished | diverged | failed | peak_memory_mb [95% CI] |" in result.output
    assert "n/a" not in result.output


def test_the_table_format_aligns_intervals():
    result = show(RESULTS / "first_timestep")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:6] == ["config", "point", "variant", "finished", "diverged", "failed"]
    assert len(rows) == 2 and all("[" in row and "]" in row for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no result folders"),
        ((RESULTS, "--where", "lag"), "expected KEY=VALUE"),
        ((RESULTS, "--sort", "speed"), "--sort speed: not a column"),
        ((RESULTS, "--metric", "speed"), "Invalid value for '--metric'"),
    ],
    ids=["empty folder", "where without a value", "unknown sort column", "unknown metric"],
)
def test_bad_requests_are_one_line_usage_errors(tmp_path, args, message):
    result = show(*(args or (tmp_path,)))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


def test_show_never_imports_tensorflow():
    script = (
        "import sys; from click.testing import CliRunner; from stateful_lab.cli import main; "
        "result = CliRunner().invoke(main, ['show', 'results']); assert result.exit_code == 0, result.output; "
        "print(sorted(name for name in ('tensorflow', 'keras', 'matplotlib') if name in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
