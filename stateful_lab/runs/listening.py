"""Each epoch a run records, heard as it is recorded (docs/design.md, "The
console"): a group of hundreds of runs trains for minutes as one work item, and
the progress display should move as its epochs finish, not only when it ends.

Every engine records epochs through `training.protocol.record`, which calls
`heard`; whoever shows progress listens for the time a work item trains (in
this process, or in a worker, which sends what it heard to its parent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[str, int], None]
"""Called with a run's key and the epoch (0-based) it has just recorded."""

_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Hear every epoch recorded in this process while the block runs."""
    if listener is None:
        yield
        return
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def heard(key: str, epoch: int) -> None:
    for listener in list(_listeners):
        listener(key, epoch)
