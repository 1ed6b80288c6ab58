"""The forecast task: the shipped series, the protocol's transforms, walk-forward
forecasts without leakage, every trainer alike, and bad data refused cleanly."""

import numpy as np
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.config.experiment import ConfigError, parse_experiment
from stateful_lab.runs.seeding import seed_everything
from stateful_lab.tasks import make_dataset
from stateful_lab.tasks.forecast import DATA, read_series
from stateful_lab.training.models import build_model
from stateful_lab.training.trainers import TRAINERS


def forecast_experiment(**data):
    return parse_experiment(
        {"data": {"task": "forecast", **data}, "model": {"units": 1}, "train": {"batch_size": 1, "epochs": 3}}
    )


def test_shampoo_persistence_rmse_over_the_last_year_is_136_761():
    forecast = make_dataset(forecast_experiment().data, 1, seed=0).forecast
    assert forecast.persistence_rmse == pytest.approx(136.761, abs=5e-4)
    assert len(read_series(DATA / "shampoo.csv", "sales")) == 36
    assert len(read_series(DATA / "airline.csv", "passengers")) == 144


@pytest.mark.parametrize("difference", [0, 1])
@pytest.mark.parametrize("series", ["shampoo", "airline"])
def test_inverting_scaling_and_differencing_gives_the_series_back(series, difference):
    data = forecast_experiment(series=series, difference=difference, timesteps=3).data
    dataset = make_dataset(data, 1, seed=0)
    forecast = dataset.forecast
    np.testing.assert_allclose(forecast.invert(dataset.y_test), forecast.actual, rtol=1e-6)
    # the training windows are the scaled training part: its range is exactly [-1, 1]
    assert dataset.x_train.min() == pytest.approx(-1) or dataset.y_train.min() == pytest.approx(-1)
    assert max(dataset.x_train.max(), dataset.y_train.max()) == pytest.approx(1)


def _trained_forecasts(trainer, variant, csv_path, **data):
    experiment = forecast_experiment(csv=str(csv_path), column="value", **data)
    dataset = make_dataset(experiment.data, 1, seed=0)
    seed_everything(0)
    model = build_model(experiment, variant, 1, seed=0)
    return np.array(list(TRAINERS[trainer](model, experiment, dataset, variant))[-1].forecasts)


@pytest.mark.parametrize("prime", [True, False])
@pytest.mark.parametrize("variant", ["stateful", "stateless"])
def test_nothing_from_the_future_reaches_a_forecast(tmp_path, variant, prime):
    """Changing a later test value moves no earlier forecast: not the scaler (fitted
    on the training part), not the windows, not the carried state."""
    values = read_series(DATA / "shampoo.csv", "sales")
    paths = []
    for name, series in (("original", values), ("changed", np.r_[values[:-4], values[-4] + 500, values[-3:]])):
        path = tmp_path / f"{name}.csv"
        path.write_text("value\n" + "\n".join(f"{value}" for value in series) + "\n")
        paths.append(path)
    original, changed = (_trained_forecasts("loop", variant, path, prime=prime) for path in paths)
    np.testing.assert_array_equal(original[:-3], changed[:-3])  # forecasts up to the changed month
    assert not np.allclose(original[-3:], changed[-3:])  # the month after sees the changed value


@pytest.mark.parametrize(
    "regime", [{"prime": True, "forecast_reset": "never"}, {"prime": False, "forecast_reset": "each"}]
)
@pytest.mark.parametrize("trainer", ["fit", "train_on_batch"])
def test_the_compiled_forecasts_equal_plain_keras_calls(trainer, regime):
    csv_path = DATA / "shampoo.csv"
    experiment = parse_experiment(
        {
            "data": {"task": "forecast", "csv": str(csv_path), "column": "sales", **regime},
            "model": {"units": 2},
            "train": {"batch_size": 2, "epochs": 3},
        }
    )
    dataset = make_dataset(experiment.data, 2, seed=0)
    results = {}
    for name in (trainer, "loop"):
        seed_everything(0)
        model = build_model(experiment, "stateful", 2, seed=0)
        results[name] = list(TRAINERS[name](model, experiment, dataset, "stateful"))
    for ours, reference in zip(results["loop"], results[trainer], strict=True):
        assert ours.test_rmse == pytest.approx(reference.test_rmse, rel=1e-5)
        np.testing.assert_allclose(ours.forecasts, reference.forecasts, rtol=1e-5)


def test_priming_and_resetting_change_the_stateful_forecasts():
    data = {"series": "shampoo"}
    forecasts = {}
    for regime in ({"prime": True}, {"prime": False}, {"prime": True, "forecast_reset": "each"}):
        experiment = forecast_experiment(**data, **regime)
        dataset = make_dataset(experiment.data, 1, seed=0)
        seed_everything(0)
        model = build_model(experiment, "stateful", 1, seed=0)
        forecasts[str(regime)] = list(TRAINERS["loop"](model, experiment, dataset, "stateful"))[-1].forecasts
    assert len({tuple(values) for values in forecasts.values()}) == 3


@pytest.mark.parametrize(
    ("text", "column", "fragments"),
    [
        (None, "value", ["does not exist"]),
        ("value\n1\n2\n", "sales", ["'sales' is not a column of", "its columns are value"]),
        ("value\n1\n2\nthree\n4\n", "value", ["row 4, column 'value' is not a finite number ('three')"]),
        ("value\n1\n\n", "value", ["row 3, column 'value' is empty"]),
        ("value\n" + "1\n" * 5, "value", ["the series has 5 values", "need at least 15"]),
        ("value\n" + "5\n" * 20 + "".join(f"{i}\n" for i in range(12)), "value", ["the training part", "is constant"]),
        (b"value\n\xff\xfe\n", "value", ["cannot be read as CSV text"]),
    ],
)
def test_bad_data_exits_2_in_one_line_and_writes_nothing(tmp_path, text, column, fragments):
    path = tmp_path / "series.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{task: forecast, csv: series.csv, column: {column}, difference: 1}}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 2, result.output
    problems = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert len(problems) == 1 and all(fragment in problems[0] for fragment in fragments), result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_csv_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text("month,value\n" + "".join(f"m{i},{i * i % 17}\n" for i in range(30)))
    config = tmp_path / "configs" / "mine.yaml"
    config.parent.mkdir()
    config.write_text("data: {task: forecast, csv: ../data/mine.csv, column: value}\n")
    result = CliRunner().invoke(main, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert f"csv: {tmp_path / 'data' / 'mine.csv'}" in result.output
    with pytest.raises(ConfigError, match="give one source"):
        parse_experiment({"data": {"task": "forecast", "series": "airline", "csv": "x.csv", "column": "v"}})


def test_the_readme_example_runs(tmp_path):
    from .conftest import ROOT

    config = ROOT / "examples" / "visitors.yaml"
    result = CliRunner().invoke(
        main, ["run", str(config), "--seeds", "2", "--set", "train.epochs=3", "--out", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "persistence_rmse" in result.output and (tmp_path / "forecasts.csv").exists()
