"""One run: a (sweep point, variant, seed) of an experiment, trained for its
epochs into a `RunResult`.

A unit's key is a hash of everything that decides its numbers, so a unit whose
result is stored is never run again (unless forced), and a changed config gets
new keys. Seeding happens in one place, `seed_everything`.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any

import keras
import tensorflow as tf

from .config import Experiment
from .models import build_model
from .provenance import peak_memory_mb
from .records import FORMAT, RunResult, run_label
from .tasks import for_variant, make_dataset
from .trainers import TRAINERS


def seed_everything(seed: int) -> None:
    """The one seeding block: Python, NumPy's global state and TensorFlow, with
    deterministic kernels. Task data draws from its own Generator(seed), and model
    initializers get seeds derived from it (models.build_model)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class Unit:
    point: dict[str, Any]
    variant: str
    seed: int
    experiment: Experiment
    """The sweep point's resolved experiment."""

    @property
    def key(self) -> str:
        text = json.dumps(
            {"format": FORMAT, "settings": self.experiment.run_settings(), "variant": self.variant, "seed": self.seed},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return run_label(self.point, self.variant, self.seed)

    def result(self, **fields: Any) -> RunResult:
        """A result record for this unit, with `fields` set."""
        return RunResult(key=self.key, point=self.point, variant=self.variant, seed=self.seed, **fields)


def plan_units(experiment: Experiment) -> list[Unit]:
    return [
        Unit(point, variant, seed, point_experiment)
        for point, point_experiment in experiment.points
        for seed in experiment.seed_list
        for variant in experiment.variants
    ]


def run_unit(unit: Unit, threads: int | None = None) -> RunResult:
    """Train one unit, in a fresh process if its config asks for isolation."""
    if unit.experiment.train.isolate:
        return _run_isolated(unit, threads)
    return _run_here(unit, threads)


def _run_isolated(unit: Unit, threads: int | None) -> RunResult:
    """The unit in a child process (`python -m stateful_lab.unit`), whose peak
    memory is then the unit's own."""
    child = subprocess.run(
        [sys.executable, "-m", "stateful_lab.unit"],
        input=pickle.dumps((unit, threads)),
        capture_output=True,
    )
    if child.returncode == 0:
        return pickle.loads(child.stdout)
    tail = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return unit.result(status="failed", error=f"the isolated process exited {child.returncode}: {tail[0]}")


def _run_here(unit: Unit, threads: int | None = None) -> RunResult:
    """Train one unit in this process. Never raises for the unit's own errors: a
    failure or a divergence is a result, so a sweep carries on."""
    _size_thread_pools(threads)
    result = unit.result()
    started = time.perf_counter()
    try:
        experiment, batch = unit.experiment, unit.experiment.train.batch_size
        dataset = for_variant(make_dataset(experiment.data, batch, unit.seed), unit.variant, batch)
        result.notes = list(dataset.notes)
        if dataset.forecast is not None:
            result.baselines = {"persistence_rmse": dataset.forecast.persistence_rmse}
        seed_everything(unit.seed)
        model = build_model(experiment, unit.variant, batch, seed=unit.seed)
        for epoch in TRAINERS[experiment.train.trainer](model, experiment, dataset, unit.variant):
            result.forecasts = list(epoch.forecasts)  # the last epoch's are kept, once
            result.epochs.append(replace(epoch, forecasts=()))
            if not (math.isfinite(epoch.train_loss) and math.isfinite(epoch.test_loss)):
                result.status = "diverged"  # stop early: nothing after a NaN is worth training
                break
    except Exception as error:  # the unit failed; the sweep goes on
        result.status, result.error = "failed", f"{type(error).__name__}: {error}"
        result.traceback = traceback.format_exc()
    result.seconds = time.perf_counter() - started
    # A shared process's peak says nothing about one unit: only an isolated one's does.
    result.peak_memory_mb = peak_memory_mb() if unit.experiment.train.isolate else None
    return result


def _size_thread_pools(threads: int | None) -> None:
    """Give each of N workers cores/N threads, so they do not oversubscribe.
    Only possible before TensorFlow's runtime starts in this process."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # this worker already ran a unit: its pools are sized already


if __name__ == "__main__":  # the child of _run_isolated: one unit in, its result out
    sys.stdout.buffer.write(pickle.dumps(_run_here(*pickle.loads(sys.stdin.buffer.read()))))
