"""Smoke runs of every smoke config, the output contract, the evaluation protocol
and determinism across processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.config import load_experiment
from stateful_lab.results import EPOCH_COLUMNS

from .conftest import CONFIGS, ROOT

SMOKE = sorted((CONFIGS / "smoke").glob("*.yaml"))


def run_cli(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


@pytest.mark.parametrize("config", SMOKE, ids=lambda path: path.stem)
def test_smoke_config_runs_and_writes_the_output_contract(config, tmp_path):
    result = run_cli(config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    experiment = load_experiment(config)
    swept = list(experiment.sweep)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert list(epochs.columns) == ["config", *swept, *EPOCH_COLUMNS[1:]]
    runs = pd.read_csv(tmp_path / "runs.csv")
    expected_runs = len(experiment.points) * len(experiment.seed_list) * len(experiment.variants)
    assert len(runs) == expected_runs
    assert (runs["epochs"] == experiment.train.epochs).all()
    assert len(epochs) == expected_runs * experiment.train.epochs
    assert runs["peak_memory_mb"].notna().all() == experiment.train.isolate
    assert set(epochs["status"]) == {"ok"}
    assert epochs["train_loss"].notna().all() and epochs["test_loss"].notna().all()
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
    assert meta["versions"]["tensorflow"] and meta["peak_memory_mb"] > 0
    assert meta["environment"]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert f"Epoch: 0 (Loss, Acc) {experiment.variants[0]}: Train: (" in result.output


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_other_trainers_run_from_the_command_line(trainer, tmp_path):
    result = run_cli(CONFIGS / "smoke" / "first_timestep.yaml", "--out", tmp_path, "--trainer", trainer,
                     "--seeds", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["trainer"] == trainer
    assert json.loads((tmp_path / "meta.json").read_text())["trainer"] == trainer


def test_untidy_sample_count_is_trimmed_with_a_warning(tmp_path):
    config = CONFIGS / "smoke" / "collocated.yaml"
    result = run_cli(config, "--out", tmp_path, "--seeds", "1", "--set", "data.train_samples=30",
                     "--set", "train.epochs=1", "--quiet")
    assert result.exit_code == 0, result.output
    assert "dropped 2 train samples" in result.output
    assert "Epoch:" not in result.output  # --quiet drops the per-epoch tables


def test_evaluation_restores_the_training_state():
    """Keras 3 evaluate runs the test set through the state; the lab's evaluate
    must leave the training state exactly as it found it."""
    from stateful_lab.models import build_model, get_states
    from stateful_lab.runner import seed_everything
    from stateful_lab.tasks import make_dataset
    from stateful_lab.trainers import evaluate

    experiment = load_experiment(CONFIGS / "smoke" / "first_timestep.yaml")
    dataset = make_dataset(experiment.data, 4, seed=0)
    seed_everything(0)
    model = build_model(experiment, "stateful", 4, seed=0)
    model.fit(dataset.x_train, dataset.y_train, batch_size=4, epochs=1, shuffle=False, verbose=0)
    before = get_states(model)
    assert np.abs(before[0][0]).sum() > 0  # training left a non-zero state to protect

    model.evaluate(dataset.x_test, dataset.y_test, batch_size=4, verbose=0)
    assert not np.array_equal(get_states(model)[0][0], before[0][0])  # raw Keras changes it

    from stateful_lab.models import set_states
    set_states(model, before)
    evaluate(model, dataset, experiment)
    for saved, after in zip(before, get_states(model)):
        for saved_variable, after_variable in zip(saved, after):
            np.testing.assert_array_equal(saved_variable, after_variable)


def test_never_reset_training_is_unchanged_by_evaluation():
    """With reset: never, the state crosses epochs; evaluating between epochs must
    not alter the trained weights."""
    from stateful_lab.models import build_model, reset_states
    from stateful_lab.runner import seed_everything
    from stateful_lab.tasks import make_dataset
    from stateful_lab.trainers import train_fit

    experiment = load_experiment(CONFIGS / "smoke" / "first_timestep.yaml",
                                 ["train.reset=never", "train.epochs=3"])
    dataset = make_dataset(experiment.data, 4, seed=0)
    seed_everything(0)
    evaluated = build_model(experiment, "stateful", 4, seed=0)
    list(train_fit(evaluated, experiment, dataset))

    seed_everything(0)
    plain = build_model(experiment, "stateful", 4, seed=0)
    reset_states(plain)
    for _ in range(3):
        plain.fit(dataset.x_train, dataset.y_train, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for with_eval, without in zip(evaluated.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(with_eval, without)


def test_same_config_and_seed_give_identical_numbers_in_two_processes(tmp_path):
    config = CONFIGS / "smoke" / "first_timestep.yaml"
    tables = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        command = [sys.executable, "-m", "stateful_lab", "run", str(config), "--out", str(out),
                   "--seeds", "2", "--quiet"]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                   env={**os.environ, "PYTHONHASHSEED": attempt == "a" and "1" or "2"})
        assert completed.returncode == 0, completed.stderr
        tables.append(pd.read_csv(out / "epochs.csv").drop(columns="seconds"))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
