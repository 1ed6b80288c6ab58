"""The serving side of the answer: what one new prediction costs with each model,
for a batch of one, measured on this machine (docs/design.md, "ask").

Each prediction reads one window, as the lab forecasts: a stateful model at a
window of one row takes the new row alone (its state holds the past); a
stateless one reads its whole window again (as does a stateful one trained on
longer, overlapping windows). Each model is called as a deployed
one is (a traced `tf.function` of the model's forward pass, as a SavedModel
signature runs it), warmed up first; the figure is the median of many calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stateful_lab.config.experiment import Experiment

WARMUP, CALLS = 20, 300


@dataclass(frozen=True)
class Serving:
    model: str
    variant: str
    window: int
    steps: int
    """Recurrent steps one prediction runs."""
    microseconds: float
    """Median wall time of one prediction (batch of one)."""


def serving_costs(points: dict[int, Experiment], models: dict[str, tuple[str, int]]) -> list[Serving]:
    """Each model's cost of one prediction: `models` maps a model's name to its
    variant and window; `points` the experiment at each window."""
    import tensorflow as tf

    from stateful_lab.training.models import build_model

    costs = []
    for name, (variant, window) in models.items():
        experiment = points[window]
        model = build_model(experiment, variant, 1, seed=0)
        steps = window  # as the lab forecasts: each prediction reads one window (state carried if stateful)
        row = np.zeros((1, steps, experiment.data.features), dtype=np.float32)
        predict = tf.function(lambda x, model=model: model(x, training=False))
        tensor = tf.constant(row)
        for _ in range(WARMUP):
            predict(tensor)
        times = []
        for _ in range(CALLS):
            started = time.perf_counter()
            predict(tensor).numpy()
            times.append(time.perf_counter() - started)
        costs.append(Serving(name, variant, window, steps, float(np.median(times)) * 1e6))
    return costs
