"""`stateful-lab compare`: two groups of runs in a result folder, compared with
the code the report's verdicts use (stats.compare, claims.evaluate_claim).

Reads only the files a `run` wrote (never TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from stateful_lab.config.claims import Claim
from stateful_lab.results import stats
from stateful_lab.results.claims import evaluate_claim, per_seed
from stateful_lab.results.formatting import csv_text, json_ready, markdown_table, number
from stateful_lab.results.show import condition
from stateful_lab.results.tables import RESULT_FILES, ResultsError, is_result_folder, load_folder


def compare_groups(
    folder: Path,
    first: tuple[str, ...],
    second: tuple[str, ...],
    at: tuple[str, ...] = (),
    metric: str | None = None,
    expect: str | None = None,
    min_difference: float = 0.0,
) -> dict[str, Any]:
    """The comparison of group A (`first`, KEY=VALUE items) with group B
    (`second`), both at the sweep point `at`, on `metric` (default: the config's
    own). With `expect`, also the verdict of "A <expect> B" at `min_difference`.
    Raises ResultsError naming what is wrong."""
    if not is_result_folder(folder):
        raise ResultsError(
            f"{folder}: not a result folder (it needs {', '.join(RESULT_FILES)}); "
            "give the folder of one config's results, such as results/first_timestep"
        )
    config = load_folder(folder)
    experiment = config.experiment
    metric = metric or config.metric
    if metric not in config.runs.columns:
        raise ResultsError(f"--metric {metric}: not in {folder}/runs.csv; use one of its metrics")
    shared = dict(condition(experiment, item, "--at") for item in at)
    selections = [
        shared | dict(condition(experiment, item, option) for item in items)
        for option, items in (("--a", first), ("--b", second))
    ]
    for option, items, select in zip(("--a", "--b"), (first, second), selections):
        if not items:
            raise ResultsError(f"{option}: give the group as KEY=VALUE, e.g. {option} variant=stateless")
        unknown = [key for key in select if key not in config.runs.columns]
        if unknown:
            keys = ", ".join(["variant", *experiment.sweep])
            raise ResultsError(f"{option}: {', '.join(unknown)} is not a column of {folder}/runs.csv; use {keys}")
    ok = config.runs[config.runs["status"] == "ok"]
    groups = [per_seed(ok, select, metric) for select in selections]
    for option, items, group in zip(("--a", "--b"), (first, second), groups):
        if len(group) < 2:
            values = "; ".join(
                f"{key} has {', '.join(map(str, ok[key].drop_duplicates()))}" for key in selections[0] | selections[1]
            )
            raise ResultsError(
                f"{option} {' '.join(items + at)}: {len(group)} finished runs with {metric}, a comparison needs 2 "
                f"({values})"
            )
    comparison, _, _ = stats.compare(*groups)
    row = {
        "config": experiment.name,
        "metric": metric,
        "a": _describe(selections[0]),
        "b": _describe(selections[1]),
        "paired": comparison.paired,
        "test": comparison.test,
        "n_a": comparison.n_first,
        "n_b": comparison.n_second,
        "mean_a": comparison.mean_first,
        "mean_b": comparison.mean_second,
        "difference": comparison.difference,
        "ci_low": comparison.low,
        "ci_high": comparison.high,
        "p_value": comparison.p_value,
        "effect_size": comparison.effect_size,
        "effect_size_kind": "Cohen's d_z" if comparison.paired else "Cohen's d",
        "unmatched": comparison.unmatched,
    }
    if expect:
        claim = Claim(
            id="compare",
            kind="claim",
            source="stateful-lab compare",
            statement=f"A {expect} B",
            expect={
                "metric": metric,
                "test": expect,
                "select": selections[0],
                "versus": selections[1],
                "min_difference": min_difference,
            },
        )
        verdict = evaluate_claim(claim, config.runs, config.epochs)
        row |= {
            "expect": expect,
            "min_difference": min_difference,
            "verdict": verdict.word,
            "rule": verdict.rule,
            "verdict_p_value": verdict.p_value,
        }
    return row


def _describe(select: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in select.items())


def render(row: dict[str, Any], output: str) -> str:
    """The comparison as aligned lines, Markdown, CSV or JSON."""
    if output == "json":
        return json.dumps(json_ready(row), indent=2) + "\n"
    if output == "csv":
        return csv_text(pd.DataFrame([row]))
    text = {key: _text(value) for key, value in row.items()}
    if output == "md":
        return "\n".join(markdown_table(["field", "value"], [[key, value] for key, value in text.items()])) + "\n"
    width = max(map(len, text))
    return "".join(f"{key:<{width}}  {value}\n" for key, value in text.items())


def _text(value: Any) -> str:
    if isinstance(value, float):
        return number(value, ".4g")
    return str(value)
