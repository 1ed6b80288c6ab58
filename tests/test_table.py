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
