"""The three training procedures compute the same thing, and the compiled loop
is traced once per shape, not once per seed."""

import numpy as np
import pytest

from stateful_lab.config.experiment import load_experiment
from stateful_lab.runs.seeding import seed_everything
from stateful_lab.tasks import make_dataset
from stateful_lab.training.models import build_model
from stateful_lab.training.trainers import TRAINERS, CompiledLoop, KerasTwin

from .conftest import CONFIGS, smoke_experiment

TOLERANCE = 1e-5


def train(trainer: str, variant: str, experiment, dataset):
    seed_everything(0)
    model = build_model(experiment, variant, experiment.train.batch_size, seed=0)
    results = list(TRAINERS[trainer](model, experiment, dataset, variant))
    return model.get_weights(), results


@pytest.fixture(scope="module")
def first_timestep():
    experiment = load_experiment(
        CONFIGS / "first_timestep.yaml", ["train.epochs=2", "data.train_samples=256", "data.test_samples=64"]
    )
    return experiment, make_dataset(experiment.data, experiment.train.batch_size, seed=0)


# Every cell with the loop (the lab's own computation); train_on_batch, which only
# calls Keras per batch, with the LSTM.
CASES = [("train_on_batch", "lstm")] + [
    ("loop", cell) for cell in ("lstm", "gru", "simple_rnn", "lstm with Keras 2's hard sigmoid")
]


@pytest.mark.parametrize("variant", ["stateless", "stateful"])
@pytest.mark.parametrize(("trainer", "cell"), CASES)
def test_trainer_equals_fit_in_weights_and_per_epoch_losses(first_timestep, trainer, variant, cell):
    experiment, dataset = first_timestep
    if cell.startswith("lstm with"):
        experiment = experiment.override("model.recurrent_activation=hard_sigmoid_keras2")
    else:
        experiment = experiment.override(f"model.cell={cell}")
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
    experiment = experiment.override("train.reset=never")
    fit_weights, fit_epochs = train("fit", "stateful", experiment, dataset)
    weights, epochs = train("loop", "stateful", experiment, dataset)
    for ours, reference in zip(weights, fit_weights):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    assert epochs[-1].test_loss == pytest.approx(fit_epochs[-1].test_loss, abs=TOLERANCE)


def test_loop_traces_once_across_seeds():
    experiment = smoke_experiment("first_timestep", "train.epochs=2")
    batch = experiment.train.batch_size
    losses = []
    for seed in (0, 1, 2):
        dataset = make_dataset(experiment.data, batch, seed)
        seed_everything(seed)
        model = build_model(experiment, "stateful", batch, seed=seed)
        losses.append([result.train_loss for result in TRAINERS["loop"](model, experiment, dataset, "stateful")])
    compiled = CompiledLoop.for_run(experiment, "stateful", len(dataset.x_train), len(dataset.x_test))
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


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_keras_trainers_reuse_one_model_per_shape_and_equal_a_fresh_one(trainer):
    """fit and train_on_batch train a kept twin of the shape (KerasTwin), so Keras
    traces once per shape: a seed trained after another seed, on the kept twin,
    must give the numbers it gives on a twin built for it, bit for bit (weights,
    Adam's step and moments and the state all start afresh)."""
    experiment = smoke_experiment("first_timestep", "train.epochs=2")
    batch = experiment.train.batch_size

    def run(seed):
        dataset = make_dataset(experiment.data, batch, seed)
        seed_everything(seed)
        model = build_model(experiment, "stateful", batch, seed=seed)
        epochs = [(e.train_loss, e.test_loss) for e in TRAINERS[trainer](model, experiment, dataset, "stateful")]
        return model.get_weights(), epochs

    KerasTwin._cache.clear()
    fresh = run(1)
    twin = KerasTwin.for_run(experiment, "stateful")
    function = twin.model.train_function
    other = run(0)
    again = run(1)
    assert KerasTwin.for_run(experiment, "stateful") is twin  # one model for the three runs
    assert function is not None and twin.model.train_function is function  # Keras made its function once
    assert again[1] == fresh[1] != other[1]
    for a, b in zip(again[0], fresh[0], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "raw",
    [
        {
            "data": {"task": "first_timestep", "train_samples": 64, "test_samples": 32, "sequence_length": 15},
            "train": {"reset": "sequence", "epochs": 2},
        },
        {
            "data": {"task": "first_timestep", "train_samples": 64, "test_samples": 32},
            "train": {"reset": "batch", "epochs": 2},
        },
        {"data": {"task": "lag_copy", "stream_length": 200, "lag": 2}, "train": {"epochs": 2}},
    ],
    ids=["reset-sequence", "reset-batch", "lag_copy"],
)
@pytest.mark.parametrize("trainer", ["train_on_batch", "loop"])
def test_trainers_agree_on_resets_inside_an_epoch_and_per_step_targets(raw, trainer):
    """Each trainer implements the in-epoch reset cadence and per-step targets its own way."""
    from stateful_lab.config.experiment import parse_experiment

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


