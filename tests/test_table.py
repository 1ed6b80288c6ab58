"""The table task: several inputs, any target, a horizon, scaling choices and the
baselines, each checked on data built so that the right answer is known; the
forecast task as its special case; bad tables refused in one line."""

import numpy as np
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.config.experiment import ConfigError, parse_experiment
from stateful_lab.tasks import make_dataset
from stateful_lab.tasks.csvfile import SeriesError
from stateful_lab.tasks.windows import cut


def write_table(path, **columns):
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    lines = [",".join(names)] + [",".join(repr(float(value)) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def table_experiment(csv, **data):
    return parse_experiment(
        {"data": {"task": "table", "csv": str(csv), **data}, "model": {"units": 2}, "train": {"batch_size": 1}}
    )


def test_each_window_predicts_the_target_h_rows_after_its_last_row(tmp_path):
    """The target is the row number times 10 and the input the row number: a
    window's last input r and its (unscaled) target 10 (r + h) name the rows, so
    the pairing is read off the numbers."""
    rows = np.arange(40.0)
    csv = write_table(tmp_path / "t.csv", step=rows, y=10 * rows)
    for horizon in (0, 1, 3):
        data = table_experiment(csv, inputs=["step"], target="y", horizon=horizon, timesteps=2, difference=0).data
        dataset = make_dataset(data, 1, seed=0)
        forecast = dataset.forecast
        last_inputs = np.rint((dataset.x_test[:, -1, 0] + 1) / 2 * 31)  # undo the scaling fitted on rows 0..31
        np.testing.assert_allclose(forecast.invert(dataset.y_test), 10 * (last_inputs + horizon), rtol=1e-5)
        # the test part is the last test_size (default: a fifth of the rows) targets
        np.testing.assert_array_equal(forecast.actual, 10 * rows[-8:])
        # persistence: the last target observed before each test target, y[t] (or y[t-1] at horizon 0)
        np.testing.assert_array_equal(forecast.previous, 10 * (rows[-8:] - max(horizon, 1)))


def test_differencing_predicts_the_change_over_the_horizon_and_adds_back_the_last_value(tmp_path):
    """A quadratic target: its change over h rows from row t is known exactly,
    and a forecast equal to it inverts to the target itself."""
    rows = np.arange(50.0)
    csv = write_table(tmp_path / "t.csv", y=rows**2)
    data = table_experiment(csv, target="y", horizon=3, test_size=10).data
    assert data.difference == 1 and data.inputs == ["y"] and data.features == 1
    dataset = make_dataset(data, 1, seed=0)
    forecast = dataset.forecast
    np.testing.assert_allclose(forecast.invert(dataset.y_test), rows[-10:] ** 2, rtol=1e-5)
    np.testing.assert_array_equal(forecast.previous, (rows[-10:] - 3) ** 2)


def test_the_forecast_task_is_the_table_task_with_one_column_and_horizon_1(tmp_path):
    values = np.cumsum(np.random.default_rng(0).standard_normal(60)) + 50
    csv = write_table(tmp_path / "s.csv", value=values)
    forecast = parse_experiment({"data": {"task": "forecast", "csv": str(csv), "column": "value", "timesteps": 3}})
    table = table_experiment(csv, target="value", timesteps=3, test_size=12)
    a, b = make_dataset(forecast.data, 1, seed=0), make_dataset(table.data, 1, seed=0)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.baselines == b.baselines


def test_scaling_is_fitted_on_the_training_part_unless_asked_and_then_it_warns(tmp_path):
    """The test part holds a value ten times the training range: fitted on the
    training part, the training windows span exactly [-1, 1] and the test ones
    go far beyond; fitted on every row, the training windows shrink."""
    values = np.r_[np.linspace(0, 1, 40), [10.0] * 5]
    csv = write_table(tmp_path / "t.csv", x=values, y=values)
    honest = make_dataset(table_experiment(csv, inputs=["x"], target="y", horizon=0, test_size=5).data, 1, 0)
    assert honest.x_train.min() == -1 and honest.x_train.max() == 1 and honest.x_test.max() > 10
    assert not any("leak" in note for note in honest.notes)
    whole = table_experiment(csv, inputs=["x"], target="y", horizon=0, test_size=5, scale_fit="whole").data
    leaked = make_dataset(whole, 1, 0)
    assert leaked.x_train.max() < 0 and leaked.x_test.max() == 1
    assert any("leak" in note and note.startswith("warning:") for note in leaked.notes)
    for scale, (low, high) in (("unit", (0, 1)), ("standard", (None, None))):
        dataset = make_dataset(table_experiment(csv, inputs=["x"], target="y", scale=scale, horizon=0).data, 1, 0)
        if low is not None:
            assert dataset.x_train.min() == low and dataset.x_train.max() == high
        else:  # standardized on the training part: mean 0, deviation 1
            train = values[:36]
            expected = (train - train.mean()) / train.std()
            np.testing.assert_allclose(dataset.x_train[:, 0, 0], expected, atol=1e-6)


def test_the_baselines_score_what_they_can_know():
    """A series that repeats every 7 rows: the seasonal naive forecast (season 7)
    is exact; a target that is a fixed linear function of the window's inputs:
    the ridge baseline is all but exact, and persistence is not."""
    rows = np.arange(120)
    weekly = np.array([3.0, 1, 4, 1, 5, 9, 2])[rows % 7]
    windows = cut(
        weekly[:, None], weekly, timesteps=2, horizon=1, difference=0, test_size=14, season=7, ridge_alpha=1e-6
    )
    assert windows.forecast.baselines["seasonal_naive_rmse"] == 0
    assert windows.forecast.persistence_rmse > 1
    inputs = np.random.default_rng(1).standard_normal((120, 2))
    target = np.r_[0.0, 2 * inputs[:-1, 0] - inputs[:-1, 1] + 0.5]  # y[t+1] from the inputs at row t
    linear = cut(inputs, target, timesteps=2, horizon=1, difference=0, test_size=20, ridge_alpha=1e-6)
    assert linear.forecast.baselines["ridge_rmse"] < 1e-3 < linear.forecast.persistence_rmse


def test_a_window_of_several_inputs_carries_every_column_in_order(tmp_path):
    rows = np.arange(30.0)
    csv = write_table(tmp_path / "t.csv", a=rows, b=-rows, c=rows % 2, y=rows)
    data = table_experiment(csv, inputs=["c", "a", "b"], target="y", timesteps=4, difference=0).data
    assert data.features == 3
    dataset = make_dataset(data, 1, seed=0)
    assert dataset.x_train.shape[1:] == (4, 3)
    first = dataset.x_train[0]
    np.testing.assert_array_equal(first[:, 0], [-1, 1, -1, 1])  # c = row % 2, rows 0..3
    assert (np.diff(first[:, 1]) > 0).all() and (np.diff(first[:, 2]) < 0).all()  # a rises, b falls


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"target": "z"}, ["data.target: 'z' is not a column of", "its columns are step, x, y"]),
        ({"target": "y", "inputs": ["x", "w"]}, ["data.inputs: 'w' is not a column"]),
        ({"target": "y", "horizon": 0, "difference": 1}, ["horizon 0 is always 0"]),
        ({"target": "y", "inputs": ["x", "x"]}, ["data.inputs: 'x' named more than once"]),
        ({"target": "y", "features": 2}, ["data.features: the table task reads one feature per input column (1)"]),
        ({"target": "y", "test_size": 5, "test_fraction": 0.1}, ["give one of them"]),
        ({"target": "y", "test_size": 18}, ["has 20 values", "need at least 21"]),
        ({"target": "k", "inputs": ["x"]}, ["row 4, column 'k' is not a finite number ('n/a')"]),
    ],
)
def test_bad_tables_and_keys_are_refused_in_one_line_naming_the_place(tmp_path, data, expected):
    rows = list(range(20))
    csv = tmp_path / "t.csv"
    csv.write_text("step,x,y,k\n" + "".join(f"{r},{r * 0.5},{r * r},{'n/a' if r == 2 else r}\n" for r in rows))
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, **data)
    message = str(caught.value)
    for part in expected:
        assert part in message
    assert "Traceback" not in message


