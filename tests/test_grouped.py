"""Runs trained as one group give, value for value, what the same runs give one at
a time: every epoch's figures and the final weights within 1e-5, for every cell,
reset policy, task, variant, optimizer and loss the lab has, and for the
walk-forward forecasts. A failing run costs no other run its result."""

import numpy as np
import pytest

from stateful_lab.execution.plan import plan
from stateful_lab.runs.records import EpochResult
from stateful_lab.runs.seeding import seed_everything
from stateful_lab.runs.unit import Unit
from stateful_lab.training import engine
from stateful_lab.training.engine import train_group, train_unit
from stateful_lab.training.grouped import program, stored
from stateful_lab.training.grouped.program import GroupedLoop
from stateful_lab.training.models import build_model, initial_weights
from stateful_lab.training.trainers import TRAINERS

from .conftest import EXAMPLES, smoke_experiment

TOLERANCE = 1e-5
FIGURES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_rmse", "forecast_accuracy")

# Each case varies several things at once, so that together they cover every cell,
# reset policy, task, variant, optimizer and loss with few compilations.
CASES = {
    "first_timestep, lstm, adam, mse, reset each epoch": ("first_timestep", ["train.epochs=3"]),
    "collocated, gru, rmsprop, binary crossentropy, never reset": (
        "collocated",
        ["model.cell=gru", "train.optimizer=rmsprop", "model.loss=binary_crossentropy", "train.reset=never"],
    ),
    "lag_copy (a target per step), simple_rnn, sgd, mae, reset every batch": (
        "lag_copy",
        [
            "model.cell=simple_rnn",
            "train.optimizer=sgd",
            "train.learning_rate=0.1",
            "model.loss=mae",
            "train.reset=batch",
        ],
    ),
    "long_sequence (reset at each sequence), two stacked layers, clipnorm": (
        "long_sequence",
        ["model.units=[4,3]", "train.clipnorm=0.01"],
    ),
    "collocated_wide_window (wide_window), gru with Keras 2's hard sigmoid, epsilon": (
        "collocated_wide_window",
        ["variants=[wide_window]", "model.cell=gru", "model.recurrent_activation=hard_sigmoid_keras2"]
        + ["train.epsilon=1e-8"],
    ),
    "random_series (regression), lstm with Keras 3's hard sigmoid": (
        "random_series",
        ["model.recurrent_activation=hard_sigmoid"],
    ),
    "shampoo forecasts, primed": ("shampoo", ["train.epochs=3"]),
    "a table of several inputs, horizon 2, differenced, standardized, gru": (
        EXAMPLES / "tank.yaml",
        ["model.cell=gru", "data.timesteps=3", "data.horizon=2", "data.difference=1", "data.scale=standard"],
    ),
    "entities on lanes (per-lane resets, the walk through each entity), simple_rnn": (
        EXAMPLES / "tanks.yaml",
        ["model.cell=simple_rnn", "data.test_size=5", "data.timesteps=2", "train.reset=never"],
    ),
    "a binary label through entities (sigmoid, binary cross-entropy, forecast accuracy), gru": (
        EXAMPLES / "tanks.yaml",
        ["model.cell=gru", "data.test_size=5", "data.target=alarm", "model.loss=null", "model.output_activation=null"],
    ),
    "a label of three classes through entities (softmax, sparse cross-entropy), lstm": (
        EXAMPLES / "tanks.yaml",
        ["data.test_size=5", "data.target=band", "model.loss=null", "model.output_activation=null"],
    ),
    "shampoo_state forecasts, reset after each, not primed": (
        "shampoo_state",
        ["train.epochs=3", "data.forecast_reset=each", "data.prime=false", "model.cell=gru"],
    ),
}


def data_of(units):
    return units[0].experiment.data


def units_of(config, overrides, seeds=(0, 1)):
    """The smoke config's units (one sweep point), for `seeds`."""
    experiment = smoke_experiment(config, *overrides, f"seeds={list(seeds)}")
    point, point_experiment = experiment.points[0]
    return [Unit(point, variant, seed, point_experiment) for seed in seeds for variant in experiment.variants]


