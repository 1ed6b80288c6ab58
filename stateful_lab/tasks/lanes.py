"""Entities on lanes (docs/design.md, "Entities"): how the entities of a table
fill the lanes of a batch for training (`Lanes`), and the walk-forward through
each entity in turn for forecasting (`Walk`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stateful_lab.tasks.csvfile import SeriesError


def walk_of(pieces, prime: bool, reset_each: bool) -> Walk:
    """The entities' windows in turn (each one's training windows, then its test
    windows), where the state is zeroed (at each entity's first window; at its first
    test window if it does not prime; before every test window after the first if it
    resets after each forecast), and which windows are forecasts."""
    windows, zero_before, forecasts, position = [], [], [], 0
    for entity_windows, _, train, _ in pieces:
        count, trained = len(entity_windows), int(train.sum())
        zeros = np.zeros(count, dtype=bool)
        zeros[0] = True
        if not prime:
            zeros[trained] = True
        if reset_each:
            zeros[trained + 1 :] = True
        windows.append(np.concatenate([entity_windows[train], entity_windows[~train]]))
        zero_before.append(zeros)
        forecasts.append(position + np.arange(trained, count))
        position += count
    return Walk(np.concatenate(windows), np.concatenate(zero_before), np.concatenate(forecasts))


@dataclass(frozen=True)
class Walk:
    """Walk-forward through several entities: every window in turn, the state
    zeroed before those marked, the marked ones' predictions the forecasts."""

    windows: np.ndarray
    """(windows, T, F): each entity's training windows, then its test windows."""
    zero_before: np.ndarray
    """(windows,) bool"""
    forecasts: np.ndarray
    """The positions of the test windows, in the order of ForecastSet.actual."""


@dataclass(frozen=True)
class Lanes:
    """How entities fill the lanes of a batch: each entity on one lane, its windows
    following each other from batch to batch; a lane takes its next entity when one
    ends, zeroing that lane's state (and only that lane's) first. Entities go in
    file order, each to the lane that holds the fewest windows so far (the first
    such lane on a tie); every lane is cut to the shortest lane's length, so that a
    batch is whole and no lane waits (the windows cut are counted in a note)."""

    train_counts: list[int]
    test_counts: list[int]
    names: list[str]

    def arrays(self, x: np.ndarray, y: np.ndarray, counts: list[int], batch_size: int):
        """x and y (the entities' windows one after another, `counts` each) in
        feeding order (row k*B + i is lane i of batch k), the lanes' starts as
        (batches, B) bool, and how many windows were cut."""
        if len(counts) < batch_size:
            raise SeriesError(
                f"train.batch_size: {batch_size} lanes need at least {batch_size} entities, and the table has "
                f"{len(counts)}; lower the batch size to at most {len(counts)}"
            )
        offsets = np.concatenate([[0], np.cumsum(counts)])
        lanes: list[list[int]] = [[] for _ in range(batch_size)]  # window indices per lane
        starts: list[list[bool]] = [[] for _ in range(batch_size)]
        for entity, count in enumerate(counts):
            lane = min(range(batch_size), key=lambda index: (len(lanes[index]), index))
            lanes[lane] += range(offsets[entity], offsets[entity] + count)
            starts[lane] += [True] + [False] * (count - 1)
        batches = min(len(lane) for lane in lanes)
        order = np.array([lanes[lane][batch] for batch in range(batches) for lane in range(batch_size)], dtype=int)
        starts_array = np.array([[starts[lane][batch] for lane in range(batch_size)] for batch in range(batches)])
        return x[order], y[order], starts_array.reshape(batches, batch_size), int(sum(counts)) - len(order)