def test_a_table_run_from_the_command_line_writes_every_baseline(tmp_path):
    rows = np.arange(80.0)
    inputs = np.random.default_rng(3).standard_normal(80)
    csv = write_table(tmp_path / "t.csv", u=inputs, y=np.sin(rows / 3) + 0.1 * inputs)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: t\ndata: {{task: table, csv: {csv.name}, inputs: [u, y], target: y, season: 19}}\n"
        "model: {units: 2}\ntrain: {batch_size: 1, epochs: 2}\nvariants: [stateless, stateful]\nseeds: 1\n"
    )
    result = CliRunner().invoke(main, ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "out" / "summary.md").read_text()
    for name in ("persistence_rmse", "seasonal_naive_rmse", "ridge_rmse"):
        assert name in summary
    with pytest.raises(SeriesError):
        cut(inputs[:5, None], inputs[:5], timesteps=1, horizon=1, difference=0, test_size=5)


LABEL_FIGURES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "forecast_accuracy")


def assert_engines_agree(experiment, dataset, trainer, figures):
    """`trainer` (fit or train_on_batch) against the compiled loop on a stateful
    run: the same final weights, per-epoch `figures` and forecasts within 1e-5;
    the trainer's epochs."""
    from stateful_lab.runs.seeding import seed_everything
    from stateful_lab.training.models import build_model
    from stateful_lab.training.trainers import TRAINERS

    runs = {}
    for name in ("loop", trainer):
        seed_everything(0)
        model = build_model(experiment, "stateful", 2, seed=0)
        runs[name] = (list(TRAINERS[name](model, experiment, dataset, "stateful")), model.get_weights())
    (ours, our_weights), (reference, weights) = runs[trainer], runs["loop"]
    for a, b in zip(our_weights, weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(ours, reference, strict=True):
        for figure in figures:
            x, y = getattr(a, figure), getattr(b, figure)
            assert (np.isnan(x) and np.isnan(y)) or x == pytest.approx(y, abs=1e-5), figure
        scale = max(np.abs(b.forecasts), default=0.0)
        np.testing.assert_allclose(a.forecasts, b.forecasts, rtol=1e-5, atol=1e-5 * scale)
    return ours


# -- several series in one file: entities on lanes ----------------------------------


def entity_table(path, lengths=(9, 14, 7, 11, 8), seed=0):
    """Entities e0, e1, ... of the given lengths, long format, a step column."""
    rng = np.random.default_rng(seed)
    lines = ["name,step,u,y"]
    for entity, length in enumerate(lengths):
        u = rng.standard_normal(length)
        y = np.cumsum(u) * 0.3 + entity
        lines += [f"e{entity},{step},{float(u[step])!r},{float(y[step])!r}" for step in range(length)]
    path.write_text("\n".join(lines) + "\n")
    return path


def entity_experiment(csv, **data):
    return parse_experiment(
        {
            "data": {
                "task": "table",
                "csv": str(csv),
                "entity": "name",
                "order": "step",
                "inputs": ["u", "y"],
                "target": "y",
                "test_size": 2,
                **data,
            },
            "model": {"units": 3},
            "train": {"batch_size": 2, "epochs": 2, "reset": "never"},
        }
    )


def test_entities_fill_the_lanes_in_turn_each_lane_zeroed_only_where_it_takes_the_next():
    """Five entities of 7, 12, 5, 9 and 6 windows on two lanes, each to the lane
    with the fewest windows so far, the first on a tie: e0 -> lane 0 (7), e1 ->
    lane 1 (12), e2 -> lane 0 (12), e3 -> lane 0 on the tie (21), e4 -> lane 1 (18).
    Both lanes are cut to 18 windows (e3 loses its last 3), and each lane starts
    where its own entities start."""
    from stateful_lab.tasks.lanes import Lanes

    counts = [7, 12, 5, 9, 6]
    lanes = Lanes(counts, counts, [f"e{index}" for index in range(5)])
    x = np.arange(sum(counts), dtype=float)[:, None, None]  # window i holds the number i
    xs, ys, starts, dropped = lanes.arrays(x, x[:, 0, 0], counts, batch_size=2)
    assert dropped == 3 and starts.shape == (18, 2)
    lane0, lane1 = xs[0::2, 0, 0], xs[1::2, 0, 0]
    np.testing.assert_array_equal(lane0, [*range(0, 7), *range(19, 24), *range(24, 30)])  # e0, e2, e3 (cut)
    np.testing.assert_array_equal(lane1, [*range(7, 19), *range(33, 39)])  # e1, e4
    assert np.flatnonzero(starts[:, 0]).tolist() == [0, 7, 12] and np.flatnonzero(starts[:, 1]).tolist() == [0, 12]


def test_a_lanes_reset_zeroes_that_lane_alone_and_what_follows_an_entity_knows_nothing_of_it(tmp_path):
    """Measured on a stateful Keras model fed the lane-packed batches with the
    engines' lane resets (`protocol.zero_lanes`): changing every input of entity
    e0 changes nothing, exactly, in the outputs of the entity that follows it on
    its lane, nor in any output of the other lane; and zeroing one lane leaves the
    other lane's state bit for bit as it was."""
    import tensorflow as tf

    from stateful_lab.training import protocol
    from stateful_lab.training.models import build_model, state_variables

    csv = entity_table(tmp_path / "a.csv")
    experiment = entity_experiment(csv)
    data = experiment.data
    x, _, _, _ = data.generate(2, None)
    starts, _ = data.lane_starts(2)

    def outputs(inputs):
        model = build_model(experiment, "stateful", 2, seed=0)
        states = state_variables(model)
        values = []
        for batch in range(len(starts)):
            protocol.zero_lanes(states, tf.constant(starts[batch]))
            values.append(model(inputs[2 * batch : 2 * batch + 2], training=False).numpy())
        return np.concatenate(values)[:, 0]

    base = outputs(x)
    changed = x.copy()
    windows = data.windows
    first = windows.lanes.train_counts[0]
    e0 = np.isin(x, windows.x_train[:first]).all(axis=(1, 2))  # e0's windows, wherever the packing put them
    changed[e0] += 5.0
    moved = outputs(changed)
    assert np.abs(moved[e0] - base[e0]).max() > 1e-3  # the change is seen where it is made
    np.testing.assert_array_equal(moved[~e0], base[~e0])  # and nowhere else, exactly

    model = build_model(experiment, "stateful", 2, seed=0)
    states = state_variables(model)
    model(x[:2], training=False)
    before = [state.numpy().copy() for state in states]
    protocol.zero_lanes(states, tf.constant([True, False]))
    for old, new in zip(before, states, strict=True):
        assert (new.numpy()[0] == 0).all() and (old[0] != 0).any()
        np.testing.assert_array_equal(new.numpy()[1], old[1])


def test_forecasts_walk_through_each_entity_from_a_zero_state(tmp_path):
    """Changing entity e1's inputs in its test part (the scaling is fitted on the
    training parts, so it stays as it was: the test checks through the other
    entities' windows) moves e1's forecasts and no forecast of the entity after it
    in the walk: the state is zeroed at each entity's first window. (Training-time
    isolation along a lane is measured by the test before.)"""
    from stateful_lab.training.models import build_model
    from stateful_lab.training.trainers import EagerForecaster

    original = entity_table(tmp_path / "a.csv")
    lines = original.read_text().splitlines()
    changed = [lines[0]]
    for line in lines[1:]:
        name, step, u, y = line.split(",")
        late = name == "e1" and int(step) >= 12  # e1 has 14 rows, its last 2 the test part
        changed.append(f"{name},{step},{float(u) + (3.0 if late else 0.0)!r},{y}")
    (tmp_path / "b.csv").write_text("\n".join(changed) + "\n")
    forecasts, walks = [], []
    for name in ("a.csv", "b.csv"):
        experiment = entity_experiment(tmp_path / name)
        dataset = make_dataset(experiment.data, 2, seed=0)
        model = build_model(experiment, "stateful", 2, seed=0)
        forecasts.append(np.array(EagerForecaster(experiment, "stateful", dataset)(model)["forecasts"]))
        walks.append(dataset.forecast.walk.windows)
    e1_windows = slice(8, 8 + 13)  # e0 has 8 windows (9 rows, differenced), e1 13
    np.testing.assert_array_equal(walks[0][:8], walks[1][:8])  # the scaling did not move
    np.testing.assert_array_equal(walks[0][21:], walks[1][21:])
    assert not np.array_equal(walks[0][e1_windows], walks[1][e1_windows])
    assert len(forecasts[0]) == 5 * 2  # every entity's last 2 rows
    e1 = slice(2, 4)  # forecasts are in entity order, two each
    assert np.abs(forecasts[0][e1] - forecasts[1][e1]).max() > 1e-6
    others = np.r_[0:2, 4:10]
    np.testing.assert_array_equal(forecasts[0][others], forecasts[1][others])


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_every_engine_trains_entities_on_lanes_alike(tmp_path, trainer):
    """fit and train_on_batch (Keras, a callback and a call per batch) against the
    compiled loop: the same weights, losses and forecasts within 1e-5, with
    per-lane resets inside each epoch and the walk through the entities."""
    experiment = entity_experiment(entity_table(tmp_path / "a.csv"), timesteps=2)
    dataset = make_dataset(experiment.data, 2, seed=0)
    assert dataset.lane_starts_train[1:].any()  # a lane takes its next entity inside the epoch
    assert_engines_agree(experiment, dataset, trainer, ("train_loss", "test_loss", "test_rmse"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lengths": (9, 4, 7)}, ["entity 'e1'", "has 4 values", "need at least 5"]),
        ({"swap": True}, ["data.order:", "row 4, column 'step': '1' is lower than '2' of row 3 within entity 'e0'"]),
        ({"repeat": True}, ["'1' repeats '1' of row 3 within entity 'e0'"]),
        ({"batch": 4, "lengths": (9, 8, 7)}, ["train.batch_size: 4 lanes need at least 4 entities", "has 3"]),
    ],
)
def test_bad_entities_are_refused_in_one_line(tmp_path, change, expected):
    csv = entity_table(tmp_path / "a.csv", lengths=change.get("lengths", (9, 8, 7)))
    lines = csv.read_text().splitlines()
    if change.get("swap"):
        lines[2], lines[3] = lines[3], lines[2]
    if change.get("repeat"):
        name, _, u, y = lines[3].split(",")
        lines[3] = f"{name},1,{u},{y}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        entity_experiment(csv).override(f"train.batch_size={change.get('batch', 2)}")
    for part in expected:
        assert part in str(caught.value)


# -- labels -------------------------------------------------------------------------


def label_table(path, labels, inputs=None):
    inputs = np.arange(len(labels), dtype=float) if inputs is None else inputs
    path.write_text("x,label\n" + "".join(f"{float(x)!r},{label}\n" for x, label in zip(inputs, labels, strict=True)))
    return path


@pytest.mark.parametrize(
    ("labels", "kind", "classes"),
    [
        ([0, 1] * 20, "binary", ["0", "1"]),
        (["yes", "no"] * 20, "binary", ["no", "yes"]),
        (["a", "b", "c"] * 14, "categorical", ["a", "b", "c"]),
        (list(range(40)), "regression", None),
        ([0.0, 1.5] * 20, "regression", None),
    ],
    ids=["0/1", "two words", "three words", "integers", "two numbers"],
)
def test_the_kind_of_target_is_inferred_where_unambiguous_and_recorded(tmp_path, labels, kind, classes):
    """Two values that are 0 and 1, or two words: a binary label; more words: a
    categorical one; any other numbers: a regression target (an integer column
    of many values is a count, not a class, unless the config says so)."""
    csv = label_table(tmp_path / "t.csv", labels)
    raw = {"data": {"task": "table", "csv": str(csv), "inputs": ["x"], "target": "label", "horizon": 0}}
    experiment = parse_experiment(raw)
    assert experiment.data.kind == kind and experiment.data.classes == classes
    assert experiment.classification == (kind != "regression")
    loss = {"binary": "binary_crossentropy", "categorical": "sparse_categorical_crossentropy"}.get(kind, "mse")
    activation = {"binary": "sigmoid", "categorical": "softmax"}.get(kind, "linear")
    assert (experiment.model.loss, experiment.model.output_activation) == (loss, activation)
    assert experiment.data.output_units == (3 if kind == "categorical" else 1)
    assert f"kind: {kind}" in experiment.to_yaml()


def test_label_baselines_score_what_they_can_know(tmp_path):
    """The label is 1 where the input at the same row is positive: a logistic
    regression on the window is exact; the previous label is right wherever the
    label does not change (counted here), and the majority label wherever the
    label is the training part's more frequent one."""
    inputs = np.random.default_rng(4).standard_normal(100)
    labels = (inputs > 0).astype(int)
    csv = label_table(tmp_path / "t.csv", labels, inputs)
    data = table_experiment(csv, inputs=["x"], target="label", horizon=0, test_size=20).data
    baselines = make_dataset(data, 1, seed=0).baselines
    test, before = labels[80:], labels[79:99]
    majority = int(labels[:80].mean() > 0.5)
    assert baselines["logistic_accuracy"] == 1.0
    assert baselines["previous_accuracy"] == pytest.approx(np.mean(test == before))
    assert baselines["majority_accuracy"] == pytest.approx(np.mean(test == majority))


@pytest.mark.parametrize(
    ("labels", "data", "expected"),
    [
        ([0] * 30 + [1] * 10, {"test_size": 10}, ["holds one class only ('0')"]),
        (
            ["a"] * 15 + ["b"] * 15 + ["c"] * 10,
            {"kind": "binary", "classes": ["a", "b"]},
            ["row 32", "'c', not one of"],
        ),
        (["a", "b"] * 15 + ["a"] * 9 + ["c"], {"kind": "binary", "classes": ["a", "c"]}, ["row 3", "'b', not one of"]),
        ([0, 1] * 20, {"difference": 1}, ["a label cannot be differenced"]),
    ],
    ids=["one class in training", "unknown class", "unknown class early", "differenced"],
)
def test_bad_labels_are_refused_in_one_line(tmp_path, labels, data, expected):
    csv = label_table(tmp_path / "t.csv", labels)
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, inputs=["x"], target="label", horizon=0, **data)
    for part in expected:
        assert part in str(caught.value)