# Runs whose settings differ where a group gives each run its own value: one group.
MIXED = {
    "gates, epsilon, epochs and the reset at an epoch's start": (
        "collocated",
        [
            ["train.epochs=2"],
            [
                "train.epochs=3",
                "model.recurrent_activation=hard_sigmoid_keras2",
                "train.epsilon=1e-8",
                "train.reset=never",
            ],
        ],
    ),
    "priming, and resets after each forecast": (
        "shampoo",
        [["train.epochs=2"], ["train.epochs=3", "data.prime=false", "data.forecast_reset=each"]],
    ),
    "priming, and resets after each forecast, through entities": (
        EXAMPLES / "tanks.yaml",
        [["train.epochs=2"], ["train.epochs=3", "data.prime=false", "data.forecast_reset=each"]],
    ),
}


def assert_same_runs(grouped, alone, epochs=None):
    """`epochs`: how many each run has (default: as many as its reference)."""
    for ours, reference in zip(grouped, alone, strict=True):
        assert ours.label == reference.label and ours.status == reference.status == "ok"
        assert len(ours.epochs) == len(reference.epochs) == (epochs or len(reference.epochs))
        for epoch, (a, b) in enumerate(zip(ours.epochs, reference.epochs, strict=True)):
            for field in FIGURES:
                x, y = getattr(a, field), getattr(b, field)
                assert (np.isnan(x) and np.isnan(y)) or x == pytest.approx(y, abs=TOLERANCE), (ours.label, epoch, field)
        # relative to the series' scale: a forecast near zero has no relative precision
        scale = max(np.abs(reference.forecasts), default=0.0)
        np.testing.assert_allclose(ours.forecasts, reference.forecasts, rtol=TOLERANCE, atol=TOLERANCE * scale)


@pytest.mark.parametrize("case", list(CASES))
def test_a_group_equals_its_runs_trained_one_at_a_time(case, monkeypatch):
    config, overrides = CASES[case]
    units = units_of(config, overrides)
    assert len(units) >= 2 and len(plan(units)) == 1  # stateless and stateful together, or wide_window
    finals = {}
    real_loop = TRAINERS["loop"]

    def loop_keeping_weights(model, experiment, dataset, variant):  # the trainer sets the model's weights at the end
        yield from real_loop(model, experiment, dataset, variant)
        finals[(variant, dataset.seed)] = model.get_weights()

    monkeypatch.setitem(TRAINERS, "loop", loop_keeping_weights)
    alone = [train_unit(unit) for unit in units]
    grouped = train_group(units)
    assert_same_runs(grouped, alone, units[0].experiment.train.epochs)
    group = list(GroupedLoop._cache.values())[-1]  # the group just trained (the most recently used)
    for run, unit in enumerate(units):
        for ours, reference in zip(group.weights_of(run), finals[(unit.variant, unit.seed)], strict=True):
            np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    # the weights moved: equality is not two untrained models agreeing
    start = initial_weights(units[0].experiment, units[0].seed)
    assert max(np.abs(a - b).max() for a, b in zip(group.weights_of(0), start)) > 1e-4
    if data_of(units).forecast_set() is not None:
        metric = data_of(units).forecast_set().metric  # test_rmse, or forecast_accuracy for labels
        assert all(result.forecasts and np.isfinite(getattr(result.epochs[-1], metric)) for result in grouped)


