"""Training procedures. Each trains one model for the experiment's epochs with
the same reset and evaluation protocol (DESIGN section 4) and yields one
`EpochResult` per epoch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import keras

from .config import Experiment
from .models import get_states, reset_states, set_states
from .tasks import Dataset


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    """Wall time of the epoch's training, evaluation excluded."""


def train_fit(model: keras.Model, experiment: Experiment, dataset: Dataset) -> Iterator[EpochResult]:
    """model.fit(epochs=1, shuffle=...) once per epoch, as the blog and the
    gradient-flow article do; never validation_data, whose evaluation would run
    through the stateful layers mid-training."""
    train = experiment.train
    for epoch in range(train.epochs):
        if train.reset == "epoch" or epoch == 0:
            reset_states(model)
        started = time.perf_counter()
        history = model.fit(
            dataset.x_train, dataset.y_train, batch_size=train.batch_size,
            epochs=1, shuffle=train.shuffle, verbose=0,
        ).history
        seconds = time.perf_counter() - started
        test = evaluate(model, dataset, train.batch_size)
        yield EpochResult(
            epoch=epoch,
            train_loss=float(history["loss"][0]),
            train_accuracy=float(history["accuracy"][0]) if "accuracy" in history else math.nan,
            test_loss=test["loss"],
            test_accuracy=test.get("accuracy", math.nan),
            seconds=seconds,
        )


def evaluate(model: keras.Model, dataset: Dataset, batch_size: int) -> dict[str, float]:
    """Test loss and accuracy from a reset state, in order, with the training
    batch size. Keras 3's evaluate changes the state, so the training state is
    saved before and restored after: evaluating never changes what training does."""
    saved = get_states(model)
    reset_states(model)
    result = model.evaluate(
        dataset.x_test, dataset.y_test, batch_size=batch_size, verbose=0, return_dict=True
    )
    set_states(model, saved)
    return {name: float(value) for name, value in result.items()}


TRAINERS = {"fit": train_fit}
