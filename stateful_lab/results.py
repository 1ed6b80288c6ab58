"""Result files of one run (DESIGN section 6), each written atomically: a reader
sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

EPOCH_COLUMNS = [
    "config", "variant", "seed", "epoch", "train_loss", "train_accuracy",
    "test_loss", "test_accuracy", "seconds", "status",
]
METRICS = ("test_accuracy", "test_loss")
# The range each metric can take; an interval is clipped to it (a t-interval on
# accuracies near 1.00 would otherwise promise accuracies above 1).
METRIC_RANGES = {
    "test_accuracy": (0.0, 1.0), "train_accuracy": (0.0, 1.0), "test_loss": (0.0, math.inf),
    "train_loss": (0.0, math.inf), "epoch_seconds": (0.0, math.inf), "peak_memory_mb": (0.0, math.inf),
}


# mkstemp makes private (0600) files; results get the permissions of a plain write.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def confidence_interval(
    values: np.ndarray, level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float]:
    """Student-t interval for the mean, clipped to `bounds`; NaN with fewer than
    two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    mean, sem = values.mean(), stats.sem(values)
    if sem == 0:
        return float(mean), float(mean)
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return float(max(low, bounds[0])), float(min(high, bounds[1]))


def summarize(runs: pd.DataFrame, group_keys: list[str]) -> pd.DataFrame:
    """Per sweep point and variant: runs that finished (n), diverged and failed,
    and the mean, std and 95% CI of each final-epoch metric over the finished
    ones; diverged and failed runs are counted, not averaged."""
    rows = []
    for keys, group in runs.groupby([*group_keys, "variant"], sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        ok = group[group["status"] == "ok"]
        row = dict(zip([*group_keys, "variant"], keys)) | {
            "n": len(ok),
            "n_diverged": int((group["status"] == "diverged").sum()),
            "n_failed": int((group["status"] == "failed").sum()),
        }
        for metric in METRICS:
            values = ok[metric].dropna().to_numpy()
            low, high = confidence_interval(values, bounds=METRIC_RANGES[metric])
            row |= {
                f"{metric}_mean": values.mean() if len(values) else math.nan,
                f"{metric}_std": values.std(ddof=1) if len(values) > 1 else math.nan,
                f"{metric}_ci_low": low,
                f"{metric}_ci_high": high,
            }
        row["epoch_seconds_median"] = float(ok["epoch_seconds"].median()) if len(ok) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, title: str, group_keys: list[str] = ()) -> str:
    """A Markdown table: mean ± std and [95% CI] of each metric per sweep point and variant."""
    header = [*group_keys, "variant", "n"] + [f"{metric} mean ± std [95% CI]" for metric in METRICS]
    lines = [f"# {title}", "", "Final epoch, over seeds (runs that diverged or failed are "
             "counted, not averaged).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary.to_dict("records"):
        cells = [str(row[key]) for key in group_keys] + [row["variant"], _count(row)]
        for metric in METRICS:
            mean = row[f"{metric}_mean"]
            if math.isnan(mean):
                cells.append("n/a")
                continue
            cells.append(
                f"{mean:.3f} ± {_number(row[f'{metric}_std'])} "
                f"[{_number(row[f'{metric}_ci_low'])}, {_number(row[f'{metric}_ci_high'])}]"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _count(row: dict) -> str:
    extra = [f"{row[f'n_{status}']} {status}" for status in ("diverged", "failed") if row[f"n_{status}"]]
    return str(row["n"]) + (f" ({', '.join(extra)})" if extra else "")


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def write_results(out_dir: Path, epochs: pd.DataFrame, runs: pd.DataFrame, config_yaml: str,
                  meta: dict, title: str, group_keys: list[str]) -> pd.DataFrame:
    """Write epochs.csv, runs.csv, summary.csv, summary.md, config.yaml and meta.json."""
    summary = summarize(runs, group_keys)
    columns = ["config", *group_keys, *EPOCH_COLUMNS[1:]]
    write_atomic(out_dir / "epochs.csv", epochs.reindex(columns=columns).to_csv(index=False, float_format="%.6g"))
    write_atomic(out_dir / "runs.csv", runs.to_csv(index=False, float_format="%.6g"))
    write_atomic(out_dir / "summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    write_atomic(out_dir / "summary.md", summary_markdown(summary, title, group_keys))
    write_atomic(out_dir / "config.yaml", config_yaml)
    write_atomic(out_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
    return summary
