"""The `claims:` section: what a source article says, and the machine-checkable
expectation that tests it. Verdicts are claims.py's job; this is the schema and
its load-time checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from stateful_lab.schema import StrictModel

HIGHER_IS_BETTER = frozenset({"test_accuracy", "train_accuracy", "forecast_accuracy"})
"""Metrics where a run reaches a threshold by being at or above it; the others
(losses, RMSE, time, memory) reach it by being at or below it."""


BASELINE_METRICS = {
    "persistence_rmse": "test_rmse",
    "seasonal_naive_rmse": "test_rmse",
    "ridge_rmse": "test_rmse",
    "previous_accuracy": "forecast_accuracy",
    "majority_accuracy": "forecast_accuracy",
    "seasonal_naive_accuracy": "forecast_accuracy",
    "logistic_accuracy": "forecast_accuracy",
}
"""The forecasting tasks' baselines (tasks.windows), each with the metric it is
in: a claim may compare a variant with one (`versus: {baseline: ridge_rmse}`)."""

PAIRWISE_TESTS = ("greater", "less", "similar", "not_greater")
"""The tests that judge one group against another by a declared smallest
difference (what `stateful-lab compare --expect` offers)."""


class Expectation(StrictModel):
    """A machine-checkable expectation about the final-epoch results; how each test
    is decided is in claims.py and the README ("How verdicts are decided")."""

    metric: Literal[
        "test_accuracy",
        "test_loss",
        "train_accuracy",
        "train_loss",
        "test_rmse",
        "forecast_accuracy",
        "epoch_seconds",
        "peak_memory_mb",
        "seconds_to_reach",
    ]
    """What is compared, per run (one value per seed). seconds_to_reach: the
    epochs until the first whose test accuracy reaches `reach`, times the run's
    time per epoch (epoch_seconds, without epoch 0's tracing); a run that never
    reaches it counts all its epochs (a floor on its time)."""
    select: dict[str, Any] = Field(default_factory=dict)
    """The runs compared: `variant` and/or swept keys with their values."""
    test: Literal[
        "at_least",
        "at_most",
        "between",
        "share_at_least",
        "share_at_most",
        "greater",
        "less",
        "similar",
        "not_greater",
        "gap_shrinks",
        "falls_then_rises",
    ]
    """at_least/at_most/between: the selected runs' mean against value/low/high.
    share_at_least/share_at_most: the share of seeds that reach `reach` against value.
    greater/less: selected vs `versus`, by at least min_difference in that direction.
    similar: selected and `versus` within ±min_difference (equivalence).
    not_greater: selected at most min_difference above `versus` (non-inferiority,
    "at least as good" for a metric where lower is better, such as an RMSE).
    gap_shrinks: the per-seed gap |selected - versus| is smaller, by at least
    min_difference, at the largest value of the swept key `over` than at its smallest.
    falls_then_rises: the selected runs' mean over the swept key `over` is lowest
    at an inner value, below both ends by at least min_difference."""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    versus: dict[str, Any] | None = None
    """The runs the selected ones are compared with (two-group tests); or a
    baseline, `{baseline: ridge_rmse}`: each selected run against that baseline's
    figure (the same for every seed), paired by seed."""
    min_difference: float | None = Field(None, ge=0)
    """The smallest difference that matters, in the metric's units, declared with
    the claim (with a comment saying why that size) before any run judges it."""
    reach: float | None = None
    """A per-seed threshold ("solved"): the share of seeds reaching it is shown
    beside the mean, and share tests are stated on it. For seconds_to_reach, the
    test accuracy a run must reach."""
    over: str | None = None


class Claim(StrictModel):
    """One thing a source article says, with the expectation that tests it."""

    id: str
    kind: Literal["claim", "result"]
    """claim: an assertion (supported / not supported); result: the article's own
    measurement (reproduced / not reproduced)."""
    source: str
    """The article's title."""
    statement: str
    """The claim, in our words."""
    article: str = ""
    """The article's own figure, shown beside ours."""
    expect: Expectation


def _expectation_problems(expect: Expectation, keys: list[str]) -> list[str]:
    """What an expectation lacks for its test, or selects that does not exist."""
    needs = {
        "at_least": ["value"],
        "at_most": ["value"],
        "between": ["low", "high"],
        "share_at_least": ["value", "reach"],
        "share_at_most": ["value", "reach"],
        **{test: ["versus", "min_difference"] for test in PAIRWISE_TESTS},
        "gap_shrinks": ["versus", "over", "min_difference"],
        "falls_then_rises": ["over", "min_difference"],
    }[expect.test]
    problems = [f"test {expect.test} needs expect.{name}" for name in needs if getattr(expect, name) is None]
    for select in (expect.select, expect.versus or {}):
        problems += [
            f"selects by {key!r}, which is neither variant nor a swept key"
            for key in select
            if key not in ("variant", *keys) and not (select is expect.versus and key == "baseline")
        ]
    baseline = (expect.versus or {}).get("baseline")
    if baseline is not None:
        if baseline not in BASELINE_METRICS:
            problems.append(f"expect.versus.baseline {baseline!r} is not one of {', '.join(BASELINE_METRICS)}")
        elif BASELINE_METRICS[baseline] != expect.metric:
            problems.append(
                f"expect.versus.baseline {baseline} is a {BASELINE_METRICS[baseline]} figure; compare it with "
                f"metric {BASELINE_METRICS[baseline]}, not {expect.metric}"
            )
        elif expect.test not in PAIRWISE_TESTS:
            problems.append(f"expect.versus.baseline needs one of the tests {', '.join(PAIRWISE_TESTS)}")
    if expect.test in ("similar", "not_greater") and expect.min_difference == 0:
        problems.append(f"test {expect.test} needs expect.min_difference above 0 (the margin it is tested against)")
    if expect.test.startswith("share_") and expect.value is not None and not 0 <= expect.value <= 1:
        problems.append(f"expect.value {expect.value} is a share of seeds: give it between 0 and 1")
    if expect.metric == "seconds_to_reach" and expect.reach is None:
        problems.append("metric seconds_to_reach needs expect.reach (the test accuracy to reach)")
    if expect.over is not None and expect.over not in keys:
        problems.append(f"expect.over {expect.over!r} is not a swept key")
    return problems


def claim_problems(claims: list[Claim], keys: list[str]) -> list[str]:
    """What the claims lack, or select that the sweep (`keys`) does not have."""
    problems = []
    for index, claim in enumerate(claims):
        problems += [
            f"claims[{index}] ({claim.id}): {problem}" for problem in _expectation_problems(claim.expect, keys)
        ]
    ids = [claim.id for claim in claims]
    if len(set(ids)) != len(ids):
        problems.append(f"claims: ids {ids} are not unique")
    return problems
