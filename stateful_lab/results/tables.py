"""Result files of an experiment (docs/design.md, "Output contract"), each written
atomically, and the tables they hold, built from the runs' records."""

from __future__ import annotations

import json
import lzma
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stateful_lab.atomic import write_atomic
from stateful_lab.config.claims import BASELINE_METRICS
from stateful_lab.config.experiment import ConfigError, Experiment, parse_experiment, read_yaml
from stateful_lab.errors import LabError
from stateful_lab.results.formatting import csv_text, markdown_row, number
from stateful_lab.runs.records import RunResult

EPOCH_COLUMNS = [
    "config",
    "variant",
    "seed",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "seconds",
    "status",
]
METRICS = ("test_accuracy", "test_loss")
"""The final-epoch metrics every summary has; a task may add its own (TaskData.metrics)."""
BASELINE_MEANINGS = {
    "persistence_rmse": "the RMSE over the same test part of the persistence forecast (the last observed value)",
    "seasonal_naive_rmse": "the RMSE over the same test part of the seasonal naive forecast (the value one season "
    "back)",
    "ridge_rmse": "the RMSE over the same test part of a ridge regression on the same input window, fitted on the "
    "training part",
    "previous_accuracy": "the accuracy over the same test part of the previous step's label",
    "majority_accuracy": "the accuracy over the same test part of the training part's majority label",
    "seasonal_naive_accuracy": "the accuracy over the same test part of the label one season back",
    "logistic_accuracy": "the accuracy over the same test part of a logistic regression on the same input window, "
    "fitted on the training part",
}
BASELINES = tuple(BASELINE_METRICS)
"""The forecasting tasks' baselines (tasks.windows), each the same for every seed."""
"""Figures that are the same for every run of a sweep point (a forecasting task's
persistence forecast), shown beside the metrics."""
FINAL_METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


@dataclass(frozen=True)
class ConfigResults:
    folder: Path
    experiment: Experiment
    epochs: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    forecasts: pd.DataFrame | None = None
    """forecasts.csv, for a forecasting task."""
    unjudged: str = ""
    """Why the config's claims could not be read (written by an older version):
    its tables are still shown, its claims not judged."""

    @property
    def metric(self) -> str:
        """The metric the config is judged by first: the task's own (test_rmse),
        else accuracy for bits and loss for regression."""
        if self.experiment.data.metrics:
            return self.experiment.data.metrics[0]
        return "test_accuracy" if self.experiment.classification else "test_loss"


class ResultsError(LabError, ValueError):
    """A results folder that cannot be read; the message names the file."""


RESULT_FILES = ("config.yaml", "epochs.csv", "runs.csv", "summary.csv")
"""What makes a result folder; each table may be compressed instead (`table_file`)."""
COMPRESS_ABOVE = 256 * 1024
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "mf": lzma.MF_HC3, "nice_len": 16}]
"""xz's default preset with a hash-chain match finder that stops at 16-byte
matches: on the committed tables (50 MB of CSV) 8x faster than the default
preset (4.3 s against 33 s) for files a third larger (4.5 MB against 3.4 MB).
Fixed filters give the same bytes for the same table every time."""
"""A result table whose CSV text is longer than this is written compressed, as
NAME.csv.xz (pandas reads it as it reads a CSV file; `xz -d` gives the CSV
back): the per-epoch tables of 1,000-epoch forecasts are 4-10 MB of CSV and
about 6% of that compressed. Smaller tables stay plain CSV, readable on a code
host. Folders written before this hold plain CSV files and read as before."""


def table_file(folder: Path, name: str) -> Path:
    """Where a result table (`name`.csv) is: NAME.csv.xz for a large one, else
    NAME.csv; if both are there (a write interrupted before the other was
    removed), the newer."""
    plain, compressed = folder / name, folder / f"{name}.xz"
    if not compressed.exists():
        return plain
    if plain.exists() and plain.stat().st_mtime_ns > compressed.stat().st_mtime_ns:
        return plain
    return compressed


