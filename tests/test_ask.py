"""`stateful-lab ask` and `stateful_lab.ask`: known-answer tests on tables built so
that the right answer is known (tests/ask_data.py builds them; each test says why
its answer must be what it is), the Python call, and bad input.

The known-answer tables are small (1,000-1,200 rows), and every run of them is a
full `ask`: 40 runs in two grouped programs, TensorFlow's compilation included."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import stateful_lab
from stateful_lab.answer.decide import comparisons, decide
from stateful_lab.answer.design import Question, design
from stateful_lab.cli import main
from stateful_lab.config.experiment import load_experiment
from stateful_lab.results.claims import evaluate_claims

from . import ask_data


def ask_json(tmp_path, csv, *options):
    out = tmp_path / "answer"
    result = CliRunner().invoke(
        main, ["ask", str(csv), "--out", str(out), "--format", "json", *options], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def verdicts(answer):
    return {row["claim"]: row["verdict"] for row in answer["comparisons"]}


# --- known answers ----------------------------------------------------------------


def test_a_value_set_at_each_sequences_start_is_carried_by_the_state(tmp_path):
    """One series of 30 sequences of 40 rows: a sequence's first row sets a sign
    (the marker), and every row's target is that sign times the row's own input.
    Nothing in a window of a few rows says the sign after the first few rows of a
    sequence, and the longest window ask may try (a quarter of the training rows,
    at most 24) is shorter than a sequence, so no stateless model can know it for
    most rows; a model that keeps the sign in its state can predict every row
    exactly. And the dependency shows inside a window (the rows right after the
    marker depend on it), so a stateful model's gradient can learn to keep it.
    The answer must be stateful."""
    answer, out = ask_json(tmp_path, ask_data.carried(tmp_path / "carried.csv"), "--target", "y", "--horizon", "0")
    assert answer["recommendation"] == "stateful", answer["reason"]
    assert answer["choices"]["train.batch_size"].startswith("one series")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert max(config["sweep"]["data.timesteps"]) < 40  # no window spans a sequence
    assert verdicts(answer)["longer_window_beats_baseline"] != "supported"


def test_a_copy_from_far_back_is_not_learned_by_the_state_without_a_gradient_to_it(tmp_path):
    """The target copies the input from 30 rows back, and the input is white noise:
    beyond every window tried (the longer one is 4 rows: nothing in the input's
    correlation with the target stands out below the cap of 24 lags), and with no
    dependency inside any window to learn from. A stateful model would have to
    learn to write each input into its state and keep it 30 steps, but its
    gradient never spans more than one window (the lab's collocated and lag_copy
    results), so it cannot. The answer must be baseline or inconclusive; it is
    baseline when every model's interval rules out beating the ridge regression
    (which predicts the mean)."""
    answer, _ = ask_json(tmp_path, ask_data.far_copy(tmp_path / "far.csv"), "--target", "y", "--horizon", "0")
    assert answer["recommendation"] in ("baseline", "inconclusive"), answer["reason"]
    assert not any(verdict == "supported" for verdict in verdicts(answer).values())


def test_a_target_made_of_its_own_rows_inputs_needs_no_state(tmp_path):
    """The target is the product of the two inputs on its own row: everything a
    model needs is in a window of one row, and no earlier row says anything more.
    A ridge regression cannot form a product, an LSTM can, so a stateless model
    beats the baseline; neither the state nor a longer window can add anything
    that matters. The answer must be stateless."""
    csv = ask_data.inside_window(tmp_path / "inside.csv")
    answer, _ = ask_json(tmp_path, csv, "--target", "y", "--horizon", "0", "--inputs", "a,b")
    assert answer["recommendation"] == "stateless", answer["reason"]


def test_pure_noise_is_best_left_to_a_baseline(tmp_path):
    """An input and a target, both white noise and independent: nothing predicts
    the next value better than its mean, which the ridge regression learns. No
    model can beat it by the size that matters. The answer must be baseline."""
    answer, _ = ask_json(tmp_path, ask_data.noise(tmp_path / "noise.csv"), "--target", "y")
    assert answer["recommendation"] == "baseline", answer["reason"]
    assert answer["metric"] == "test_rmse" and answer["min_difference"] > 0


def test_entities_each_carry_their_own_past_only(tmp_path):
    """24 series of 30-50 rows in one file, each with its own sign set at its own
    first row (as in the first test). Entities share lanes, one after another, and
    the forecasts walk each entity from a zero state, so a model knows an entity's
    sign only from that entity's own first row: per-lane resets make the state
    each entity's own, and a neighbour's history (another sign) would only
    mislead it. The answer must be stateful; the batch holds several entities
    side by side. The serving cost is measured here too: one prediction per
    model, and the stateful model at one row reads one step."""
    csv = ask_data.entities(tmp_path / "entities.csv")
    answer, out = ask_json(
        tmp_path, csv, "--target", "y", "--entity", "entity", "--order", "step", "--horizon", "0", "--serving"
    )
    assert answer["recommendation"] == "stateful", answer["reason"]
    config = load_experiment(out / "config.yaml")
    assert config.train.batch_size > 1 and "entities" in answer["choices"]["train.batch_size"]
    serving = {row["model"]: row for row in answer["serving"]}
    assert serving["stateful"]["steps"] == 1 and serving["longer_window"]["steps"] == config.sweep["data.timesteps"][1]
    assert all(row["microseconds"] > 0 for row in serving.values())


# --- the Python call -----------------------------------------------------------


def test_the_python_call_answers_from_a_dataframe_and_its_config_re_creates_it(tmp_path):
    """The target is the product of two inputs 3 rows back. The longer window (4
    rows, ask's shortest: the product has no linear correlation to find) holds
    both, a window of one row does not, and a ridge regression cannot form a
    product; a stateful model at one row cannot learn to keep two inputs for
    three steps (its gradient spans one row), and at 4 rows it sees what the
    stateless one sees. The answer must be stateless_longer_window."""
    frame = pd.read_csv(ask_data.near_product(tmp_path / "near.csv"))
    out = tmp_path / "asked"
    answer = stateful_lab.ask(frame, target="y", horizon=0, out=out, serving=False)
    assert isinstance(answer, stateful_lab.Answer)
    assert answer.recommendation == "stateless_longer_window", answer.reason
    assert set(answer.models["model"]) == {"stateless", "stateful", "longer_window", "stateful_longer_window"}
    assert answer.models.set_index("model").loc["longer_window", "window"] == 4
    assert {"config.yaml", "data.csv", "answer.json", "answer.md", "results"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "answer.json").read_text())["recommendation"] == answer.recommendation
    html = answer._repr_html_()
    assert "<table" in html and "stateless longer window" in html
    # Running the saved config again finds every run finished and gives the same verdicts.
    again = stateful_lab.run(answer.config, out=out / "results")
    made = design(Question((out / "data.csv").absolute(), "y", horizon=0))
    assert decide(made, again.verdicts, comparisons(made, again.verdicts, again.runs)).recommendation == (
        answer.recommendation
    )


# --- design, without training ------------------------------------------------------


def lagged(tmp_path, lag=7, rows=800):
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows + lag)
    y = 0.8 * x[:rows] + 0.3 * rng.normal(size=rows)
    path = tmp_path / "lagged.csv"
    pd.DataFrame({"x": x[lag:], "y": y}).to_csv(path, index=False)
    return path


def test_the_longer_window_spans_the_farthest_lag_that_stands_out(tmp_path):
    """y follows x 7 rows later: the correlation of x 7 rows back with y stands out
    far beyond noise, and no other lag's does, so the longer window is 8 rows."""
    made = design(Question(lagged(tmp_path), "y", inputs=["x"], horizon=0))
    assert made.longer == 8 and "'x' 7 rows back" in made.reasons["sweep.data.timesteps"]
    assert made.config["data"]["difference"] == 0 and made.metric == "test_rmse"


def test_a_wandering_target_is_differenced_and_labels_are_judged_by_accuracy(tmp_path):
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.normal(size=600))
    pd.DataFrame({"y": walk}).to_csv(tmp_path / "walk.csv", index=False)
    made = design(Question(tmp_path / "walk.csv", "y"))
    assert made.config["data"]["difference"] == 1 and "wanders" in made.reasons["data.difference"]
    pd.DataFrame({"x": walk, "up": (np.diff(walk, prepend=0) > 0).astype(int)}).to_csv(tmp_path / "l.csv", index=False)
    labels = design(Question(tmp_path / "l.csv", "up"))
    assert labels.config["data"]["kind"] == "binary" and labels.metric == "forecast_accuracy"
    assert labels.min_difference == 0.02 and labels.baseline.endswith("_accuracy")