def test_the_written_out_lstm_backward_pass_equals_tensorflows_gradient(monkeypatch):
    """`backprop.lstm_window` against TensorFlow's own gradient of the same layer as
    the step loop computes it (`backprop.applies` turned off), for a layer of 3
    units over 6 steps of 2 inputs, 4 lanes and 5 runs: the gradients with respect
    to the inputs (a stacked layer's), the starting state and the weights agree
    within float32 rounding. The loss weighs the last h and the final c with
    random factors, so both incoming gradients count; the weights are large
    enough that some gates saturate. And the same from the records of an earlier
    window on other data (`buffers`, as the training loop passes them on): a
    window writes every entry of its records before it reads it, so nothing of
    the earlier window may reach its gradients."""
    import tensorflow as tf

    from stateful_lab.training.grouped import backprop

    group = GroupedLoop(smoke_experiment("first_timestep"), runs=5)
    generator = np.random.default_rng(0)

    def random(*shape, scale=1.0):
        return tf.constant(generator.normal(0, scale, (*shape, 5)), tf.float32)

    inputs, h, c = random(4, 6, 2), random(4, 3), random(4, 3)
    weights = [random(2, 12, scale=2.0), random(3, 12, scale=2.0), random(12)]
    factors = [random(4, 3), random(4, 3)]

    @tf.function(jit_compile=True, autograph=False)
    def gradients(buffers=None):
        with tf.GradientTape() as tape:
            tape.watch([inputs, h, c, *weights])
            _, (h_last, c_last), _ = group._layer(inputs, [h, c], *weights, sequences=False, buffers=buffers)
            loss = tf.reduce_sum(h_last * factors[0]) + tf.reduce_sum(c_last * factors[1])
        return tape.gradient(loss, [inputs, h, c, *weights])

    assert backprop.applies(group.cell, group.gates, runs_first=False, sequences=False)
    written_out = [gradient.numpy() for gradient in gradients()]
    other = random(4, 6, 2), [random(4, 3), random(4, 3)]
    earlier = tf.function(lambda: group._layer(*other, *weights, sequences=False)[2], jit_compile=True, autograph=False)
    buffers = earlier()
    assert all(float(tf.reduce_max(tf.abs(buffer))) > 0.1 for buffer in buffers)  # filled: a real earlier window
    for ours, fresh in zip(gradients(buffers), written_out):
        np.testing.assert_array_equal(ours.numpy(), fresh)
    monkeypatch.setattr(backprop, "applies", lambda *_: False)
    traced_anew = tf.function(gradients.python_function, jit_compile=True, autograph=False)
    tensorflows = [gradient.numpy() for gradient in traced_anew()]
    for ours, reference, name in zip(written_out, tensorflows, ["inputs", "h", "c", "kernel", "recurrent", "bias"]):
        assert np.abs(reference).max() > 0.1, name  # a gradient that is all zeros would agree with anything
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", list(MIXED))
def test_runs_with_their_own_settings_share_a_group(case):
    config, settings = MIXED[case]
    units = [unit for overrides in settings for unit in units_of(config, [*overrides, "variants=[stateful]"], (0,))]
    assert len(plan(units)) == 1
    alone = [train_unit(unit) for unit in units]
    assert {len(result.epochs) for result in alone} == {2, 3}
    assert_same_runs(train_group(units), alone)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_initial_weights_are_the_built_models_value_for_value(cell):
    experiment = smoke_experiment("lag_copy", f"model.cell={cell}", "model.units=[4,3]")
    for seed in (0, 5):
        seed_everything(seed)
        built = build_model(experiment, "stateful", experiment.train.batch_size, seed).get_weights()
        made = initial_weights(experiment, seed)
        assert [w.shape for w in made] == [w.shape for w in built]
        for ours, reference in zip(made, built, strict=True):
            np.testing.assert_array_equal(ours, reference)


def test_a_run_that_fails_fails_alone_and_the_group_trains(monkeypatch):
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0, 1))
    real = engine.prepared

    def fails_for_seed_1_stateful(unit):
        if unit.seed == 1 and unit.variant == "stateful":
            raise RuntimeError("no data for this one")
        return real(unit)

    monkeypatch.setattr(engine, "prepared", fails_for_seed_1_stateful)
    results = {result.label: result for result in train_group(units)}
    assert results["seed 1 stateful"].status == "failed"
    assert results["seed 1 stateful"].error == "RuntimeError: no data for this one"
    assert "fails_for_seed_1_stateful" in results["seed 1 stateful"].traceback
    assert {results[label].status for label in ("seed 0 stateless", "seed 0 stateful", "seed 1 stateless")} == {"ok"}


def test_a_group_that_fails_runs_its_units_one_at_a_time(monkeypatch):
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0,))
    expected = train_group(units)

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(engine, "Together", broken)
    results = train_group(units)
    assert [r.status for r in results] == ["ok", "ok"]
    for a, b in zip(results, expected, strict=True):
        assert a.epochs[-1].test_loss == pytest.approx(b.epochs[-1].test_loss, abs=TOLERANCE)


