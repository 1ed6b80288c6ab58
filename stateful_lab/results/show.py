"""`stateful-lab show`: one table across result folders, one row per (config,
sweep point, variant): how many runs finished, diverged and failed, and the
final-epoch metrics with their 95% intervals.

It reads only the files a `run` wrote (never TensorFlow), so it answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from stateful_lab.results.formatting import csv_text, interval, json_ready, markdown_table
from stateful_lab.results.tables import METRICS, ConfigResults, ResultsError, load_results, summarize

FORMATS = ("table", "md", "csv", "json")
SHOWABLE_METRICS = (
    "test_accuracy",
    "test_loss",
    "test_rmse",
    "forecast_accuracy",
    "train_accuracy",
    "train_loss",
    "epoch_seconds",
    "peak_memory_mb",
)


def show_table(
    folders: list[Path], metrics: tuple[str, ...] = METRICS, where: tuple[str, ...] = (), sort: str | None = None
) -> pd.DataFrame:
    """The rows for `folders` (result folders, or folders of them), filtered by
    `where` (KEY=VALUE, all must hold) and sorted by `sort` (a column or metric;
    a leading '-' sorts descending). Raises ResultsError naming what is wrong."""
    configs = [config for folder in folders for config in load_results(folder)]
    if not configs:
        raise ResultsError(f"no result folders in {', '.join(map(str, folders))}; run `stateful-lab run CONFIG` first")
    rows = [row for config in configs for row in _rows(config, metrics, where)]
    table = pd.DataFrame(
        rows,
        columns=["config", "point", "variant", "finished", "diverged", "failed"]
        + [f"{metric}_{part}" for metric in metrics for part in ("mean", "ci_low", "ci_high")],
    )
    if sort:
        column = sort.lstrip("-")
        column = f"{column}_mean" if column in metrics else column
        if column not in table.columns:
            raise ResultsError(
                f"--sort {sort}: not a column; use one of config, point, variant, finished, "
                f"diverged, failed or a shown metric ({', '.join(metrics)})"
            )
        table = table.sort_values(column, ascending=not sort.startswith("-"), kind="stable")
    return table.reset_index(drop=True)


def _rows(config: ConfigResults, metrics: tuple[str, ...], where: tuple[str, ...]) -> list[dict[str, Any]]:
    experiment = config.experiment
    keys = list(experiment.sweep)
    summary = config.summary
    if any(f"{metric}_mean" not in summary.columns for metric in metrics):
        summary = summarize(config.runs, keys, metrics)
    conditions = [condition(experiment, item) for item in where]
    rows = []
    for record in summary.to_dict("records"):
        values = {"config": experiment.name, "variant": record["variant"]} | {key: record[key] for key in keys}
        if not all(key in values and values[key] == value for key, value in conditions):
            continue
        row = {
            "config": experiment.name,
            "point": ", ".join(f"{key}={record[key]}" for key in keys) or "-",
            "variant": record["variant"],
            "finished": int(record["n"]),
            "diverged": int(record["n_diverged"]),
            "failed": int(record["n_failed"]),
        }
        for metric in metrics:
            row |= {f"{metric}_{part}": record[f"{metric}_{part}"] for part in ("mean", "ci_low", "ci_high")}
        rows.append(row)
    return rows


def condition(experiment, item: str, option: str = "--where") -> tuple[str, Any]:
    """KEY=VALUE as a selection: config and variant as text, a swept key's value
    typed as its config says."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ResultsError(f"{option} {item!r}: expected KEY=VALUE, e.g. {option} variant=stateful")
    return key, (text if key in ("config", "variant") else experiment.typed(key, text))


def render(table: pd.DataFrame, metrics: tuple[str, ...], output: str) -> str:
    """The table as text: aligned columns, Markdown, CSV or JSON records."""
    if output == "csv":
        return csv_text(table)
    if output == "json":
        return json.dumps([json_ready(row) for row in table.to_dict("records")], indent=2) + "\n"
    cells = table[["config", "point", "variant", "finished", "diverged", "failed"]].astype(str)
    for metric in metrics:
        cells[f"{metric} [95% CI]"] = [
            interval(row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"])
            for row in table.to_dict("records")
        ]
    if output == "md":
        return "\n".join(markdown_table(list(cells.columns), list(cells.itertuples(index=False)))) + "\n"
    return cells.to_string(index=False) + "\n"
