"""The lab's own exceptions: every error a user can cause or meet derives from
`LabError`, carries a one-line message that names the problem and the fix, and
maps to an exit code at the command line (2 for a bad config or usage, 1 for a
run that failed)."""

from __future__ import annotations

MAX_MESSAGE = 2000
"""The longest message an error prints, whatever it quotes."""


class LabError(Exception):
    """A problem the lab explains in one line."""

    exit_code = 2

    def __str__(self) -> str:
        text = super().__str__()
        return (
            text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters)"
        )


class RunFailed(LabError):
    """A failure outside any one run (one run's failure is a result, not this)."""

    exit_code = 1
