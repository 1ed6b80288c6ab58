"""The three training procedures compute the same thing, and the compiled loop
is traced once per shape, not once per seed."""

import numpy as np
import pytest

from stateful_lab.config import load_experiment
from stateful_lab.models import build_model
from stateful_lab.runner import seed_everything
from stateful_lab.tasks import make_dataset
from stateful_lab.trainers import TRAINERS, CompiledLoop

from .conftest import CONFIGS

TOLERANCE = 1e-5


def train(trainer: str, variant: str, experiment, dataset):
    seed_everything(0)
    model = build_model(experiment, variant, experiment.train.batch_size, seed=0)
    results = list(TRAINERS[trainer](model, experiment, dataset))
    return model.get_weights(), results


@pytest.fixture(scope="module")
def first_timestep():
    experiment = load_experiment(CONFIGS / "first_timestep.yaml", [
        "train.epochs=2", "data.train_samples=256", "data.test_samples=64"])
    return experiment, make_dataset(experiment.data, experiment.train.batch_size, seed=0)


@pytest.mark.parametrize("variant", ["stateless", "stateful"])
@pytest.mark.parametrize("trainer", ["train_on_batch", "loop"])
def test_trainer_equals_fit_in_weights_and_per_epoch_losses(first_timestep, trainer, variant):
    experiment, dataset = first_timestep
    fit_weights, fit_epochs = train("fit", variant, experiment, dataset)
    weights, epochs = train(trainer, variant, experiment, dataset)
    assert len(epochs) == len(fit_epochs) == 2
    for ours, reference in zip(weights, fit_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    for ours, reference in zip(epochs, fit_epochs):
        for field in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            assert getattr(ours, field) == pytest.approx(getattr(reference, field), abs=TOLERANCE), field
    # the weights moved: equality is not two untrained models agreeing
    seed_everything(0)
    initial = build_model(experiment, variant, experiment.train.batch_size, seed=0)
    assert max(np.abs(a - b).max() for a, b in zip(weights, initial.get_weights())) > 1e-3


def test_loop_equals_fit_when_state_is_never_reset(first_timestep):
    experiment, dataset = first_timestep
    experiment = experiment.model_copy(update={"train": experiment.train.model_copy(update={"reset": "never"})})
    fit_weights, fit_epochs = train("fit", "stateful", experiment, dataset)
    weights, epochs = train("loop", "stateful", experiment, dataset)
    for ours, reference in zip(weights, fit_weights):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    assert epochs[-1].test_loss == pytest.approx(fit_epochs[-1].test_loss, abs=TOLERANCE)


def test_loop_traces_once_across_seeds():
    experiment = load_experiment(CONFIGS / "smoke" / "first_timestep.yaml", ["train.epochs=2"])
    batch = experiment.train.batch_size
    losses = []
    for seed in (0, 1, 2):
        dataset = make_dataset(experiment.data, batch, seed)
        seed_everything(seed)
        model = build_model(experiment, "stateful", batch, seed=seed)
        losses.append([result.train_loss for result in TRAINERS["loop"](model, experiment, dataset)])
    compiled = CompiledLoop.for_shape(model, experiment, len(dataset.x_train), len(dataset.x_test))
    assert compiled.train_epoch.experimental_get_tracing_count() == 1
    assert compiled.evaluate.experimental_get_tracing_count() == 1
    assert len({tuple(run) for run in losses}) == 3  # each seed trained from its own start


def test_loop_restarts_the_optimizer_for_every_seed(first_timestep):
    """Re-using the compiled twin must not carry Adam's moments into the next seed."""
    experiment, dataset = first_timestep
    first = train("loop", "stateful", experiment, dataset)
    again = train("loop", "stateful", experiment, dataset)
    for a, b in zip(first[0], again[0]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("raw", [
    {"data": {"task": "first_timestep", "train_samples": 64, "test_samples": 32, "sequence_length": 15},
     "train": {"reset": "sequence", "epochs": 2}},
    {"data": {"task": "first_timestep", "train_samples": 64, "test_samples": 32},
     "train": {"reset": "batch", "epochs": 2}},
    {"data": {"task": "lag_copy", "stream_length": 200, "lag": 2}, "train": {"epochs": 2}},
], ids=["reset-sequence", "reset-batch", "lag_copy"])
@pytest.mark.parametrize("trainer", ["train_on_batch", "loop"])
def test_trainers_agree_on_resets_inside_an_epoch_and_per_step_targets(raw, trainer):
    """Each trainer implements the in-epoch reset cadence and per-step targets its own way."""
    from stateful_lab.config import parse_experiment

    experiment = parse_experiment(raw)
    dataset = make_dataset(experiment.data, experiment.train.batch_size, seed=0)
    fit_weights, fit_epochs = train("fit", "stateful", experiment, dataset)
    weights, epochs = train(trainer, "stateful", experiment, dataset)
    for ours, reference in zip(weights, fit_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    for ours, reference in zip(epochs, fit_epochs):
        assert ours.train_loss == pytest.approx(reference.train_loss, abs=TOLERANCE)
        assert ours.test_loss == pytest.approx(reference.test_loss, abs=TOLERANCE)
        assert ours.test_accuracy == pytest.approx(reference.test_accuracy, abs=TOLERANCE)
