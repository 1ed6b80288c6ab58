"""The Python API: the library the command line calls, for notebooks and scripts.

    import stateful_lab
    results = stateful_lab.run("configs/first_timestep.yaml", seeds=3, **{"train.epochs": 2})
    results.summary            # a pandas DataFrame, as summary.csv
    results.verdicts           # each claim's verdict
    again = stateful_lab.load(results.folder)
    stateful_lab.compare(results.folder, ["variant=stateful"], ["variant=stateless"])

Errors raise the lab's own exceptions (`stateful_lab.LabError` and its kinds), with
the one-line messages the command line prints. Nothing here prints: a run reports
progress only when asked (`progress=True`).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stateful_lab.config.experiment import Experiment, load_experiment, parse_experiment
from stateful_lab.errors import LabError, RunFailed
from stateful_lab.results.claims import Verdict, evaluate_claims
from stateful_lab.results.tables import ConfigResults, load_folder


@dataclass(frozen=True)
class Results(ConfigResults):
    """What a config's run wrote, read back: the tables as pandas DataFrames
    (`epochs`, `runs`, `summary` and, for forecasting tasks, `forecasts`: the CSV
    files' tables), the config that ran (`experiment`, every default filled in), its
    `folder` (`stateful_lab.load(folder)` reads it again), and its claims'
    `verdicts` (Holm-adjusted over this config's claims, in the config's order)."""

    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.experiment.name

    def table(self) -> pd.DataFrame:
        """The summary's headline: per sweep point and variant, the runs and the
        mean of the config's own metric with its 95% interval."""
        keys = [*self.experiment.sweep, "variant"]
        metric = self.metric
        columns = [*keys, "n", f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high"]
        return self.summary[[column for column in columns if column in self.summary]]

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{verdict.claim.id}: {verdict.word}" for verdict in self.verdicts) or "no claims"
        return f"<Results {self.name}: {len(self.runs)} runs in {self.folder}; {verdicts}>"

    def _repr_html_(self) -> str:
        """How a notebook shows it: the headline table, then the verdicts."""
        parts = [f"<h4>{html.escape(self.name)}</h4>", self.table().to_html(index=False, float_format="%.4g")]
        if self.verdicts:
            rows = pd.DataFrame(
                [
                    {"claim": verdict.claim.id, "verdict": verdict.word, "numbers": verdict.numbers}
                    for verdict in self.verdicts
                ]
            )
            parts.append(rows.to_html(index=False))
        parts.append(f"<p>{len(self.runs)} runs; files in <code>{html.escape(str(self.folder))}</code></p>")
        return "\n".join(parts)


def run(
    config: str | Path | Mapping[str, Any],
    *,
    out: str | Path | None = None,
    seeds: int | list[int] | None = None,
    jobs: int = 1,
    force: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> Results:
    """Run a config and return its results, as `stateful-lab run` does.

    `config` is a YAML file's path or the config itself as a dict (a file's data
    paths are relative to its folder, a dict's to the working directory).
    `overrides` are dotted keys, as `--set` takes them: `run(path, **{"train.epochs":
    3})`. Results go to `out` (default `results/<config name>/`); finished runs
    stored there are skipped unless `force`. Raises ConfigError for a config that is
    not valid, RunFailed when something outside a run fails; a run that fails is a
    result (status "failed" in `runs`), as on the command line."""
    from stateful_lab.execution.session import Reporter

    experiment = _experiment(config, overrides, seeds)
    folder = Path(out) if out is not None else Path("results") / experiment.name
    reporter = _Printing() if progress else Reporter()
    return execute(experiment, folder, jobs=jobs, force=force, reporter=reporter, quiet=not progress)


def execute(experiment: Experiment, folder: Path, *, jobs: int, force: bool, reporter, quiet: bool) -> Results:
    """Run a validated experiment into `folder`, reporting to `reporter` (an
    `execution.session.Reporter`; `quiet`: only warnings among its lines), and
    read its results back: `run` and `ask`."""
    from stateful_lab.execution.resources import check_resources, check_size
    from stateful_lab.execution.session import run_configs

    check_size(experiment)
    for warning in check_resources(experiment):  # what will merely be slow
        warnings.warn(warning, stacklevel=3)
    try:
        run_configs([experiment], [folder], jobs=jobs, force=force, quiet=quiet, reporter=reporter)
    except KeyboardInterrupt:
        raise RunFailed(f"interrupted; run again to resume (finished runs are kept in {folder}/units/)") from None
    return load(folder)


def load(folder: str | Path) -> Results:
    """The results a run wrote in `folder` (one config's folder, such as
    results/first_timestep); ResultsError names what cannot be read."""
    config = load_folder(Path(folder))
    judged = [(claim, config.runs, config.epochs) for claim in config.experiment.claims] if not config.unjudged else []
    verdicts = evaluate_claims(judged) if judged else []
    return Results(**vars(config), verdicts=verdicts)


def compare(
    folder: str | Path,
    first: list[str] | tuple[str, ...],
    second: list[str] | tuple[str, ...],
    *,
    at: list[str] | tuple[str, ...] = (),
    metric: str | None = None,
    expect: str | None = None,
    min_difference: float = 0.0,
) -> dict[str, Any]:
    """Compare two groups of a result folder, as `stateful-lab compare`: each group
    KEY=VALUE items (`["variant=stateful"]`), at the sweep point `at`, on `metric`
    (default: the config's own); with `expect` (greater, less, similar,
    not_greater), also the verdict at `min_difference`. The row the command prints
    as JSON."""
    from stateful_lab.results.compare import compare_groups

    return compare_groups(Path(folder), tuple(first), tuple(second), tuple(at), metric, expect, min_difference)


def _experiment(config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any], seeds) -> Experiment:
    items = [f"{key}={_yaml(value)}" for key, value in overrides.items()]
    if seeds is not None:
        items.append(f"seeds={_yaml(seeds)}")
    if isinstance(config, Mapping):
        return parse_experiment(dict(config)).override(*items) if items else parse_experiment(dict(config))
    return load_experiment(config, items)


def _yaml(value: Any) -> str:
    """A Python value as the YAML text `--set` takes."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


class _Printing:
    """Progress on stdout, for `run(progress=True)`: the command line's lines."""

    def __init__(self):
        from stateful_lab.cli import ConsoleReporter

        self.console = ConsoleReporter(quiet=False)

    def __getattr__(self, name: str):
        return getattr(self.console, name)


__all__ = ["LabError", "Results", "compare", "load", "run"]
