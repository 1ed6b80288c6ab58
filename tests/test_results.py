"""Smoke runs of every shipped config (shrunk by tests/conftest.py) and the output
contract they write; intervals."""

import importlib.metadata
import json
import os

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.results.tables import EPOCH_COLUMNS

from .conftest import CONFIGS, smoke, smoke_experiment

CONFIG_NAMES = sorted(path.stem for path in CONFIGS.glob("*.yaml"))


def run_cli(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_smoke_config_runs_and_writes_the_output_contract(name, tmp_path):
    result = run_cli(*smoke(name), "--out", tmp_path)
    assert result.exit_code == 0, result.output
    experiment = smoke_experiment(name)
    swept = list(experiment.sweep)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    extra = list(experiment.data.metrics)
    assert list(epochs.columns) == ["config", *swept, *EPOCH_COLUMNS[1:-2], *extra, *EPOCH_COLUMNS[-2:]]
    runs = pd.read_csv(tmp_path / "runs.csv")
    expected_runs = len(experiment.points) * len(experiment.seed_list) * len(experiment.variants)
    assert len(runs) == expected_runs
    assert (runs["epochs"] == experiment.train.epochs).all()
    assert len(epochs) == expected_runs * experiment.train.epochs
    assert runs["peak_memory_mb"].notna().all() == experiment.train.isolate
    assert set(epochs["status"]) == {"ok"}
    assert epochs["train_loss"].notna().all() and epochs["test_loss"].notna().all()
    if experiment.data.forecast_set() is not None:  # a forecasting task: its forecasts and the baseline
        forecasts = pd.read_csv(tmp_path / "forecasts.csv")
        assert len(forecasts) == expected_runs * len(experiment.data.forecast_set().actual)  # every entity's test part
        metric = experiment.data.forecast_set().metric  # test_rmse, or forecast_accuracy for labels
        assert epochs[metric].notna().all()
        repeats = len(experiment.seed_list) * len(experiment.variants)
        first = next(iter(experiment.data.forecast_set().baselines))  # persistence, or the previous label
        baseline = [
            point.data.forecast_set().baselines[first] for _, point in experiment.points for _ in range(repeats)
        ]
        assert min(baseline) > 0  # the CSV keeps six digits
        assert runs[first].to_list() == pytest.approx(baseline, rel=1e-5)
    if experiment.classification:
        assert epochs["test_accuracy"].between(0, 1).all()
    else:
        assert epochs["test_accuracy"].isna().all() and epochs["train_accuracy"].isna().all()

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == len(experiment.points) * len(experiment.variants)
    assert set(summary["variant"]) == set(experiment.variants)
    assert (summary["n"] == len(experiment.seed_list)).all()
    last = epochs[epochs["epoch"] == experiment.train.epochs - 1]
    for keys, group in last.groupby([*swept, "variant"]):
        row = summary
        for column, value in zip([*swept, "variant"], keys):
            row = row[row[column] == value]
        row = row.iloc[0]
        assert row["test_loss_mean"] == pytest.approx(group["test_loss"].mean(), rel=1e-5)
        if len(group) > 1:
            assert row["test_loss_ci_low"] <= row["test_loss_mean"] <= row["test_loss_ci_high"]

    assert "| variant | n |" in (tmp_path / "summary.md").read_text()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["name"] == experiment.name
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["seeds"] == experiment.seed_list
    assert meta["versions"]["tensorflow"] == importlib.metadata.version("tensorflow")
    assert 100 < meta["peak_memory_mb"] < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert meta["environment"]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "--xla_backend_optimization_level=2" in meta["environment"]["XLA_FLAGS"]
    assert f"Epoch: 0 (Loss, Acc) {experiment.variants[0]}: Train: (" in result.output


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_other_trainers_run_from_the_command_line(trainer, tmp_path):
    result = run_cli(*smoke("first_timestep"), "--out", tmp_path, "--trainer", trainer, "--seeds", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["trainer"] == trainer
    assert json.loads((tmp_path / "meta.json").read_text())["trainer"] == trainer


def test_untidy_sample_count_is_trimmed_with_a_warning(tmp_path):
    overrides = ("data.train_samples=30", "train.epochs=1")
    result = run_cli(*smoke("collocated", *overrides), "--out", tmp_path, "--seeds", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert "dropped 2 train samples" in result.output
    assert "Epoch:" not in result.output  # --quiet drops the per-epoch tables


def test_a_large_table_is_written_compressed_and_every_reader_takes_either_form(tmp_path):
    """A table above COMPRESS_ABOVE of CSV text is written as NAME.csv.xz (the same
    CSV text, compressed: pandas reads it directly), a small one as plain CSV;
    rewriting a table in the other form removes the stale one; and a folder whose
    large tables are plain CSV (written before compression) loads the same."""
    import lzma
    import shutil

    from stateful_lab.results.formatting import csv_text
    from stateful_lab.results.tables import COMPRESS_ABOVE, load_folder, table_file, write_table

    result = run_cli(*smoke("shampoo"), "--out", tmp_path / "small")
    assert result.exit_code == 0, result.output
    small = load_folder(tmp_path / "small")
    assert table_file(tmp_path / "small", "epochs.csv").name == "epochs.csv"  # a smoke run's table is small
    repeats = 2 * COMPRESS_ABOVE // len(csv_text(small.epochs)) + 1
    large = pd.concat([small.epochs] * repeats, ignore_index=True)
    folder = tmp_path / "large"
    shutil.copytree(tmp_path / "small", folder)
    written = write_table(folder, "epochs.csv", large)
    assert written.name == "epochs.csv.xz" and not (folder / "epochs.csv").exists()
    assert lzma.decompress(written.read_bytes()).decode() == csv_text(large)
    assert written.stat().st_size < len(csv_text(large)) / 5
    pd.testing.assert_frame_equal(load_folder(folder).epochs, large)
    result = CliRunner().invoke(main, ["show", str(folder)])
    assert result.exit_code == 0, result.output
    plain = tmp_path / "plain"  # the same large table as plain CSV, as an older version wrote it
    shutil.copytree(folder, plain)
    (plain / "epochs.csv.xz").unlink()
    (plain / "epochs.csv").write_text(csv_text(large))
    pd.testing.assert_frame_equal(load_folder(plain).epochs, large)
    assert write_table(folder, "epochs.csv", small.epochs).name == "epochs.csv"
    assert not (folder / "epochs.csv.xz").exists()
    pd.testing.assert_frame_equal(load_folder(folder).epochs, small.epochs)
