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


def deterministic_kernels() -> None:
    """Deterministic kernels, without reseeding: for work that draws from explicit
    seeds only (the grouped engine). Reseeding resets TensorFlow's random state
    and with it every traced function's kernels, about 15 ms a call: most of a
    10,000-run sweep's time when it was called once a run."""
    tf.config.experimental.enable_op_determinism()