def test_a_diverging_run_stops_recording_and_the_others_train_on():
    units = units_of("random_series", ["train.epochs=4", "train.optimizer=sgd", "train.learning_rate=1e6"], seeds=(0,))
    calm = units_of("random_series", ["train.epochs=4"], seeds=(0,))
    assert all(len(r.epochs) == 4 and r.status == "ok" for r in train_group(calm))
    results = train_group(units)
    assert {r.status for r in results} == {"diverged"}
    assert all(len(r.epochs) < 4 for r in results)


def test_grouped_epoch_seconds_are_each_runs_share():
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0, 1))
    results = train_group(units)
    assert all(isinstance(e, EpochResult) and e.seconds > 0 for r in results for e in r.epochs)
    assert len({r.epochs[1].seconds for r in results}) == 1  # one share for all


def test_shards_trained_side_by_side_equal_one_group_bit_for_bit(monkeypatch):
    """A large group of a program that is not size-sensitive is cut into shards,
    one a core, each trained in a thread of its own with its own program slot. No
    run's arithmetic involves another run's, so every figure of every run equals
    the one-group figure exactly, even with shards of unequal sizes (5 = 3 + 2)."""
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0, 1, 2))[:5]
    monkeypatch.setattr(engine, "side_by_side", lambda: 1)
    whole = train_group(units)
    groups, real = [], engine.Together

    def recorded(items, shapes, size=None, slot=0, sharing=1):
        groups.append((len(items), slot, sharing))
        return real(items, shapes, size, slot, sharing)

    monkeypatch.setattr(engine, "Together", recorded)
    monkeypatch.setattr(engine, "side_by_side", lambda: 2)
    monkeypatch.setattr(engine, "SHARD_STEPS", 1)
    sharded = train_group(units)
    assert groups == [(3, 0, 2), (2, 1, 2)]  # two shards, side by side in two slots
    assert [result.label for result in sharded] == [result.label for result in whole]
    for ours, reference in zip(sharded, whole, strict=True):
        assert [vars(epoch) | {"seconds": 0} for epoch in ours.epochs] == [
            vars(epoch) | {"seconds": 0} for epoch in reference.epochs
        ]


def test_a_group_filled_up_to_whole_vectors_gives_each_run_the_same_figures(monkeypatch):
    """10 runs of a program that is not size-sensitive train as a group of 16
    (`sizing.padded`: whole vectors of 8 runs), the 6 copies' results dropped.
    No run's arithmetic involves another run's, so every real run's figures
    equal those of a group of exactly 10, bit for bit."""
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0, 1, 2, 3, 4))
    monkeypatch.setattr(engine, "side_by_side", lambda: 1)
    sizes, real = [], engine.Together

    def recorded(items, shapes, size=None, slot=0, sharing=1):
        sizes.append((len(items), size))
        return real(items, shapes, size, slot, sharing)

    monkeypatch.setattr(engine, "Together", recorded)
    filled = train_group(units)
    monkeypatch.setattr(engine, "padded", lambda runs: runs)
    exact = train_group(units)
    assert sizes == [(10, 16), (10, 10)]
    assert [result.label for result in filled] == [result.label for result in exact] == [u.label for u in units]
    for ours, reference in zip(filled, exact, strict=True):
        assert [vars(epoch) | {"seconds": 0} for epoch in ours.epochs] == [
            vars(epoch) | {"seconds": 0} for epoch in reference.epochs
        ]


def test_a_shard_that_fails_trains_its_units_alone_and_the_other_shard_trains(monkeypatch):
    units = units_of("first_timestep", ["train.epochs=2"], seeds=(0, 1))
    real = engine.Together

    def second_shard_breaks(items, shapes, size=None, slot=0, sharing=1):
        group = real(items, shapes, size, slot, sharing)
        if slot == 1:
            group.train = lambda: (_ for _ in ()).throw(MemoryError("out of memory"))
        return group

    monkeypatch.setattr(engine, "side_by_side", lambda: 2)
    monkeypatch.setattr(engine, "SHARD_STEPS", 1)
    monkeypatch.setattr(engine, "Together", second_shard_breaks)
    alone = []
    monkeypatch.setattr(engine, "train_unit", lambda unit: alone.append(unit.label) or unit.result())
    results = train_group(units)
    assert alone == ["seed 1 stateless", "seed 1 stateful"]  # the second shard's runs, one at a time
    assert [result.label for result in results] == [unit.label for unit in units]
    assert all(len(result.epochs) == 2 for result in results[:2])  # the first shard trained as a group


