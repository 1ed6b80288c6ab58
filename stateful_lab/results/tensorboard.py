"""Runs in TensorBoard: every run's per-epoch figures as scalars, one TensorBoard
run per (config, sweep point, variant, seed), and the sweep keys, variant and seed
as hyperparameters with the final figures (the HParams dashboard).

Written with the tensorboard package's own event writer and protocol buffers, so
exporting imports no TensorFlow (like everything under results/)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

from stateful_lab.results.tables import ConfigResults, load_results

FIGURES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_rmse", "forecast_accuracy")
"""The per-epoch figures exported, where a config has them."""


def export(results_dirs: list[Path], logdir: Path) -> int:
    """Write every run of the configs in `results_dirs` (each a result folder or a
    folder of them) under `logdir`; how many runs were written."""
    from tensorboard.plugins.hparams import summary_v2 as hparams

    written = 0
    for results_dir in results_dirs:
        for config in load_results(Path(results_dir)):
            keys = [*config.experiment.sweep, "variant", "seed"]
            figures = [name for name in FIGURES if name in config.epochs and config.epochs[name].notna().any()]
            _write(
                logdir / config.experiment.name,
                [
                    hparams.hparams_config_pb(
                        hparams=[hparams.HParam(key) for key in keys],
                        metrics=[hparams.Metric(name) for name in figures],
                    )
                ],
            )
            written += _export_config(config, logdir / config.experiment.name, keys, figures)
    return written


def run_folder(config: ConfigResults, point: dict) -> str:
    """A run's folder under its config's: the sweep point, the variant, the seed."""
    parts = [f"{key}={_text(value)}" for key, value in point.items() if key not in ("variant", "seed")]
    parts += [str(point["variant"]), f"seed_{point['seed']}"]
    return "/".join(re.sub(r"[^\w.=,+-]", "_", part) for part in parts)


def _export_config(config: ConfigResults, folder: Path, keys: list[str], figures: list[str]) -> int:
    from tensorboard.plugins.hparams import summary_v2 as hparams

    epochs = config.epochs[config.epochs["status"] != "failed"]  # a diverged run: its epochs up to then
    count = 0
    for values, rows in epochs.groupby(keys, sort=False, dropna=False):
        point = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        rows = rows.sort_values("epoch")
        name = run_folder(config, point)
        summaries = [hparams.hparams_pb({key: _hparam(value) for key, value in point.items()}, trial_id=name)]
        events = []
        for row in rows.to_dict("records"):
            scalars = {name: row[name] for name in figures if not _missing(row[name])}
            events.append((int(row["epoch"]), _scalars(scalars)))
        _write(folder / name, summaries, events)
        count += 1
    return count


def _write(folder: Path, summaries: list, events: list[tuple[int, object]] = ()) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    now = time.time()
    for summary in summaries:
        writer.add_event(event_pb2.Event(wall_time=now, step=0, summary=summary))
    for step, summary in events:
        writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary))
    writer.close()


def _scalars(values: dict[str, float]):
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=name, simple_value=float(value)) for name, value in values.items()]
    )


def _hparam(value):
    """A hyperparameter value TensorBoard accepts: a number, a bool or text."""
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    return value if isinstance(value, bool | int | float | str) else _text(value)


def _text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