def test_a_class_seen_only_in_the_test_part_is_refused(tmp_path):
    csv = label_table(tmp_path / "t.csv", ["a", "b", "d"] * 12 + ["c"] * 4)
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, inputs=["x"], target="label", horizon=0, test_size=4)
    assert "class 'c' of column 'label' appears in the test part only" in str(caught.value)
    csv = label_table(tmp_path / "u.csv", ["a"] * 32 + ["b"] * 8)
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, inputs=["x"], target="label", horizon=0, test_size=8)
    assert "holds one class only ('a')" in str(caught.value)


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_every_engine_forecasts_labels_alike(tmp_path, trainer):
    """A binary label over entities on lanes: fit and train_on_batch against the
    compiled loop, the same weights, losses, accuracies and forecast accuracy."""
    csv = entity_table(tmp_path / "a.csv")
    lines = csv.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    csv.write_text("name,step,u,y,up\n" + "".join(f"{','.join(r)},{int(float(r[2]) > 0)}\n" for r in rows))
    experiment = entity_experiment(csv, inputs=["u"], target="up", horizon=0)
    assert experiment.data.kind == "binary"
    dataset = make_dataset(experiment.data, 2, seed=0)
    ours = assert_engines_agree(experiment, dataset, trainer, LABEL_FIGURES)
    assert all(0 <= epoch.forecast_accuracy <= 1 and np.isnan(epoch.test_rmse) for epoch in ours)


