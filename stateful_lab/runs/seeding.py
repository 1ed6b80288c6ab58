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
