"""Runs in TensorBoard, read back from the event files: every run's every epoch as
scalars equal to epochs.csv, and its sweep point, variant and seed as hyperparameters."""

import pandas as pd
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main

from .conftest import smoke


def test_run_with_tensorboard_writes_every_epoch_of_every_run_and_its_hyperparameters(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    args = smoke("lag_copy", "sweep={data.lag: [2, 8]}", "claims=[]")  # 2 points x 2 seeds x 2 variants
    result = CliRunner().invoke(
        main, ["run", *args, "--out", str(tmp_path / "out"), "--quiet", "--tensorboard", str(tmp_path / "tb")]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 8 runs to TensorBoard under {tmp_path / 'tb'}/" in result.output
    epochs = pd.read_csv(tmp_path / "out" / "epochs.csv")
    runs = sorted(
        path.parent for path in (tmp_path / "tb").rglob("events.out.tfevents.*") if path.parent.name.startswith("seed_")
    )
    assert len(runs) == 8
    for folder in runs:
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        lag, variant, seed = int(folder.parent.parent.name.split("=")[1]), folder.parent.name, int(folder.name[5:])
        mine = epochs[(epochs["data.lag"] == lag) & (epochs["variant"] == variant) & (epochs["seed"] == seed)]
        for figure in ("train_loss", "test_loss", "test_accuracy"):
            events = accumulator.Scalars(figure)
            assert [event.step for event in events] == mine["epoch"].tolist()
            assert [event.value for event in events] == pytest.approx(mine[figure].tolist(), rel=1e-6)
        assert "test_rmse" not in accumulator.Tags()["scalars"]  # only the figures the config has
        session = plugin_data_pb2.HParamsPluginData.FromString(
            accumulator.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
        ).session_start_info
        values = {
            name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in session.hparams.items()
        }
        assert values == {"data.lag": lag, "variant": variant, "seed": seed}
    top = EventAccumulator(str(tmp_path / "tb" / "smoke_lag_copy"))
    top.Reload()
    assert metadata.EXPERIMENT_TAG in top.PluginTagToContent(metadata.PLUGIN_NAME)  # the HParams dashboard's columns


def test_export_to_mlflow_logs_every_run_and_the_result_files(tmp_path, monkeypatch):
    """Against a local file store (MLflow keeps it in maintenance mode; the test
    allows it): one MLflow run per config, point, variant and seed with its
    parameters and per-epoch metrics equal to epochs.csv, and the files run."""
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *smoke("first_timestep"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    uri = f"file:{tmp_path / 'mlruns'}"
    exported = CliRunner().invoke(main, ["export", "mlflow", str(out), "--tracking-uri", uri])
    assert exported.exit_code == 0, exported.output
    assert f"logged 4 runs to MLflow at {uri}" in exported.output
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("smoke_first_timestep")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 5  # four runs and the result files
    epochs = pd.read_csv(out / "epochs.csv")
    for run in runs:
        if "seed" not in run.data.params:
            assert {item.path for item in client.list_artifacts(run.info.run_id)} >= {"epochs.csv", "config.yaml"}
            continue
        params = run.data.params
        mine = epochs[(epochs["variant"] == params["variant"]) & (epochs["seed"] == int(params["seed"]))]
        history = client.get_metric_history(run.info.run_id, "test_loss")
        assert [metric.step for metric in history] == mine["epoch"].tolist()
        assert [metric.value for metric in history] == pytest.approx(mine["test_loss"].tolist(), rel=1e-6)
        assert run.data.tags["status"] == "ok"


def test_export_to_mlflow_says_what_is_missing_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", *smoke("first_timestep"), "--out", str(out), "--quiet"]).exit_code == 0
    refused = CliRunner().invoke(main, ["export", "mlflow", str(out), "--tracking-uri", f"file:{tmp_path / 'm'}"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output  # a store it cannot use: usage
    errors = [line for line in refused.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "MLflow refused the export" in errors[0]
