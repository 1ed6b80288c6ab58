"""Nothing a user's file can do crashes the lab, hangs it, or turns into a wrong
figure: each class of hostile input gets one line that names the file and the
problem (exit 2), read in bounded memory and time."""

import math
import os
import string
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from stateful_lab.cli import main
from stateful_lab.config import files
from stateful_lab.config.experiment import ConfigError, load_experiment, parse_experiment
from stateful_lab.errors import MAX_MESSAGE
from stateful_lab.results.formatting import number
from stateful_lab.results.tables import not_a_number_diverged
from stateful_lab.runs.records import EpochResult
from stateful_lab.tasks import csvfile
from stateful_lab.tasks.forecast import SeriesError, read_series
from stateful_lab.training import protocol

SERIES = "value\n" + "".join(f"{(index * 7) % 11 + index}\n" for index in range(40))


def series_error(path, column="value") -> str:
    with pytest.raises(SeriesError) as caught:
        read_series(path, column)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600
    return message


# --- the CSV reader ---------------------------------------------------------------


def test_an_endless_device_is_refused_before_reading():
    assert "not a regular file" in series_error(Path("/dev/zero"))


def test_a_pipe_is_refused_without_opening_it(tmp_path):
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)  # opening it would wait for a writer forever
    assert "not a regular file" in series_error(pipe)


def test_a_file_above_the_limit_is_refused_with_its_size_and_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text(SERIES)
    monkeypatch.setattr(csvfile, "MAX_TABLE_BYTES", 100)
    message = series_error(path)
    assert f"{path.stat().st_size} bytes, above the 100 bytes" in message


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda folder: (folder / "a").symlink_to(folder / "b") or (folder / "b").symlink_to(folder / "a"), "symbolic"),
        (lambda folder: (folder / "a").mkdir(), "a folder, not a CSV file"),
        (lambda folder: None, "does not exist"),
    ],
    ids=["symbolic-link loop", "a folder", "missing"],
)
def test_operating_system_errors_on_the_path_are_one_line(tmp_path, make, fragment):
    make(tmp_path)
    message = series_error(tmp_path / "a")
    assert fragment in message and str(tmp_path / "a") in message


def test_a_name_too_long_is_named_shortened(tmp_path):
    message = series_error(tmp_path / ("x" * 300 + ".csv"))
    assert "File name too long" in message and "more characters" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,value\n1,2\n3,4,5\n", "row 3 has 3 cells and the header 2 (a decimal comma?"),
        ("a,value\n1,2\n3\n", "row 3 has 1 cells and the header 2;"),
        ("value,value\n1,2\n", "names column 'value' twice (columns 1 and 2)"),
        ("month;value\n1;2\n", "separates its columns with ';'"),
        ("value\n1e308\n-1e308\n", "row 2, column 'value' is 1e+308; values beyond 1e+150 overflow"),
        ("value\n" + "x" * 10_000 + "\n", "not a finite number ('xxxxxxxx"),
    ],
    ids=["more cells", "fewer cells", "a repeated column", "semicolons", "overflowing values", "a huge cell"],
)
def test_ragged_ambiguous_or_overflowing_tables_are_refused_naming_where(tmp_path, text, fragment):
    path = tmp_path / "table.csv"
    path.write_text(text)
    assert fragment in series_error(path)


def test_a_byte_order_mark_is_read_correctly(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + SERIES.encode())
    assert read_series(path, "value")[:3].tolist() == [0.0, 8.0, 5.0]


def assert_a_series_or_one_line(path):
    """What the reader makes of any file: finite values, or one short line."""
    try:
        values = read_series(path, "value")
    except SeriesError as error:
        assert "\n" not in str(error) and len(str(error)) < 800
    else:
        assert values.dtype == float and all(math.isfinite(value) for value in values)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_series_or_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "any.csv"
    path.write_bytes(data)
    assert_a_series_or_one_line(path)


CELLS = st.text(alphabet=string.printable.replace("\r", ""), max_size=8)


