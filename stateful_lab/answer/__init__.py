"""`stateful-lab ask` and `stateful_lab.ask`: should a model of this table be
stateful? Design an experiment from the data (`design`), run it as one grouped
sweep over seeds (`api.execute`), judge its claims with the lab's statistics,
decide (`decide`), and measure what one prediction costs each model (`serving`).

    import stateful_lab
    answer = stateful_lab.ask("sales.csv", target="units", entity="store")
    answer.recommendation      # stateful, stateless, stateless_longer_window, baseline or inconclusive
    answer.models, answer.comparisons, answer.serving   # pandas DataFrames
    answer.config              # the config it ran: stateful-lab run <it> re-creates the answer

Everything is written under `out` (default results/ask_<file>_<target>/):
config.yaml (the config, each choice with its reason), results/ (the run's
files), answer.json and answer.md.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from stateful_lab.answer.decide import RECOMMENDATIONS, Decision, comparisons, decide
from stateful_lab.answer.design import MODELS, Design, Question, QuestionError, design
from stateful_lab.atomic import write_atomic
from stateful_lab.config.experiment import load_experiment
from stateful_lab.results.formatting import interval, json_ready, markdown_table, number

MODEL_MEANINGS = {
    "stateless": "stateless LSTM, one row per window",
    "stateful": "stateful LSTM, one row per window, state carried",
    "longer_window": "stateless LSTM, the longer window",
    "stateful_longer_window": "stateful LSTM, the longer window, state carried",
}


@dataclass(frozen=True)
class Answer:
    """What `ask` found: the recommendation, why, and every figure it used."""

    recommendation: str
    """One of stateful, stateless, stateless_longer_window, baseline, inconclusive."""
    reason: str
    settle: tuple[str, ...]
    """When inconclusive: what would settle each open comparison."""
    metric: str
    min_difference: float
    why_min_difference: str
    models: pd.DataFrame
    """Each model's metric over seeds: mean and 95% interval."""
    baselines: pd.DataFrame
    comparisons: pd.DataFrame
    """Each claim: difference with its interval, test, p, Holm p, verdict."""
    serving: pd.DataFrame
    """One prediction's cost, batch of one, on this machine (empty if not measured)."""
    choices: dict[str, str]
    """Each choice `ask` made (a config key) and why."""
    config: Path
    folder: Path
    results: Any
    """The run's results (`stateful_lab.Results`)."""

    def as_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready data: `ask --format json` prints it."""
        return {
            "recommendation": self.recommendation,
            "reason": self.reason,
            "settle": list(self.settle),
            "metric": self.metric,
            "higher_is_better": self.metric == "forecast_accuracy",
            "min_difference": self.min_difference,
            "why_min_difference": self.why_min_difference,
            "models": _records(self.models),
            "baselines": _records(self.baselines),
            "comparisons": _records(self.comparisons),
            "serving": _records(self.serving),
            "choices": self.choices,
            "config": str(self.config),
            "results": str(self.folder / "results"),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def headline(self) -> str:
        return f"Answer: {self.recommendation.replace('_', ' ')}: {self.reason}"

    def text(self) -> str:
        """The answer first, then the tables behind it (the terminal's form)."""
        parts = [self.headline(), *(f"  to settle {line}" for line in self.settle), ""]
        parts.append(
            f"Judged on {self.metric} ({self._direction()}); smallest difference that matters: "
            f"{self.min_difference:g} ({self.why_min_difference})."
        )
        for title, frame in self._tables():
            parts += ["", f"{title}:", frame.to_string(index=False)]
        parts += ["", *self._files()]
        return "\n".join(parts) + "\n"

    def markdown(self) -> str:
        parts = [f"# {self.headline()}", ""]
        parts += [f"- to settle {line}" for line in self.settle]
        parts.append(
            f"Judged on {self.metric} ({self._direction()}); smallest difference that matters: "
            f"{self.min_difference:g} ({self.why_min_difference})."
        )
        for title, frame in self._tables():
            parts += ["", f"## {title}", "", *markdown_table(list(frame.columns), frame.astype(str).values.tolist())]
        parts += ["", *self._files()]
        return "\n".join(parts) + "\n"

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self.headline())}</h4>"]
        parts += [f"<p>to settle {html.escape(line)}</p>" for line in self.settle]
        for title, frame in self._tables():
            parts += [f"<h5>{html.escape(title)}</h5>", frame.to_html(index=False)]
        parts.append(f"<p>config: <code>{html.escape(str(self.config))}</code></p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"<Answer {self.recommendation}: {self.config}>"

    def _direction(self) -> str:
        return "higher is better" if self.metric == "forecast_accuracy" else "lower is better"

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        metric = self.metric
        models = pd.DataFrame(
            {
                "model": self.models["model"],
                "window": self.models["window"],
                "runs": self.models["runs"],
                f"{metric} [95% CI]": [
                    interval(row["mean"], row["ci_low"], row["ci_high"]) for row in self.models.to_dict("records")
                ],
                "what": [MODEL_MEANINGS[name] for name in self.models["model"]],
            }
        )
        baselines = self.baselines.assign(value=[number(value, ".4g") for value in self.baselines["value"]])
        claims = pd.DataFrame(
            {
                "claim": self.comparisons["claim"],
                "difference [95% CI]": [
                    f"{number(row['difference'], '+.3g')} "
                    f"[{number(row['ci_low'], '+.3g')}, {number(row['ci_high'], '+.3g')}]"
                    for row in self.comparisons.to_dict("records")
                ],
                "test": self.comparisons["test"],
                "p": [number(value, ".2g") for value in self.comparisons["p"]],
                "Holm p": [number(value, ".2g") for value in self.comparisons["p_holm"]],
                "verdict": self.comparisons["verdict"],
            }
        )
        tables = [("Models", models), ("Baselines (the same for every seed)", baselines), ("Comparisons", claims)]
        if len(self.serving):
            serving = self.serving.assign(microseconds=[f"{value:.0f}" for value in self.serving["microseconds"]])
            tables.append(("Serving: one prediction, batch of one, on this machine", serving))
        return tables

    def _files(self) -> list[str]:
        return [
            f"Config: {self.config} (each choice with its reason; edit and re-run with "
            f"`stateful-lab run {self.config} --out {self.folder / 'results'}`)",
            f"Results: {self.folder / 'results'}/; this answer: {self.folder}/answer.json, answer.md",
        ]


def ask(
    data: str | Path | pd.DataFrame,
    *,
    target: str,
    inputs: list[str] | None = None,
    entity: str | None = None,
    order: str | None = None,
    horizon: int = 1,
    kind: str | None = None,
    seeds: int = 10,
    out: str | Path | None = None,
    jobs: int = 1,
    force: bool = False,
    serving: bool = True,
    progress: bool = False,
    reporter: Any = None,
) -> Answer:
    """Should a model of `target` be stateful? `data` is a CSV file's path or a
    pandas DataFrame (written to `out`/data.csv). Raises QuestionError (a
    LabError, one line) when the options contradict the data or the data cannot
    answer, before anything is written."""
    from stateful_lab.api import _Printing, execute
    from stateful_lab.execution.session import Reporter

    frame = data if isinstance(data, pd.DataFrame) else None
    with tempfile.TemporaryDirectory() as scratch:
        csv = Path(scratch) / "data.csv" if frame is not None else Path(data).expanduser().absolute()
        if frame is not None:
            frame.to_csv(csv, index=False)
        elif not csv.is_file():
            raise QuestionError(f"{csv}: no such file; give the path of a CSV table")
        question = Question(csv, target, list(inputs) if inputs else None, entity, order, horizon, kind, seeds)
        made = design(question)  # every check, before anything is written
        folder = Path(out) if out is not None else Path("results") / made.config["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if frame is not None:  # the config reads the copy kept beside it, not the scratch file
            question = replace(question, csv=(folder / "data.csv").absolute())
            shutil.copyfile(csv, question.csv)
            made.config["data"]["csv"] = str(question.csv)
    config = folder / "config.yaml"
    write_atomic(config, made.yaml_text(_header(question, config, folder)))
    experiment = load_experiment(config)
    if reporter is None:
        reporter = _Printing() if progress else Reporter()
    results = execute(experiment, folder / "results", jobs=jobs, force=force, reporter=reporter, quiet=not progress)
    verdicts = results.verdicts
    table = comparisons(made, verdicts, results.runs)
    decision = decide(made, verdicts, table)
    costs = (
        _serving(made, experiment)
        if serving
        else pd.DataFrame(columns=["model", "variant", "window", "steps", "microseconds"])
    )
    answer = _answer(made, decision, results, table, costs, config, folder)
    write_atomic(folder / "answer.json", answer.to_json())
    write_atomic(folder / "answer.md", answer.markdown())
    return answer


def _header(question: Question, config: Path, folder: Path) -> str:
    return (
        f"Made by `stateful-lab ask` on {date.today().isoformat()}: should a model of {question.target!r} in "
        f"{question.csv.name} be stateful?\n"
        f"Re-create the answer: stateful-lab run {config} --out {folder / 'results'}\n"
        "Every choice below is the lab's, with its reason beside it; edit any of them and run again.\n"
        'The answer follows from the claims\' verdicts (README, "Should my model be stateful?").'
    )


def _serving(made: Design, experiment) -> pd.DataFrame:
    from stateful_lab.answer.serving import serving_costs

    points = {point["data.timesteps"]: resolved for point, resolved in experiment.points}
    models = {
        name: (variant, made.window if which == "window" else made.longer) for name, (variant, which) in MODELS.items()
    }
    costs = serving_costs(points, models)
    return pd.DataFrame([vars(cost) for cost in costs])


def _answer(made: Design, decision: Decision, results, table, costs, config: Path, folder: Path) -> Answer:
    metric = made.metric
    summary = results.summary
    names = {
        ("stateless", made.window): "stateless",
        ("stateful", made.window): "stateful",
        ("stateless", made.longer): "longer_window",
        ("stateful", made.longer): "stateful_longer_window",
    }
    rows = []
    for row in summary.to_dict("records"):
        name = names.get((row["variant"], row["data.timesteps"]))
        if name is not None:
            rows.append(
                {
                    "model": name,
                    "variant": row["variant"],
                    "window": row["data.timesteps"],
                    "runs": row["n"],
                    "mean": row[f"{metric}_mean"],
                    "ci_low": row[f"{metric}_ci_low"],
                    "ci_high": row[f"{metric}_ci_high"],
                }
            )
    models = pd.DataFrame(rows).set_index("model").loc[list(names.values())].reset_index()
    baselines = pd.DataFrame(
        [
            {
                "baseline": name,
                "window": window,
                "value": value,
                "best": name == made.baseline and window == made.baseline_window,
            }
            for window, figures in made.baselines.items()
            for name, value in figures.items()
        ]
    )
    why = made.reasons["claims"].split(": ", 1)[1]
    return Answer(
        decision.recommendation,
        decision.reason,
        decision.settle,
        metric,
        made.min_difference,
        why,
        models,
        baselines,
        table,
        costs,
        dict(made.reasons),
        config.absolute(),
        folder.absolute(),
        results,
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [json_ready({key: _plain(value) for key, value in row.items()}) for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = ["RECOMMENDATIONS", "Answer", "QuestionError", "ask"]
