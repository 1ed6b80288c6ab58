"""The lab's own exceptions: every error a user can cause or meet derives from
`LabError`, carries a one-line message that names the problem and the fix, and
maps to an exit code at the command line (2 for a bad config or usage, 1 for a
run that failed)."""

from __future__ import annotations


class LabError(Exception):
    """A problem the lab explains in one line."""

    exit_code = 2


class RunFailed(LabError):
    """A failure outside any one run (one run's failure is a result, not this)."""

    exit_code = 1
