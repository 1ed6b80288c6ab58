"""Runs in MLflow (the optional extra: pip install 'stateful-lab[mlflow]'): one
MLflow run per (config, sweep point, variant, seed) in an experiment named after
the config, with the point, variant and seed as parameters, every epoch's figures
as metrics (step = epoch), its status as a tag; and one run per config holding the
result files as artifacts."""

from __future__ import annotations

import math
from pathlib import Path

from stateful_lab.errors import LabError
from stateful_lab.results.tables import RESULT_FILES, load_results, table_file
from stateful_lab.results.tensorboard import FIGURES, run_folder
from stateful_lab.userfiles import shorten


class ExportError(LabError, RuntimeError):
    """The export cannot be made as asked; the message says why and what to do."""


def export(results_dirs: list[Path], tracking_uri: str) -> int:
    """Log every run of the configs in `results_dirs` to the MLflow tracking
    server or store at `tracking_uri`; how many runs were logged."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param, RunTag
    except ImportError:
        raise ExportError(
            "MLflow is not installed; install the extra with pip install 'stateful-lab[mlflow]'"
        ) from None
    logged = 0
    try:
        client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        for results_dir in results_dirs:
            for config in load_results(Path(results_dir)):
                name = config.experiment.name
                found = client.get_experiment_by_name(name)
                experiment = found.experiment_id if found else client.create_experiment(name)
                keys = [*config.experiment.sweep, "variant", "seed"]
                figures = [figure for figure in FIGURES if figure in config.epochs]
                epochs = config.epochs[config.epochs["status"] != "failed"]
                for values, rows in epochs.groupby(keys, sort=False, dropna=False):
                    point = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
                    run = client.create_run(experiment, run_name=run_folder(config, point), tags={"config": name})
                    metrics = [
                        Metric(figure, float(row[figure]), 0, int(row["epoch"]))
                        for row in rows.sort_values("epoch").to_dict("records")
                        for figure in figures
                        if not math.isnan(float(row[figure]))
                    ]
                    params = [Param(key, str(value)) for key, value in point.items()]
                    status = str(rows["status"].iloc[-1])
                    client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("status", status)])
                    client.set_terminated(run.info.run_id)
                    logged += 1
                files = client.create_run(experiment, run_name=f"{name} result files", tags={"config": name})
                for file in [*RESULT_FILES, "summary.md", "meta.json", "forecasts.csv"]:
                    path = table_file(config.folder, file)
                    if path.exists():
                        client.log_artifact(files.info.run_id, str(path))
                client.set_terminated(files.info.run_id)
    except (mlflow.exceptions.MlflowException, ImportError, OSError) as error:  # a store it cannot use
        message = shorten(str(error).splitlines()[0] if str(error) else type(error).__name__, 300)
        raise ExportError(f"MLflow refused the export to {tracking_uri}: {message}") from None
    return logged