@given(st.lists(st.lists(CELLS, max_size=4), min_size=1, max_size=8))
def test_arbitrary_small_tables_give_a_series_or_one_line(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("tables") / "any.csv"
    path.write_text("\n".join(",".join(row) for row in rows))
    assert_a_series_or_one_line(path)


# --- config files -------------------------------------------------------------


def config_error(path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert all(len(problem) <= files.MAX_LINE + 40 for problem in caught.value.problems)
    return caught.value.problems


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("data: " + "[" * 5000 + "]" * 5000 + "\n")
    (problem,) = config_error(path)
    assert "nested too deeply" in problem


def test_aliases_that_expand_to_billions_of_items_are_echoed_in_a_line(tmp_path):
    lines = ["a: &a [xxxxxxxxxxxxxxxxxxxxxxxxx, yyyyyyyyyyyyyyyyyyyyy]"]
    for level in range(9):  # 2 * 8**9: about 270 million strings, if they were ever made
        lines.append(f"b{level}: &b{level} [" + ", ".join([f"*{'a' if level == 0 else f'b{level - 1}'}"] * 8) + "]")
    path = tmp_path / "alias.yaml"
    path.write_text("\n".join(lines) + "\nname: *b8\n")
    problems = config_error(path)
    assert any(problem.startswith("name: got [[") for problem in problems)


@pytest.mark.parametrize(
    "make",
    [lambda path: os.mkfifo(path), lambda path: path.symlink_to(path)],
    ids=["a pipe", "a link to itself"],
)
def test_a_config_path_that_is_no_file_is_one_line(tmp_path, make):
    path = tmp_path / "config.yaml"
    make(path)
    (problem,) = config_error(path)
    assert str(path) in problem


def test_a_config_above_its_limit_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("description: " + "x" * (files.MAX_CONFIG_BYTES + 1) + "\n")
    (problem,) = config_error(path)
    assert "above the 1.0 MB" in problem


def test_many_problems_are_cut_to_a_readable_list():
    sweep = {"train.batch_size": list(range(300, 600))}  # each larger than the 256 test samples
    with pytest.raises(ConfigError) as caught:
        parse_experiment({"sweep": sweep})
    assert len(caught.value.problems) == files.MAX_PROBLEMS + 1
    assert caught.value.problems[-1] == "later sweep points not checked: fix these first"
    assert ConfigError(["a problem"] * 100).problems[-1] == f"... and {100 - files.MAX_PROBLEMS} more problems"


def test_a_huge_sweep_is_checked_value_by_value_not_point_by_point(monkeypatch):
    """600 x 500 = 300,000 points: each of the 1,100 values is validated once, so
    loading is linear in the values and quick, not in their product."""
    from stateful_lab.config import experiment as module

    calls = []
    real = module._parse_one
    monkeypatch.setattr(module, "_parse_one", lambda *args: calls.append(1) or real(*args))
    sweep = {"train.epochs": list(range(1, 601)), "train.learning_rate": [0.001 + i * 1e-6 for i in range(500)]}
    experiment = parse_experiment({"sweep": sweep})
    assert experiment.point_count == 300_000 and experiment.run_count == 300_000 * 3 * 2
    assert len(calls) == 1 + 600 + 500


def test_run_refuses_a_sweep_above_the_limit_with_its_count_and_the_way_on(tmp_path, write_config):
    config = write_config("sweep: {train.epochs: [1, 2, 3]}\nseeds: 2\n")
    result = CliRunner().invoke(main, ["run", str(config), "--out", str(tmp_path / "out"), "--max-runs", "10"])
    assert result.exit_code == 2
    assert "12 runs (3 sweep points x 2 seeds x 2 variants), above the limit of 10" in result.output
    assert "--max-runs 12" in result.output and not (tmp_path / "out").exists()


def test_validate_lists_a_huge_sweep_briefly(write_config):
    epochs = ", ".join(map(str, range(1, 2001)))
    config = write_config(f"sweep: {{train.epochs: [{epochs}]}}\n")
    result = CliRunner().invoke(main, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "# sweep: 2000 points" in result.output and "... and 1950 more points" in result.output
    assert result.output.count("#   train.epochs=") == 50


@pytest.mark.parametrize(
    "out",
    ["x" * 300, "loop/results"],
    ids=["a name too long", "under a link loop"],
)
def test_an_output_folder_the_system_refuses_is_one_line(tmp_path, out, write_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    result = CliRunner().invoke(main, ["run", str(write_config("seeds: 1\n")), "--out", out])
    assert result.exit_code == 2 and "cannot write to" in result.output
    assert "Traceback" not in result.output and len(result.output) < 600


# --- figures that are not numbers ---------------------------------------------


def test_an_infinite_forecast_error_is_a_divergence_not_a_figure():
    finite = EpochResult(0, 0.1, math.nan, 0.2, math.nan, 1.0, test_rmse=3.0, forecasts=(1.0,))
    infinite = EpochResult(0, 0.1, math.nan, 0.2, math.nan, 1.0, test_rmse=math.inf, forecasts=(1.0,))
    assert not protocol.diverged(finite) and protocol.diverged(infinite)
    assert not protocol.diverged(EpochResult(0, 0.1, 0.5, 0.2, 0.5, 1.0))  # no forecasts: test_rmse is not a figure


def test_older_results_with_infinite_figures_read_back_as_diverged():
    runs = pd.DataFrame(
        {"status": ["ok", "ok", "failed"], "test_loss": [0.1, math.inf, math.nan], "test_rmse": [1.0, 2.0, math.nan]}
    )
    assert not_a_number_diverged(runs)["status"].tolist() == ["ok", "diverged", "failed"]
    assert number(math.inf) == number(math.nan) == "n/a"


def test_every_lab_error_message_is_bounded():
    from stateful_lab.errors import LabError

    assert len(str(LabError("x" * 10**6))) < MAX_MESSAGE + 40