def categorical_table(path):
    """Entities on lanes, a label of three classes that depends on the history of
    the input (a leaky sum above, inside or below a band)."""
    rng = np.random.default_rng(11)
    lines = ["unit,step,x,regime"]
    for entity, length in enumerate((14, 18, 12, 16)):
        x, total = rng.standard_normal(length), 0.0
        for step in range(length):
            total = 0.7 * total + x[step]
            regime = "high" if total > 0.7 else "low" if total < -0.7 else "mid"
            lines.append(f"u{entity},{step},{float(x[step])!r},{regime}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_every_engine_forecasts_categories_alike(tmp_path, trainer):
    """A softmax head of three units and sparse cross-entropy, over entities on
    lanes: fit and train_on_batch against the compiled loop, the same weights,
    losses, accuracies and forecast accuracy within 1e-5."""
    experiment = parse_experiment(
        {
            "data": {
                "task": "table",
                "csv": str(categorical_table(tmp_path / "c.csv")),
                "entity": "unit",
                "order": "step",
                "inputs": ["x"],
                "target": "regime",
                "horizon": 0,
                "test_size": 3,
            },
            "model": {"units": 3},
            "train": {"batch_size": 2, "epochs": 2},
        }
    )
    assert experiment.data.kind == "categorical" and experiment.data.classes == ["high", "low", "mid"]
    dataset = make_dataset(experiment.data, 2, seed=0)
    assert experiment.data.output_units == 3  # one unit, and one bias, per class
    ours = assert_engines_agree(experiment, dataset, trainer, LABEL_FIGURES)
    assert all(set(epoch.forecasts) <= {0.0, 1.0, 2.0} for epoch in ours)


def test_category_baselines_score_what_they_can_know(tmp_path):
    """The class is which of three bands the input at the same row falls in: a
    logistic regression (one against the rest) on the window is exact for the
    outer bands' thresholds; the majority class and the previous class are
    counted by hand."""
    inputs = np.random.default_rng(6).uniform(-3, 3, 150)
    labels = np.where(inputs > 1, "c", np.where(inputs < -1, "a", "b"))
    csv = label_table(tmp_path / "t.csv", labels, inputs)
    data = table_experiment(csv, inputs=["x"], target="label", horizon=0, test_size=30, ridge_alpha=1e-6).data
    baselines = make_dataset(data, 1, seed=0).baselines
    test, before = labels[120:], labels[119:149]
    values, counts = np.unique(labels[:120], return_counts=True)
    assert baselines["previous_accuracy"] == pytest.approx(np.mean(test == before))
    assert baselines["majority_accuracy"] == pytest.approx(np.mean(test == values[counts.argmax()]))
    assert baselines["logistic_accuracy"] >= 0.9  # the middle band is not linearly separable from the rest


def test_categories_have_a_sane_limit_and_their_own_head(tmp_path):
    csv = label_table(tmp_path / "t.csv", [f"c{index % 120}" for index in range(480)])
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, inputs=["x"], target="label", horizon=0)
    assert "a categorical target has 3 to 100 classes, this one 120" in str(caught.value)
    csv = label_table(tmp_path / "u.csv", ["a", "b", "c"] * 20)
    with pytest.raises(ConfigError) as caught:
        table_experiment(csv, inputs=["x"], target="label", horizon=0).override("model.output_activation=sigmoid")
    assert "softmax is the head of a categorical target" in str(caught.value)


def test_overlapping_windows_are_said_to_overlap_and_one_step_windows_follow_each_other(tmp_path):
    """With timesteps 1 each window's row follows the last one's, so the state a
    stateful model carries is exactly the previous row's; with more, windows slide
    by one and overlap, and the console says what that means for a stateful model."""
    rows = np.arange(40.0)
    csv = write_table(tmp_path / "t.csv", x=rows, y=rows)
    one = make_dataset(table_experiment(csv, inputs=["x"], target="y", horizon=0, difference=0).data, 1, 0)
    last_rows = np.rint((one.x_train[:, -1, 0] + 1) / 2 * 31)
    np.testing.assert_array_equal(np.diff(last_rows), 1)  # consecutive windows, consecutive rows
    assert not any("slide" in note for note in one.notes)
    data = table_experiment(csv, inputs=["x"], target="y", horizon=0, difference=0, timesteps=3).data
    three = make_dataset(data, 1, 0)
    np.testing.assert_array_equal(three.x_train[1, :2], three.x_train[0, 1:])  # overlap by T - 1 rows
    assert any("reads each step several times" in note for note in three.notes)
