"""From a question and what its table says (`choices`) to a config
(docs/design.md, "ask"): every choice `ask` makes for the user, each with the
reason it is written beside in the config; the claims the answer is decided by.
TensorFlow-free.

The experiment it designs: the table task; stateless and stateful LSTMs, each at
a window of one row (so that the stateful model's windows follow each other
exactly: its state reads every row once) and at a longer window, which spans
every lag at which an input is correlated with the target beyond noise (the
control: is it the state that helps, or seeing further back?); seeds paired;
claims that compare the models with each other and with the best
baseline, by a smallest difference that matters chosen here and stated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from stateful_lab.answer.choices import TEST_FRACTION, WINDOW, Question, QuestionError, choose

UPDATES = 16_000
"""About this many weight updates per run: epochs = UPDATES / batches per epoch."""
MIN_EPOCHS, MAX_EPOCHS = 5, 200
RELATIVE_DIFFERENCE = 0.05
"""Regression: the smallest difference that matters, as a share of the persistence RMSE."""
ACCURACY_DIFFERENCE = 0.02
"""Labels: the smallest difference in accuracy that matters (the lab's own, two points)."""
UNITS = 8

MODELS = {
    "stateless": ("stateless", "window"),
    "stateful": ("stateful", "window"),
    "longer_window": ("stateless", "longer"),
    "stateful_longer_window": ("stateful", "longer"),
}
"""The models the answer weighs: variant, and which window. A stateful model at
one row carries its state exactly from row to row but learns only from one
row's gradient; at the longer window its gradient spans the window (it can learn
what to keep), while its overlapping windows re-read rows. Both are tried."""
STATEFUL = ("stateful", "stateful_longer_window")
PAIRS = (
    ("stateful", "stateless"),
    ("stateful", "longer_window"),
    ("stateful_longer_window", "stateless"),
    ("stateful_longer_window", "longer_window"),
    ("longer_window", "stateless"),
)
"""The model comparisons, first better than second; then each model against the best baseline."""


@dataclass(frozen=True)
class Design:
    """The config `ask` runs, and the figures its answer is judged by."""

    config: dict[str, Any]
    reasons: dict[str, str]
    """Dotted config key -> why it has its value (the comments of config.yaml)."""
    window: int
    longer: int
    metric: str
    """test_rmse (lower is better) or forecast_accuracy (higher is better)."""
    min_difference: float
    baseline: str
    """The best baseline's column (ridge_rmse, majority_accuracy, ...)."""
    baseline_window: int
    """The window at which that baseline is best (the ridge's and logistic's depend on it)."""
    baselines: dict[int, dict[str, float]] = field(default_factory=dict)
    """Every baseline's figure at each window."""

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "forecast_accuracy"

    def select(self, model: str) -> dict[str, Any]:
        """The runs of one of MODELS, as a claim selects them."""
        variant, which = MODELS[model]
        return {"variant": variant, "data.timesteps": self.window if which == "window" else self.longer}

    def yaml_text(self, header: str) -> str:
        """config.yaml: the config with each choice's reason beside it."""
        return render(self.config, self.reasons, header)


def design(question: Question) -> Design:
    """The experiment that answers `question` on its table, or QuestionError
    (QuestionError, SeriesError, ConfigError: one line each) saying why the data
    cannot answer it."""
    chosen = choose(question)
    labels, baselines, longer, batches = chosen.labels, chosen.baselines, chosen.longer, chosen.batches
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, round(UPDATES / batches))))
    metric = "forecast_accuracy" if labels else "test_rmse"
    best = max if labels else min
    baseline_window, baseline = best(
        ((window, name) for window, figures in baselines.items() for name in figures),
        key=lambda item: baselines[item[0]][item[1]],
    )
    if labels:
        size, why_size = (
            ACCURACY_DIFFERENCE,
            "two points of accuracy: a smaller gap would not change which model anyone picks",
        )
    else:
        persistence = baselines[WINDOW]["persistence_rmse"]
        size = float(f"{RELATIVE_DIFFERENCE * persistence:.3g}")
        why_size = (
            f"{RELATIVE_DIFFERENCE:.0%} of the persistence forecast's RMSE ({persistence:.4g}), in the target's units"
        )
    data = {
        "task": "table",
        "csv": str(question.csv),
        "target": question.target,
        "inputs": chosen.inputs,
        **({"entity": question.entity} if question.entity else {}),
        **({"order": question.order} if question.order else {}),
        "horizon": question.horizon,
        "kind": chosen.kind,
        **({"classes": chosen.classes} if labels else {}),
        "difference": chosen.difference,
        "timesteps": WINDOW,
        "test_fraction": TEST_FRACTION,
    }
    config = {
        "name": _name(question),
        "description": f"Should a model of {question.target!r} in {question.csv.name} be stateful? (stateful-lab ask)",
        "data": data,
        "model": {"units": UNITS},
        "train": {"batch_size": chosen.batch, "epochs": epochs, "reset": "epoch"},
        "variants": ["stateless", "stateful"],
        "seeds": question.seeds,
        "sweep": {"data.timesteps": [WINDOW, longer]},
    }
    share = f"{TEST_FRACTION:.0%}"
    held_out = f"each entity's last {share} of rows" if question.entity else f"the last {share} of the rows"
    reasons = {
        "data.csv": "your table",
        "data.inputs": chosen.reasons["inputs"],
        "data.horizon": "rows ahead of the window's last row (--horizon)",
        "data.kind": "as given (--kind)" if question.kind else "inferred from the target column",
        "data.difference": chosen.reasons["difference"],
        "data.timesteps": "swept below",
        "data.test_fraction": f"{held_out}, forecast walk-forward: {chosen.test_windows} forecasts",
        "model.units": "a small LSTM: the question is the state, not the size",
        "train.batch_size": chosen.reasons["batch"],
        "train.epochs": f"about {UPDATES:,} weight updates a run ({batches:,} batches an epoch)",
        "train.reset": "the state is zeroed at each epoch's start (and at each entity's first row)",
        "seeds": "each model trained from this many seeds, compared seed by seed",
        "sweep.data.timesteps": (
            f"{WINDOW}: one row per window, so the stateful model's windows follow each other exactly; "
            f"{longer}: the longer window, {chosen.reasons['longer']}"
        ),
    }
    made = Design(config, reasons, WINDOW, longer, metric, size, baseline, baseline_window, baselines)
    reasons["claims"] = f"min_difference {size:g}: {why_size}"
    config["claims"] = _claims(made, question.target)
    return made