def test_evaluation_restores_the_training_state():
    """Keras 3 evaluate runs the test set through the state; the lab's evaluate
    must leave the training state exactly as it found it."""
    from stateful_lab.runs.seeding import seed_everything
    from stateful_lab.tasks import make_dataset
    from stateful_lab.training.models import build_model, get_states
    from stateful_lab.training.trainers import evaluate

    experiment = smoke_experiment("first_timestep")
    dataset = make_dataset(experiment.data, 4, seed=0)
    seed_everything(0)
    model = build_model(experiment, "stateful", 4, seed=0)
    model.fit(dataset.x_train, dataset.y_train, batch_size=4, epochs=1, shuffle=False, verbose=0)
    before = get_states(model)
    assert np.abs(before[0][0]).sum() > 0  # training left a non-zero state to protect

    model.evaluate(dataset.x_test, dataset.y_test, batch_size=4, verbose=0)
    assert not np.array_equal(get_states(model)[0][0], before[0][0])  # raw Keras changes it

    from stateful_lab.training.models import set_states

    set_states(model, before)
    evaluate(model, dataset, experiment)
    for saved, after in zip(before, get_states(model)):
        for saved_variable, after_variable in zip(saved, after):
            np.testing.assert_array_equal(saved_variable, after_variable)


def test_never_reset_training_is_unchanged_by_evaluation():
    """With reset: never, the state crosses epochs; evaluating between epochs must
    not alter the trained weights."""
    from stateful_lab.runs.seeding import seed_everything
    from stateful_lab.tasks import make_dataset
    from stateful_lab.training.models import build_model, reset_states
    from stateful_lab.training.trainers import train_fit

    experiment = smoke_experiment("first_timestep", "train.reset=never", "train.epochs=3")
    dataset = make_dataset(experiment.data, 4, seed=0)
    seed_everything(0)
    evaluated = build_model(experiment, "stateful", 4, seed=0)
    list(train_fit(evaluated, experiment, dataset, "stateful"))

    seed_everything(0)
    plain = build_model(experiment, "stateful", 4, seed=0)
    reset_states(plain)
    for _ in range(3):
        plain.fit(dataset.x_train, dataset.y_train, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for with_eval, without in zip(evaluated.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(with_eval, without)


# --- the compiled function's cache key -------------------------------------------

# One other valid value for every config key, with the task that has it and any
# settings that value needs on both sides of the comparison. A key missing here
# fails the coverage test below, so a new setting cannot go unchecked.
OTHER_VALUES = {
    "name": ("first_timestep", "other", []),
    "description": ("first_timestep", "other", []),
    "data.task": ("first_timestep", "collocated", []),
    "data.timesteps": ("first_timestep", 4, []),
    "data.features": ("random_series", 2, []),
    "data.strict": ("first_timestep", True, []),
    "data.train_samples": ("first_timestep", 512, []),
    "data.test_samples": ("first_timestep", 128, []),
    "data.sequence_length": ("first_timestep", 10, []),
    "data.series_length": ("random_series", 2000, []),
    "data.layout": ("lag_copy", "blocks", []),
    "data.target": ("random_series", "noise", []),
    "data.stream_length": ("lag_copy", 500, []),
    "data.lag": ("lag_copy", 3, []),
    "data.series": ("forecast", "airline", []),
    "data.csv": ("forecast", "{tmp}/b.csv", ["data.csv={tmp}/a.csv", "data.column=value"]),
    "data.column": ("forecast", "other", ["data.csv={tmp}/a.csv", "data.column=value"]),
    "data.difference": ("forecast", 0, []),
    "data.test_size": ("forecast", 6, []),
    "data.prime": ("forecast", False, []),
    "data.forecast_reset": ("forecast", "each", []),
    "data.scale": ("forecast", "standard", []),
    "data.scale_fit": ("forecast", "whole", []),
    "data.season": ("forecast", 4, []),
    "data.ridge_alpha": ("forecast", 0.5, []),
    "data.inputs": ("table", "[value, other]", []),
    "data.horizon": ("table", 2, []),
    "data.test_fraction": ("table", 0.3, []),
    "data.entity": ("table", "other", []),
    "data.order": ("table", "step", ["data.entity=other"]),
    "data.kind": ("table", "regression", ["data.target=flag"]),
    "data.classes": ("table", "['1', '0']", ["data.target=flag"]),
    "model.units": ("first_timestep", 4, []),
    "model.cell": ("first_timestep", "gru", []),
    "model.recurrent_activation": ("first_timestep", "hard_sigmoid", []),
    "model.layers": ("first_timestep", 2, []),
    "model.output_activation": ("first_timestep", "tanh", []),
    "model.loss": ("first_timestep", "mae", []),
    "train.batch_size": ("first_timestep", 8, []),
    "train.epochs": ("first_timestep", 3, []),
    "train.optimizer": ("first_timestep", "sgd", []),
    "train.learning_rate": ("first_timestep", 0.01, []),
    "train.clipnorm": ("first_timestep", 1.0, []),
    "train.epsilon": ("first_timestep", 1e-8, []),
    "train.reset": ("first_timestep", "never", []),
    "train.shuffle": ("first_timestep", True, ["variants=[stateless]", "train.trainer=fit"]),
    "train.isolate": ("first_timestep", True, []),
    "train.group": ("first_timestep", False, []),
    "train.trainer": ("first_timestep", "fit", []),
    "variants": ("first_timestep", "[stateless]", []),
    "seeds": ("first_timestep", 5, []),
    "sweep": ("first_timestep", "{train.epochs: [1, 2]}", []),
    "claims": (
        "first_timestep",
        "[{id: c, kind: claim, source: s, statement: s, expect: {metric: test_loss, test: at_most, value: 1}}]",
        [],
    ),
}


def test_every_config_key_has_another_value_to_try():
    from stateful_lab.config.experiment import config_keys

    assert set(OTHER_VALUES) == set(config_keys())


@pytest.mark.parametrize("key", sorted(OTHER_VALUES))
def test_a_setting_that_can_change_the_graph_gets_its_own_compiled_function(key, tmp_path):
    """Only the experiment's name, description, seeds, sweep, claims and variants
    list, and the task's declared data values, may share a compiled function;
    every other key, including any added later, must key a new one."""
    from stateful_lab.config.experiment import RUN_LEVEL_KEYS, parse_experiment
    from stateful_lab.tasks import TASKS

    task, value, context = OTHER_VALUES[key]
    for name in ("a.csv", "b.csv"):  # two copies of one series, for the CSV keys
        rows = "".join(f"{i % 7},{i % 5},{i},{i % 2}\n" for i in range(40))
        (tmp_path / name).write_text("value,other,step,flag\n" + rows)
    value = str(value).replace("{tmp}", str(tmp_path))
    context = [item.replace("{tmp}", str(tmp_path)) for item in context]
    required = {"csv": f"{tmp_path}/a.csv", "target": "value"} if task == "table" else {}
    base = parse_experiment({"data": {"task": task, **required}}).override(*context)
    changed = base.override(f"{key}={value}")
    shares = key in RUN_LEVEL_KEYS or key.removeprefix("data.") in TASKS[task].value_keys
    same = CompiledLoop.key(base, "stateful", 64, 32) == CompiledLoop.key(changed, "stateful", 64, 32)
    assert same == shares


def test_runs_that_differ_in_a_data_value_share_a_function_and_equal_a_fresh_one():
    """lag is declared a data value: a function compiled for lag 1 must give
    exactly what a function compiled afresh for lag 3 gives."""
    from stateful_lab.config.experiment import parse_experiment

    experiment = parse_experiment({"data": {"task": "lag_copy", "stream_length": 40, "lag": 1}, "train": {"epochs": 2}})
    lag_three = experiment.override("data.lag=3")
    datasets = {lag: make_dataset(e.data, 4, seed=0) for lag, e in ((1, experiment), (3, lag_three))}
    train("loop", "stateful", experiment, datasets[1])  # compiles for lag 1
    shared = train("loop", "stateful", lag_three, datasets[3])
    CompiledLoop._cache.clear()
    fresh = train("loop", "stateful", lag_three, datasets[3])
    for a, b in zip(shared[0], fresh[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert [epoch.test_loss for epoch in shared[1]] == [epoch.test_loss for epoch in fresh[1]]


def test_keras2_hard_sigmoid_is_keras_2s_function_not_keras_3s():
    import keras

    from stateful_lab.training.models import hard_sigmoid_keras2

    x = np.array([-3.0, -1.0, 0.0, 1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(hard_sigmoid_keras2(x)), [0.0, 0.3, 0.5, 0.7, 0.9, 1.0], atol=1e-6)
    keras3 = np.asarray(keras.activations.hard_sigmoid(x))
    assert abs(keras3[3] - 0.7) > 0.03  # Keras 3's is x/6 + 1/2: 0.667 at 1


def test_gated_cells_take_the_recurrent_activation_and_simple_rnn_refuses_it():
    from stateful_lab.config.experiment import ConfigError, parse_experiment

    experiment = parse_experiment({"model": {"cell": "gru", "recurrent_activation": "hard_sigmoid_keras2"}})
    model = build_model(experiment, "stateful", 4, seed=0)
    assert model.get_layer("gru_0").cell.recurrent_activation.__name__ == "hard_sigmoid_keras2"
    with pytest.raises(ConfigError, match="simple_rnn has no gates"):
        parse_experiment({"model": {"cell": "simple_rnn", "recurrent_activation": "hard_sigmoid"}})


@pytest.mark.parametrize("field", ["cell", "loss", "optimizer"])
def test_every_engine_knows_every_name_the_config_accepts(field):
    """Adding a cell, loss or optimizer is one entry in the config's choices and
    one in each engine's table; a name missing from any table fails here, not in
    the middle of a sweep."""
    import typing

    from stateful_lab.config.experiment import ModelConfig, TrainConfig
    from stateful_lab.training import models, shapes
    from stateful_lab.training.grouped import cells, optimizers

    schema = TrainConfig if field == "optimizer" else ModelConfig
    annotation = schema.model_fields[field].annotation
    choices = (annotation, *typing.get_args(annotation))
    literal = next(arg for arg in choices if typing.get_origin(arg) is typing.Literal)
    accepted = set(typing.get_args(literal))  # the names, without an Optional's None
    tables = {
        "cell": [models.CELLS, shapes.GATES, cells.STATES],
        "loss": [models.LOSSES, optimizers.LOSSES],
        "optimizer": [models.OPTIMIZERS, optimizers.RULES],
    }[field]
    assert len(accepted) >= 3
    for table in tables:
        assert set(table) == accepted


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_run_gives_its_numbers_whatever_ran_before_it(monkeypatch, shuffle):
    """train_unit reseeds TensorFlow only for a fit run that shuffles, the one
    draw of a run from TensorFlow's global seed (Keras' shuffling); reseeding
    clears every traced function's kernels, which cost each fit run about 0.2 s
    to build again. Either way a run's numbers must not depend on what ran
    before it in the process: seed 1 after seed 0 equals seed 1 first, bit for
    bit, with the global seed moved in between, and shuffling must change the
    numbers (else the case tests nothing)."""
    from stateful_lab.runs import seeding
    from stateful_lab.runs.unit import Unit
    from stateful_lab.training.engine import train_unit

    reseeded = []
    monkeypatch.setattr(seeding, "seed_everything", lambda seed: reseeded.append(seed) or seed_everything(seed))
    experiment = smoke_experiment(
        "first_timestep", "train.trainer=fit", "train.epochs=2", "variants=[stateless]", f"train.shuffle={shuffle}"
    )  # a stateful variant cannot shuffle

    def run(seed):
        result = train_unit(Unit({}, "stateless", seed, experiment))
        assert result.status == "ok", result.error
        return [(epoch.train_loss, epoch.test_loss) for epoch in result.epochs]

    first = run(1)
    seed_everything(99)  # other work in the process leaves TensorFlow's global seed elsewhere
    other, again = run(0), run(1)
    assert again == first != other
    assert reseeded == ([1, 0, 1] if shuffle else [])
    if shuffle:
        assert first != run_unshuffled(experiment, 1)


def run_unshuffled(experiment, seed):
    from stateful_lab.runs.unit import Unit
    from stateful_lab.training.engine import train_unit

    result = train_unit(Unit({}, "stateless", seed, experiment.override("train.shuffle=false")))
    return [(epoch.train_loss, epoch.test_loss) for epoch in result.epochs]
