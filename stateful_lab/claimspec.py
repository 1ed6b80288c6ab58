"""The `claims:` section: what a source article says, and the machine-checkable
expectation that tests it. Verdicts are claims.py's job; this is the schema and
its load-time checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .schema import StrictModel


class Expectation(StrictModel):
    """A machine-checkable expectation about the final-epoch results."""

    metric: Literal[
        "test_accuracy", "test_loss", "train_accuracy", "train_loss", "test_rmse", "epoch_seconds", "peak_memory_mb"
    ]
    """What is compared, per run (one value per seed)."""
    select: dict[str, Any] = Field(default_factory=dict)
    """The runs compared: `variant` and/or swept keys with their values."""
    test: Literal["at_least", "at_most", "between", "greater", "less", "similar", "not_greater", "gap_shrinks"]
    """at_least/at_most/between: the selected runs' mean against value/low/high.
    greater/less: selected vs `versus`, Welch's t-test at p < 0.05 in that direction.
    similar: the 95% interval of the difference from `versus` lies within ±margin.
    not_greater: the selected runs are at most `margin` above `versus` (the 95%
    interval's upper end of the difference is at most margin): "at least as good"
    for a metric where lower is better, such as an RMSE.
    gap_shrinks: the per-seed gap (selected minus versus) is smaller at the largest
    value of the swept key `over` than at its smallest (Welch, p < 0.05)."""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    versus: dict[str, Any] | None = None
    """The runs the selected ones are compared with (two-group tests)."""
    margin: float | None = Field(None, gt=0)
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
        "greater": ["versus"],
        "less": ["versus"],
        "similar": ["versus", "margin"],
        "not_greater": ["versus", "margin"],
        "gap_shrinks": ["versus", "over"],
    }[expect.test]
    problems = [f"test {expect.test} needs expect.{name}" for name in needs if getattr(expect, name) is None]
    for select in (expect.select, expect.versus or {}):
        problems += [
            f"selects by {key!r}, which is neither variant nor a swept key"
            for key in select
            if key not in ("variant", *keys)
        ]
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