def assert_identical(these, those):
    for ours, theirs in zip(these, those, strict=True):
        assert ours.status == theirs.status == "ok" and len(ours.epochs) == len(theirs.epochs)
        for a, b in zip(ours.epochs, theirs.epochs, strict=True):
            assert [getattr(a, field) for field in FIGURES] == [getattr(b, field) for field in FIGURES]
        assert list(ours.forecasts) == list(theirs.forecasts)


def test_a_stored_graph_is_loaded_without_tracing_and_gives_the_same_figures(tmp_path, monkeypatch):
    """A group's traced epochs are stored in the cache folder (`grouped.stored`):
    a process that trains the same program later registers them and traces
    nothing, with every figure and forecast bit for bit the same. A damaged file
    is traced again and replaced; a graph stored by other lab code is never
    loaded; with the cache off nothing is stored."""
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    units = units_of("shampoo", ["train.epochs=2"])  # forecasts too: every output of the epochs function
    traces = []
    real_trace = stored._trace_and_store
    monkeypatch.setattr(stored, "_trace_and_store", lambda *args: traces.append(1) or real_trace(*args))

    def as_a_new_process():  # nothing registered with TensorFlow yet, a new program and variables
        monkeypatch.setattr(stored, "_registered", {})
        monkeypatch.setattr(GroupedLoop, "_cache", {})

    as_a_new_process()
    traced = train_group(units)
    (path,) = (tmp_path / "graphs").glob("*.json")
    assert traces == [1]

    as_a_new_process()
    with monkeypatch.context() as patched:
        patched.setattr(GroupedLoop, "_train_epochs", lambda *args, **kwargs: pytest.fail("traced"))
        loaded = train_group(units)
    assert traces == [1]
    assert_identical(loaded, traced)

    text = path.read_text()
    damaged = text[:1000] + ("A" if text[1000] != "A" else "B") + text[1001:]  # one character of the library
    path.write_text(damaged)
    as_a_new_process()
    assert_identical(train_group(units), traced)
    assert traces == [1, 1] and path.read_text() != damaged  # traced again, stored anew
    as_a_new_process()
    assert_identical(train_group(units), traced)
    assert traces == [1, 1]  # and loaded again
    path.write_bytes(b"\xff\xfe not even text")
    as_a_new_process()
    assert_identical(train_group(units), traced)
    assert traces == [1, 1, 1]

    as_a_new_process()
    monkeypatch.setattr(stored, "_source_digest", lambda: "the lab's code, changed")
    assert_identical(train_group(units), traced)
    assert traces == [1, 1, 1, 1] and len(list((tmp_path / "graphs").glob("*.json"))) == 2

    as_a_new_process()
    monkeypatch.setenv("STATEFUL_LAB_CACHE", "off")
    assert_identical(train_group(units), traced)
    assert traces == [1, 1, 1, 1] and len(list((tmp_path / "graphs").glob("*.json"))) == 2


def test_epochs_trained_in_several_calls_equal_one_call(monkeypatch):
    """After epoch 0, a group trains its remaining epochs in one call, or in
    several when their forecasts would take too much memory: the same figures,
    forecasts and epoch numbers either way."""
    config, settings = MIXED["priming, and resets after each forecast"]
    units = [unit for overrides in settings for unit in units_of(config, [*overrides, "variants=[stateful]"], (0,))]
    whole = train_group(units)
    counts = []
    real = stored.epochs_function

    def counted(*args):  # the compiled function, counting the epochs of each call
        function = real(*args)

        def call(first, count, *rest, **inputs):
            counts.append(int(count))
            return function(first, count, *rest, **inputs)

        return call

    monkeypatch.setattr(stored, "epochs_function", counted)
    monkeypatch.setattr(program, "FORECASTS_KEPT", 1)  # one epoch's forecasts a call
    in_parts = train_group(units)
    assert counts == [1, 1, 1]
    assert [[epoch.epoch for epoch in result.epochs] for result in in_parts] == [[0, 1], [0, 1, 2]]
    assert_same_runs(in_parts, whole)
