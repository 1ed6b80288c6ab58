"""The Python API: the same library the command line calls, driven directly. It
gives the command line's tables, reads a folder back, compares, renders in a
notebook and raises the lab's own one-line errors."""

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import stateful_lab
from stateful_lab.cli import main

from .conftest import smoke

FOUR_RUNS = smoke("first_timestep")  # 2 seeds x 2 variants, with the real config's claims


def overrides_of(args):
    """The smoke run's --set items as the API's overrides: dotted keys, Python values."""
    items = [args[index + 1].split("=", 1) for index, arg in enumerate(args) if arg == "--set"]
    return {key: yaml.safe_load(value) for key, value in items}


def numbers(table):
    return table.drop(columns=[column for column in table if "seconds" in column or "memory" in column])


def test_run_gives_the_command_lines_tables_and_load_reads_them_back(tmp_path):
    config, overrides = FOUR_RUNS[0], overrides_of(FOUR_RUNS)
    result = CliRunner().invoke(main, ["run", *FOUR_RUNS, "--out", str(tmp_path / "cli"), "--quiet"])
    assert result.exit_code == 0, result.output
    ours = stateful_lab.run(config, out=tmp_path / "api", **overrides)
    assert isinstance(ours, stateful_lab.Results) and ours.name == "smoke_first_timestep"
    assert len(ours.runs) == 4 and set(ours.runs["status"]) == {"ok"}
    for name in ("epochs", "runs"):
        cli = pd.read_csv(tmp_path / "cli" / f"{name}.csv")
        pd.testing.assert_frame_equal(numbers(getattr(ours, name)), numbers(cli))
    again = stateful_lab.load(tmp_path / "api")
    pd.testing.assert_frame_equal(again.summary, ours.summary)
    assert [verdict.claim.id for verdict in ours.verdicts] == [claim.id for claim in ours.experiment.claims]
    words = {"supported", "not supported", "reproduced", "not reproduced", "inconclusive", "no data"}
    assert {verdict.word for verdict in ours.verdicts} <= words
    assert ours.table().columns.tolist()[:2] == ["variant", "n"]
    shown = ours._repr_html_()
    assert "<table" in shown and ours.verdicts[0].claim.id in shown
    assert "smoke_first_timestep: 4 runs" in repr(ours)


def test_a_dict_config_and_python_values_as_overrides(tmp_path):
    raw = {"data": {"task": "first_timestep", "train_samples": 32, "test_samples": 16}, "train": {"epochs": 1}}
    results = stateful_lab.run(
        raw, out=tmp_path, seeds=[0, 3], variants=["stateful", "stateless"], **{"model.units": 2}
    )
    assert sorted(results.runs["seed"].unique()) == [0, 3] and results.experiment.model.units == [2]
    row = stateful_lab.compare(tmp_path, ["variant=stateful"], ["variant=stateless"], metric="test_loss")
    assert row["metric"] == "test_loss" and row["n_a"] == row["n_b"] == 2


def test_errors_are_the_labs_own_with_its_one_line_messages(tmp_path):
    with pytest.raises(stateful_lab.ConfigError) as caught:
        stateful_lab.run({"train": {"epochs": 0}}, out=tmp_path)
    assert "train.epochs" in str(caught.value) and isinstance(caught.value, stateful_lab.LabError)
    with pytest.raises(stateful_lab.ResultsError) as caught:
        stateful_lab.load(tmp_path / "nothing")
    assert "nothing" in str(caught.value) and "\n" not in str(caught.value)
