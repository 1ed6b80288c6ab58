"""From the claims' verdicts to one recommendation (docs/design.md, "ask"), with
the figures behind it. TensorFlow-free.

The models are stateless and stateful LSTMs at a window of one row and at the
longer window (`design.MODELS`). With "beats" meaning a claim `supported`
(better by more than the declared size, Holm-adjusted over all the claims) and
"does not beat" meaning `not supported` (its interval rules that out):

- baseline: no model beats the best baseline, and the interval of each rules out
  that it does;
- stateful: a stateful model beats the baseline and both stateless models (at
  one row and at the longer window): the state carries what no window tried
  holds;
- stateless_longer_window: the stateless model at the longer window beats the
  baseline and the one at one row, and no stateful model beats it (seeing
  further back explains the gain; a stateless model is the simpler to deploy);
- stateless: the stateless model at one row beats the baseline, neither stateful
  model beats it, and the longer window does not beat it either;
- inconclusive: anything else; the comparisons left open are named, with the
  seeds that would settle each if its difference held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from stateful_lab.answer.design import MODELS, STATEFUL, Design
from stateful_lab.results import stats
from stateful_lab.results.claims import Verdict, per_seed

RECOMMENDATIONS = ("stateful", "stateless", "stateless_longer_window", "baseline", "inconclusive")
MAX_SEEDS = 1000
"""Beyond this many seeds, `ask` says more seeds will not settle a comparison soon."""


@dataclass(frozen=True)
class Decision:
    recommendation: str
    reason: str
    settle: tuple[str, ...] = ()
    """For inconclusive: what would settle each open comparison."""


def comparisons(made: Design, verdicts: list[Verdict], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the two sides' means, their difference (first minus
    second) with its 95% interval, the test, p and Holm p, the verdict, and the
    seeds that would settle it if still open."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for verdict in verdicts:
        expect = verdict.claim.expect
        first = per_seed(ok, expect.select, expect.metric)
        versus = dict(expect.versus or {})
        baseline = versus.pop("baseline", None)
        second = (
            per_seed(ok, {**expect.select, **versus}, baseline) if baseline else per_seed(ok, versus, expect.metric)
        )
        row = {"claim": verdict.claim.id, "verdict": verdict.word, "p": verdict.p_value, "p_holm": verdict.p_adjusted}
        if min(len(first), len(second)) >= 2:
            comparison = stats.compare(first, second)[0]
            row |= {
                "first": comparison.mean_first,
                "second": comparison.mean_second,
                "difference": comparison.difference,
                "ci_low": comparison.low,
                "ci_high": comparison.high,
                "seeds": comparison.n_first,
                "test": comparison.test,
            }
            row["seeds_to_settle"] = _seeds_to_settle(row, made) if verdict.outcome == "inconclusive" else math.nan
        rows.append(row)
    columns = ["claim", "first", "second", "difference", "ci_low", "ci_high", "seeds", "test", "p", "p_holm"]
    return pd.DataFrame(rows).reindex(columns=[*columns, "verdict", "seeds_to_settle"])


def _seeds_to_settle(row: dict, made: Design) -> float:
    """The seeds at which the interval, narrowing as one over the square root of
    the seeds, would clear the declared size on one side or the other, if the
    difference held at its estimate (infinite when it sits at the size)."""
    margin = made.min_difference if made.higher_is_better else -made.min_difference
    half = (row["ci_high"] - row["ci_low"]) / 2
    needed = abs(row["difference"] - margin)
    if needed <= 1e-12:
        return math.inf
    return float(math.ceil(row["seeds"] * (half / needed) ** 2))


def decide(made: Design, verdicts: list[Verdict], table: pd.DataFrame) -> Decision:
    """The recommendation the verdicts support (the rules in this module's docstring)."""
    outcome = {verdict.claim.id: verdict.outcome for verdict in verdicts}
    if any(value == "no data" for value in outcome.values()):
        return Decision("inconclusive", "some models have no finished runs to judge (see runs.csv for the errors)")
    yes = {claim for claim, value in outcome.items() if value == "yes"}
    no = {claim for claim, value in outcome.items() if value == "no"}
    winners = [model for model in MODELS if f"{model}_beats_baseline" in yes]
    figures = table.set_index("claim")
    baseline = f"{made.baseline} at window {made.baseline_window}"
    size = f"{made.min_difference:g}"
    if not winners and all(f"{model}_beats_baseline" in no for model in MODELS):
        best = figures.loc["stateless_beats_baseline", "second"]
        return Decision(
            "baseline",
            f"no model beats the best baseline, {baseline} ({best:.4g}), by more than {size}: each one's interval "
            "rules that out. Use the baseline; no LSTM, stateful or not, pays for itself here.",
        )
    stateful = [
        model
        for model in STATEFUL
        if model in winners and {f"{model}_beats_stateless", f"{model}_beats_longer_window"} <= yes
    ]
    if stateful:
        model = max(stateful, key=lambda name: _sign(made) * figures.loc[f"{name}_beats_baseline", "difference"])
        window = made.window if model == "stateful" else made.longer
        return Decision(
            "stateful",
            f"the stateful model reading {_rows(window)} at a time beats the stateless one at {_rows(made.window)} by "
            f"{_gain(made, figures, f'{model}_beats_stateless')}, the stateless one at {_rows(made.longer)} by "
            f"{_gain(made, figures, f'{model}_beats_longer_window')}, and the best baseline ({baseline}) by "
            f"{_gain(made, figures, f'{model}_beats_baseline')}: the state carries what no window tried here holds.",
        )
    beaten = [f"{model}_beats_longer_window" for model in STATEFUL]
    if "longer_window" in winners and "longer_window_beats_stateless" in yes and not yes & set(beaten):
        shown = "does not beat it" if set(beaten) <= no else "was not shown to beat it"
        return Decision(
            "stateless_longer_window",
            f"a stateless model reading {_rows(made.longer)} beats the one reading {_rows(made.window)} by "
            f"{_gain(made, figures, 'longer_window_beats_stateless')} and the best baseline ({baseline}) by "
            f"{_gain(made, figures, 'longer_window_beats_baseline')}, and a stateful model {shown}: the gain comes "
            "from seeing further back, not from the state, and a stateless model is the simpler one to deploy.",
        )
    if (
        "stateless" in winners
        and {f"{model}_beats_stateless" for model in STATEFUL} <= no
        and "longer_window_beats_stateless" not in yes
    ):
        longer = (
            "nor does a longer window"
            if "longer_window_beats_stateless" in no
            else f"and a window of {_rows(made.longer)} was not shown to help"
        )
        return Decision(
            "stateless",
            f"the stateless model beats the best baseline ({baseline}) by "
            f"{_gain(made, figures, 'stateless_beats_baseline')}; "
            f"a stateful model brings nothing that matters (more than {size}) over it, {longer}.",
        )
    open_rows = figures[figures["verdict"] == "inconclusive"]
    settle = tuple(_settle_line(claim, row, made) for claim, row in open_rows.iterrows())
    decided = ", ".join(f"{claim}: {figures.loc[claim, 'verdict']}" for claim in figures.index)
    return Decision("inconclusive", f"the verdicts do not single out one choice ({decided}).", settle)


def _sign(made: Design) -> int:
    """+1 where a higher figure is better, -1 where a lower one is."""
    return 1 if made.higher_is_better else -1


def _rows(count: int) -> str:
    return f"{count} row" + ("s" if count != 1 else "")


def _gain(made: Design, figures: pd.DataFrame, claim: str) -> str:
    """A claim's difference as a gain (positive when the first side is better), with its interval."""
    row = figures.loc[claim]
    sign = _sign(made)
    low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    return f"{sign * row['difference']:.3g} [{low:.3g}, {high:.3g}]"


def _settle_line(claim: str, row: pd.Series, made: Design) -> str:
    seeds = row["seeds_to_settle"]
    interval = f"difference {row['difference']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
    if not math.isfinite(seeds) or seeds > MAX_SEEDS:
        return (
            f"{claim}: {interval} sits at the size that matters ({made.min_difference:g}); more seeds will not "
            "settle it soon: a longer table (more test forecasts) would"
        )
    return (
        f"{claim}: {interval}; about {int(seeds)} seeds (now {int(row['seeds'])}) would settle it if the "
        "difference held (--seeds)"
    )
