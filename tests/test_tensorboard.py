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
