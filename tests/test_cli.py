"""The command line's surface: help with examples, version, and refusing an
output folder it cannot write before any training."""

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main

from .conftest import CONFIGS, smoke_experiment

GOOD = smoke_experiment("first_timestep").to_yaml()


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_run_rejects_an_unwritable_output_folder(write_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("run", write_config(GOOD), "--out", blocker / "results")
    assert result.exit_code == 2
    assert "cannot write to" in result.output


@pytest.mark.parametrize("command", [[], *([name] for name in main.commands)], ids=lambda c: c[0] if c else "group")
def test_help_ends_with_an_example(command):
    result = invoke(*command, "-h")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "stateful-lab " in result.output.split("Example:")[1]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "stateful-lab, version" in result.output


def test_run_takes_several_configs_in_one_process(tmp_path, monkeypatch):
    """make reproduce runs every config in one call: each gets its own folder."""
    monkeypatch.chdir(tmp_path)
    configs = [str(CONFIGS / "first_timestep.yaml"), str(CONFIGS / "collocated.yaml")]
    tiny = ["--set", "data.train_samples=32", "--set", "data.test_samples=16", "--set", "train.epochs=1"]
    result = CliRunner().invoke(main, ["run", *configs, "--seeds", "1", "--quiet", *tiny])
    assert result.exit_code == 0, result.output
    assert "== first_timestep" in result.output and "== collocated" in result.output
    for name in ("first_timestep", "collocated"):
        assert len(pd.read_csv(tmp_path / "results" / name / "runs.csv")) == 2
    one_folder = CliRunner().invoke(main, ["run", *configs, "--out", str(tmp_path / "x")])
    assert one_folder.exit_code == 2 and "--out names one folder" in one_folder.output
    twice = CliRunner().invoke(main, ["run", configs[0], configs[0]])
    assert twice.exit_code == 2 and "would write the same folder" in twice.output
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    bad = CliRunner().invoke(main, ["run", *configs, "--set", "train.epochs=0"])  # every config checked first
    assert bad.exit_code == 2 and "train.epochs" in bad.output and not (fresh / "results").exists()


def test_several_configs_on_two_workers_give_the_numbers_of_each_run_alone(tmp_path, monkeypatch):
    """With --jobs, every config's runs are queued on one pool at once, runs of
    several configs in one group; a run two configs share trains once and each
    gets it under its own sweep point."""
    monkeypatch.chdir(tmp_path)
    same = (CONFIGS / "collocated.yaml").read_text().replace("name: collocated", "name: collocated_swept")
    (tmp_path / "collocated_swept.yaml").write_text(same + "\nsweep:\n  train.epochs: [2]\n")
    configs = [str(CONFIGS / "first_timestep.yaml"), str(CONFIGS / "collocated.yaml"), "collocated_swept.yaml"]
    tiny = ["--set", "train.epochs=2", "--set", "data.train_samples=64", "--set", "data.test_samples=32"]
    pooled = CliRunner().invoke(main, ["run", *configs, "--seeds", "2", "--quiet", "--jobs", "2", *tiny])
    assert pooled.exit_code == 0, pooled.output
    assert "in the largest of 2 workers" in pooled.output
    for config in configs:
        name = Path(config).stem
        alone = CliRunner().invoke(main, ["run", config, "--seeds", "2", "--quiet", "--out", f"alone_{name}", *tiny])
        assert alone.exit_code == 0, alone.output
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "results" / name / "epochs.csv").drop(columns="seconds"),
            pd.read_csv(tmp_path / f"alone_{name}" / "epochs.csv").drop(columns="seconds"),
            atol=1e-5,
        )
    swept = pd.read_csv(tmp_path / "results" / "collocated_swept" / "epochs.csv")
    assert (swept["train.epochs"] == 2).all()
    pd.testing.assert_frame_equal(
        swept.drop(columns=["config", "train.epochs"]),
        pd.read_csv(tmp_path / "results" / "collocated" / "epochs.csv").drop(columns="config"),
    )