def test_the_written_config_is_the_designed_one_with_its_reasons(tmp_path):
    made = design(Question(lagged(tmp_path), "y", inputs=["x"], horizon=0))
    text = made.yaml_text("header line")
    assert yaml.safe_load(text) == made.config
    assert text.startswith("# header line") and "# your table" in text and "  # min_difference" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    experiment = load_experiment(path)
    assert [claim.id for claim in experiment.claims] == [claim["id"] for claim in made.config["claims"]]


def test_open_comparisons_are_inconclusive_and_say_what_would_settle_them(tmp_path):
    """Made-up runs: every model about as good as the baseline, with the stateful
    ones scattered too widely for their interval to decide anything. No rule
    applies, so the answer is inconclusive, and each open comparison says how
    many seeds would settle it."""
    made = design(Question(lagged(tmp_path), "y", inputs=["x"], horizon=0))
    rng = np.random.default_rng(0)
    baseline = made.baselines[made.baseline_window][made.baseline]
    rows = []
    for point, variant, spread in (
        (1, "stateless", 0.001),
        (1, "stateful", 0.2),
        (8, "stateless", 0.001),
        (8, "stateful", 0.001),
    ):
        rows += [
            {"data.timesteps": point, "variant": variant, "seed": seed, "status": "ok"}
            | {"test_rmse": baseline + rng.normal(0, spread), made.baseline: baseline}
            for seed in range(10)
        ]
    runs = pd.DataFrame(rows)
    experiment_claims = load_claims(tmp_path, made)
    judged = evaluate_claims([(claim, runs, None) for claim in experiment_claims])
    table = comparisons(made, judged, runs)
    decision = decide(made, judged, table)
    assert decision.recommendation == "inconclusive"
    assert decision.settle and all("stateful" in line for line in decision.settle)
    assert any("seeds" in line for line in decision.settle)


