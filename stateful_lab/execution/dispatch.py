"""Running one work item: in this process, or one run in a child process of its
own (`train.isolate`), whose peak memory is then the run's own.

Every backend (serial, the local pool, Dask) calls `run_item`.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

from stateful_lab.runs.records import RunResult
from stateful_lab.runs.unit import Unit


def run_item(units: list[Unit], threads: int | None = None) -> list[RunResult]:
    """A work item's results: an isolated run in its own process, anything else
    here (training.engine.train)."""
    if len(units) == 1 and units[0].experiment.train.isolate:
        return [run_isolated(units[0])]
    from stateful_lab.training.engine import train  # TensorFlow: not in the parent of an isolated run

    return train(units, threads)


def run_isolated(unit: Unit) -> RunResult:
    """The unit in a child process (`python -m stateful_lab.execution.dispatch`).
    The child's thread pools keep TensorFlow's default size whatever size a pool's
    worker gives its own, so that an isolated run is set up as it is when run
    alone, beside a neighbour or not (a pool's threads are part of a process's
    memory; measured here, the fit run's peak moved by under 2 MB: 702 MB with one
    thread a pool, 700 MB with the default)."""
    child = subprocess.run(
        [sys.executable, "-m", "stateful_lab.execution.dispatch"],
        input=pickle.dumps(unit),
        capture_output=True,
    )
    if child.returncode == 0:
        return pickle.loads(child.stdout)
    tail = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return unit.result(status="failed", error=f"the isolated process exited {child.returncode}: {tail[0]}")


if __name__ == "__main__":  # the child of run_isolated: one unit in, its result out
    from stateful_lab.ending import end
    from stateful_lab.training.engine import train_unit

    sys.stdout.buffer.write(pickle.dumps(train_unit(pickle.loads(sys.stdin.buffer.read()))))
    end(0)