def write_table(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write a result table as `name` (plain CSV) or, above COMPRESS_ABOVE, as
    `name`.xz (`XZ_FILTERS`: deterministic bytes, so an unchanged table
    rewrites the same file); then remove the other form, so a reader never takes
    a stale one. The path written."""
    text = csv_text(frame)
    plain, compressed = folder / name, folder / f"{name}.xz"
    written, other = (compressed, plain) if len(text) > COMPRESS_ABOVE else (plain, compressed)
    write_atomic(written, lzma.compress(text.encode(), filters=XZ_FILTERS) if written is compressed else text)
    other.unlink(missing_ok=True)
    return written


def load_results(results_dir: Path) -> list[ConfigResults]:
    """The results in `results_dir` if a run wrote there, else in every sub-folder
    a run wrote, by name; swept keys' columns are read back as their config types
    (Experiment.typed)."""
    folders = [results_dir] if is_result_folder(results_dir) else sorted(results_dir.iterdir())
    return [load_folder(folder) for folder in folders if is_result_folder(folder)]


def is_result_folder(folder: Path) -> bool:
    return folder.is_dir() and all(table_file(folder, name).exists() for name in RESULT_FILES)


def load_folder(folder: Path) -> ConfigResults:
    """One run's result files, read back; ResultsError names a file that cannot be."""
    files = [table_file(folder, name) for name in RESULT_FILES]
    try:
        raw = read_yaml(files[0])
    except ConfigError as error:
        raise ResultsError(f"{files[0]}: not a valid config: {'; '.join(error.problems)}") from None
    try:
        experiment, unjudged = parse_experiment(raw, default_name=folder.name), ""
    except ConfigError as error:
        problems = "; ".join(error.problems)
        # Claims an older version wrote (without min_difference): keep the tables, skip the claims.
        if not all(problem.startswith("claims") for problem in error.problems):
            raise ResultsError(f"{files[0]}: not a valid config: {problems}") from None
        experiment, unjudged = parse_experiment({**raw, "claims": []}, default_name=folder.name), problems
    tables = []
    optional = [path for path in [table_file(folder, "forecasts.csv")] if path.exists()]
    for path in files[1:] + optional:
        try:
            table = pd.read_csv(path)
            for key in experiment.sweep:  # each distinct value typed once: epochs.csv can hold 100k rows
                table[key] = table[key].map({value: experiment.typed(key, value) for value in table[key].unique()})
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as error:
            raise ResultsError(
                f"{path}: cannot be read as a result table ({type(error).__name__}: {error}); "
                f"re-run the config into {folder}"
            ) from None
        tables.append(table)
    tables[1] = not_a_number_diverged(tables[1])
    return ConfigResults(folder, experiment, *tables[:3], forecasts=tables[3] if optional else None, unjudged=unjudged)


def not_a_number_diverged(runs: pd.DataFrame) -> pd.DataFrame:
    """A runs table whose finished runs with an infinite final figure (written by
    an older version, which let them pass) are marked diverged, so that no
    summary, claim, `show` or `compare` averages or prints one as a result."""
    figures = [column for column in (*METRICS, "test_rmse") if column in runs]
    infinite = np.isinf(runs[figures].to_numpy(dtype=float)).any(axis=1) & (runs["status"] == "ok").to_numpy()
    if infinite.any():
        runs = runs.copy()
        runs.loc[infinite, "status"] = "diverged"
    return runs


def summarize(runs: pd.DataFrame, group_keys: list[str], metrics: Iterable[str] = METRICS) -> pd.DataFrame:
    """Per sweep point and variant: runs that finished (n), diverged and failed,
    and the mean, std and 95% CI of each final-epoch metric over the finished
    ones (a 95% BCa bootstrap interval, stats.py); diverged and failed runs are
    counted, not averaged."""
    from stateful_lab.results import stats  # imported here: reading result files (`show`) must start fast

    rows = []
    for keys, group in runs.groupby([*group_keys, "variant"], sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        ok = group[group["status"] == "ok"]
        row = dict(zip([*group_keys, "variant"], keys)) | {
            "n": len(ok),
            "n_diverged": int((group["status"] == "diverged").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
        }
        for metric in metrics:
            values = ok[metric].dropna().to_numpy(dtype=float) if metric in ok else np.array([])
            low, high = stats.mean_interval(values)
            row |= {
                f"{metric}_mean": values.mean() if len(values) else math.nan,
                f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                f"{metric}_ci_low": low,
                f"{metric}_ci_high": high,
            }
        row["epoch_seconds_median"] = float(ok["epoch_seconds"].median()) if len(ok) else math.nan
        row |= {name: group[name].iloc[0] for name in BASELINES if name in group}
        rows.append(row)
    return pd.DataFrame(rows)


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics a summary holds, in its column order."""
    return [column.removesuffix("_mean") for column in summary.columns if column.endswith("_mean")]


def summary_markdown(summary: pd.DataFrame, title: str, group_keys: list[str] = ()) -> str:
    """A Markdown table: mean ± std and [95% CI] of each metric per sweep point and
    variant, and any baseline beside them."""
    metrics = summary_metrics(summary)
    baselines = [name for name in BASELINES if name in summary]
    header = [*group_keys, "variant", "n"] + [f"{metric} mean ± std [95% CI]" for metric in metrics] + baselines
    lines = [
        f"# {title}",
        "",
        "Final epoch, over seeds: mean ± std [95% BCa bootstrap interval of the mean] "
        "(runs that diverged or failed are counted, not averaged).",
        "",
        markdown_row(*header),
        "|" + "---|" * len(header),
    ]
    for row in summary.to_dict("records"):
        cells = [str(row[key]) for key in group_keys] + [row["variant"], _count(row)]
        for metric in metrics:
            mean = row[f"{metric}_mean"]
            if math.isnan(mean):
                cells.append("n/a")
                continue
            cells.append(
                f"{mean:.3f} ± {number(row[f'{metric}_std'])} "
                f"[{number(row[f'{metric}_ci_low'])}, {number(row[f'{metric}_ci_high'])}]"
            )
        cells += [number(row[name]) for name in baselines]
        lines.append(markdown_row(*cells))
    if baselines:
        lines.append("")
        lines += [f"{name}: {BASELINE_MEANINGS[name]}." for name in baselines]
        lines.append("Each baseline is the same for every seed.")
    return "\n".join(lines) + "\n"


def _count(row: dict) -> str:
    extra = [f"{row[f'n_{status}']} {status}" for status in ("diverged", "failed") if row[f"n_{status}"]]
    return str(row["n"]) + (f" ({', '.join(extra)})" if extra else "")


def write_results(
    out_dir: Path,
    epochs: pd.DataFrame,
    runs: pd.DataFrame,
    config_yaml: str,
    meta: dict,
    title: str,
    group_keys: list[str],
    metrics: tuple[str, ...] = METRICS,
    forecasts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write epochs.csv, runs.csv, summary.csv, summary.md, config.yaml, meta.json,
    and forecasts.csv for a forecasting task (a large table as NAME.csv.xz:
    `write_table`)."""
    summary = summarize(runs, group_keys, metrics)
    extra = [metric for metric in metrics if metric not in METRICS]
    columns = ["config", *group_keys, *EPOCH_COLUMNS[1:-2], *extra, *EPOCH_COLUMNS[-2:]]
    write_table(out_dir, "epochs.csv", epochs.reindex(columns=columns))
    write_table(out_dir, "runs.csv", runs)
    write_table(out_dir, "summary.csv", summary)
    write_atomic(out_dir / "summary.md", summary_markdown(summary, title, group_keys))
    write_atomic(out_dir / "config.yaml", config_yaml)
    write_atomic(out_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
    if forecasts is not None and len(forecasts):
        write_table(out_dir, "forecasts.csv", forecasts)
    return summary


def tables(
    config: str, results: Iterable[RunResult], metrics: tuple[str, ...] = METRICS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """epochs.csv rows (one per run and epoch) and runs.csv rows (one per run,
    with its final-epoch figures, median epoch time and peak memory)."""
    epoch_rows, run_rows = [], []
    for result in results:
        base = {"config": config, **result.point, "variant": result.variant, "seed": result.seed}
        # vars, not dataclasses.asdict, which deep-copies every epoch
        epochs = [{key: value for key, value in vars(epoch).items() if key != "forecasts"} for epoch in result.epochs]
        for epoch in epochs:
            epoch_rows.append(base | epoch | {"status": result.status})
        if result.status == "failed":
            epoch_rows.append(base | {"status": "failed"})
        final = epochs[-1] if epochs else {}
        later = [epoch["seconds"] for epoch in epochs[1:]] or [final.get("seconds", math.nan)]
        run_rows.append(
            base
            | {
                "status": result.status,
                "epochs": len(epochs),
                **{name: final.get(name, math.nan) for name in dict.fromkeys((*FINAL_METRICS, *metrics))},
                **result.baselines,
                # epoch 0 includes tracing and compilation: the cost per epoch is the later ones
                "epoch_seconds": float(pd.Series(later).median()),
                "peak_memory_mb": result.peak_memory_mb,
                "error": result.error,
                "key": result.key,
            }
        )
    return pd.DataFrame(epoch_rows), pd.DataFrame(run_rows)


def epoch_tables(results: list[RunResult]) -> list[str]:
    """For the console: per sweep point and seed, the variants side by side in the
    blog's format."""
    groups: dict[tuple, dict[str, list]] = {}
    for result in results:
        point = tuple(result.point.items())
        groups.setdefault((point, result.seed), {})[result.variant] = [vars(epoch) for epoch in result.epochs]
    lines = []
    for (point, seed), per_variant in groups.items():
        lines.append(f"seed {seed}" + "".join(f" {key}={value}" for key, value in point))
        for epoch in range(max(len(epochs) for epochs in per_variant.values())):
            cells = [
                f"{variant}: Train: ({number(e['train_loss'], '.2f', '-')}, {number(e['train_accuracy'], '.2f', '-')}) "
                f"Test: ({number(e['test_loss'], '.2f', '-')}, {number(e['test_accuracy'], '.2f', '-')})"
                for variant, epochs in per_variant.items()
                if epoch < len(epochs)
                for e in [epochs[epoch]]
            ]
            lines.append(f"  Epoch: {epoch} (Loss, Acc) " + " | ".join(cells))
    return lines


def forecast_table(config: str, results: Iterable[tuple[RunResult, object]]) -> pd.DataFrame:
    """forecasts.csv rows: each run's final walk-forward forecasts beside the
    actual values and the persistence forecast, one row per test step. `results`
    pairs each run with its sweep point's ForecastSet."""
    rows = []
    for result, forecast in results:
        base = {"config": config, **result.point, "variant": result.variant, "seed": result.seed}
        for step, value in enumerate(result.forecasts):
            rows.append(
                base
                | {
                    "step": step,
                    "actual": forecast.actual[step],
                    "forecast": value,
                    "persistence": forecast.previous[step],
                }
            )
    return pd.DataFrame(rows)
