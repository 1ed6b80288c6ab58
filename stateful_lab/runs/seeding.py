"""The one seeding block (docs/design.md, "Training")."""

from __future__ import annotations

import keras
import tensorflow as tf


def seed_everything(seed: int) -> None:
    """Python, NumPy's global state and TensorFlow, with deterministic kernels.
    Task data draws from its own Generator(seed), and model initializers get seeds
    derived from it (training.models.build_model)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def seed_run(seed: int, fit_shuffles: bool) -> None:
    """A single run's seeding (`training.engine.train_unit`). A run draws from
    explicit seeds only (its data, its initial weights, train_on_batch's
    shuffled order), except where Keras' fit shuffles, which draws from
    TensorFlow's global seed: only such a run reseeds (`seed_everything`); the
    others take the deterministic kernels alone, as the grouped engine does.
    Reseeding clears every traced function's kernels (TensorFlow does, so that a
    cached random kernel starts its sequence again), and the next call of each
    function builds them again: measured on batch_time's fit runs, about 0.1 s of
    the first epoch and 0.1 s of the first evaluation, every run."""
    if fit_shuffles:
        seed_everything(seed)
    else:
        deterministic_kernels()


def deterministic_kernels() -> None:
    """Deterministic kernels, without reseeding: for work that draws from explicit
    seeds only (the grouped engine). Reseeding resets TensorFlow's random state
    and with it every traced function's kernels, about 15 ms a call: most of a
    10,000-run sweep's time when it was called once a run."""
    tf.config.experimental.enable_op_determinism()