def load_claims(tmp_path, made):
    path = tmp_path / "config.yaml"
    path.write_text(made.yaml_text("x"))
    return load_experiment(path).claims


# --- bad input ----------------------------------------------------------------------

NOISE = np.random.default_rng(0).normal(size=200).round(4)


@pytest.mark.parametrize(
    ("table", "options", "message"),
    [
        (
            {"x": range(200), "y": range(200)},
            ["--inputs", "x,y", "--horizon", "0"],
            "--inputs: the target 'y' is an input",
        ),
        (
            {"id": range(200), "x": range(200), "y": range(200)},
            ["--entity", "id"],
            "--entity: column 'id' has a different",
        ),
        ({"x": NOISE, "y": [3.0] * 200}, [], "--target: column 'y' is 3 on every training row"),
        ({"x": NOISE[:30], "y": NOISE[30:60]}, [], "ask needs at least"),
        ({"x": NOISE, "y": NOISE}, ["--target", "z"], "is not a column"),
        ({"x": NOISE, "y": ["a"] * 200}, ["--kind", "binary"], "a binary target has exactly two classes, got 1"),
    ],
)
def test_options_that_contradict_the_data_exit_2_with_one_line_and_write_nothing(tmp_path, table, options, message):
    csv = tmp_path / "data.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    out = tmp_path / "answer"
    args = ["ask", str(csv), "--out", str(out)] + (options if "--target" in options else ["--target", "y", *options])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert message in result.stderr and len([line for line in lines if line.startswith("Error")]) == 1
    assert not out.exists()