# --- the claims ---------------------------------------------------------------


def _claims(made: Design, target: str) -> list[dict[str, Any]]:
    """What the answer is decided by: each model against the others and the best
    baseline, in the direction that means better, by the declared size."""
    test = "greater" if made.higher_is_better else "less"
    better = "more accurately" if made.higher_is_better else "with a lower RMSE"
    size = made.min_difference
    names = {
        "stateless": f"a stateless LSTM reading {made.window} row",
        "stateful": f"a stateful LSTM reading {made.window} row at a time",
        "longer_window": f"a stateless LSTM reading {made.longer} rows",
        "stateful_longer_window": f"a stateful LSTM reading windows of {made.longer} rows",
    }
    claims = []
    for first, second in PAIRS:
        claims.append(
            _claim(
                f"{first}_beats_{second}",
                f"{_capital(names[first])} predicts {target} {better} than {names[second]} (by more than {size:g}).",
                {"metric": made.metric, "select": made.select(first), "versus": made.select(second)},
                test,
                size,
            )
        )
    baseline = made.baseline
    for model in MODELS:
        versus = {"baseline": baseline, "data.timesteps": made.baseline_window}
        claims.append(
            _claim(
                f"{model}_beats_baseline",
                f"{_capital(names[model])} predicts {target} {better} than the best baseline, "
                f"{baseline} at window {made.baseline_window} (by more than {size:g}).",
                {"metric": made.metric, "select": made.select(model), "versus": versus},
                test,
                size,
            )
        )
    return claims


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _claim(claim_id: str, statement: str, expect: dict, test: str, size: float) -> dict[str, Any]:
    return {
        "id": claim_id,
        "kind": "claim",
        "source": "stateful-lab ask",
        "statement": statement,
        "expect": {**expect, "test": test, "min_difference": size},
    }


def _name(question: Question) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", f"{question.csv.stem}_{question.target}").strip("_")
    return f"ask_{stem}"[:80]


# --- config.yaml --------------------------------------------------------------


def render(config: dict[str, Any], reasons: dict[str, str], header: str) -> str:
    """The config as YAML, each key on its own line with its reason as a comment."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in config.items():
        if key == "claims":
            lines.append("claims:")
            if reasons.get("claims"):
                lines.append(f"  # {reasons['claims']}")
            lines += [f"  - {_flow(claim)}" for claim in value]
        elif isinstance(value, dict) and key != "sweep":
            lines.append(f"{key}:")
            lines += [_line(f"  {inner}", item, reasons.get(f"{key}.{inner}")) for inner, item in value.items()]
        elif key == "sweep":
            lines.append("sweep:")
            lines += [_line(f"  {inner}", item, reasons.get(f"sweep.{inner}")) for inner, item in value.items()]
        else:
            lines.append(_line(key, value, reasons.get(key)))
    return "\n".join(lines) + "\n"


def _line(key: str, value: Any, reason: str | None) -> str:
    text = f"{key}: {_flow(value)}"
    return f"{text}  # {reason}" if reason else text


def _flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
        .strip()
        .removesuffix("...")
        .strip()
    )


__all__ = ["Design", "Question", "QuestionError", "design", "render"]
