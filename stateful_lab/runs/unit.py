"""One run: a (sweep point, variant, seed) of an experiment.

A unit's key is a hash of everything that decides its numbers, so a unit whose
result is stored is never run again (unless forced), and a changed config gets
new keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from stateful_lab.config.experiment import Experiment
from stateful_lab.runs.records import FORMAT, RunResult, run_label
from stateful_lab.tasks import Dataset, for_variant, make_dataset


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


def unit_dataset(unit: Unit) -> Dataset:
    """A unit's dataset, as its variant sees it."""
    batch = unit.experiment.train.batch_size
    return for_variant(make_dataset(unit.experiment.data, batch, unit.seed), unit.variant, batch)
