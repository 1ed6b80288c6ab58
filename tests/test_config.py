"""The config: every bad input exits 2 with a line naming the key and the fix (no
traceback); defaults and derived values are filled; sweeps expand as the config
says; settings change only through validation."""

import pytest
import yaml
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.config.experiment import ConfigError, load_experiment, parse_experiment

from .conftest import CONFIGS, smoke_experiment

GOOD = smoke_experiment("first_timestep").to_yaml()


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_config_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("data.taks=collocated", ["data.taks: unknown key", "did you mean data.task"]),
        ("bogus=1", ["bogus: unknown key"]),
        ("train.batch_size=four", ["train.batch_size: got 'four'", "integer"]),
        ("train.batch_size=0", ["train.batch_size: got 0", "greater than or equal to 1"]),
        ("train.epochs=0", ["train.epochs: got 0", "greater than or equal to 1"]),
        ("train.learning_rate=-1", ["train.learning_rate: got -1", "greater than 0"]),
        ("data.task=sudoku", ["data.task: got 'sudoku'", "'first_timestep'"]),
        ("train.reset=sometimes", ["train.reset: got 'sometimes'", "'epoch', 'never', 'sequence' or 'batch'"]),
        ("variants=[stateless, statefull]", ["variants[1]: got 'statefull'"]),
        ("train.shuffle=true", ["train.shuffle: true cannot be used with a stateful variant"]),
        ("train.batch_size=64", ["train.batch_size: 64 is larger than data.train_samples (32)"]),
        ("data.layout=blocks", ["data.layout: not used by task first_timestep; remove it"]),
        ("seeds=[1, a]", ["seeds[1]: got 'a'"]),
        ("seeds=0", ["seeds: 0 must be at least 1"]),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(write_config, override, fragments):
    result = invoke("validate", write_config(GOOD), "--set", override)
    assert_config_error(result, *fragments)


def test_every_problem_is_reported_at_once(write_config):
    path = write_config(GOOD)
    result = invoke("validate", path, "--set", "train.epochs=0", "--set", "model.unitz=3")
    assert_config_error(result, "train.epochs", "model.unitz")


def test_shuffle_is_allowed_for_stateless_only_runs_with_a_shuffling_trainer(write_config):
    result = invoke(
        "validate",
        write_config(GOOD),
        "--set",
        "train.shuffle=true",
        "--set",
        "variants=[stateless]",
        "--set",
        "train.trainer=fit",
    )
    assert result.exit_code == 0, result.output
    result = invoke("validate", write_config(GOOD), "--set", "train.shuffle=true", "--set", "variants=[stateless]")
    assert_config_error(result, "train.shuffle: true needs train.trainer fit or train_on_batch")


def test_strict_rejects_instead_of_trimming(write_config):
    path = write_config(GOOD)
    result = invoke("validate", path, "--set", "data.train_samples=30", "--set", "data.strict=true")
    assert_config_error(result, "data.train_samples: 30 is not a multiple of train.batch_size 4")


def test_missing_file(tmp_path):
    result = invoke("run", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_empty_file(write_config):
    assert_config_error(invoke("run", write_config("")), "the config file is empty")


def test_yaml_syntax_error_gives_the_line(write_config):
    path = write_config("name: x\ndata:\n  task: [first_timestep\ntrain: {}\n")
    assert_config_error(invoke("validate", path), "YAML syntax error", "line 4")


def test_top_level_must_be_a_mapping(write_config):
    assert_config_error(invoke("validate", write_config("- 1\n- 2\n")), "must be a mapping")


def test_set_without_equals_sign(write_config):
    assert_config_error(invoke("validate", write_config(GOOD), "--set", "train.epochs"), "expected KEY=VALUE")


def test_set_into_a_value_is_an_error(write_config):
    assert_config_error(invoke("validate", write_config(GOOD), "--set", "seeds.x=1"), "seeds is a value, not a section")


def test_run_rejects_bad_config_before_writing_anything(write_config, tmp_path):
    out = tmp_path / "out"
    result = invoke("run", write_config(GOOD), "--out", out, "--set", "train.epochs=0")
    assert_config_error(result, "train.epochs")
    assert not out.exists()


def test_validate_prints_the_resolved_config_with_overrides(write_config):
    result = invoke("validate", write_config(GOOD), "--set", "train.epochs=7")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["train"]["epochs"] == 7
    assert resolved["model"]["output_activation"] == "sigmoid"  # derived from the task
    assert resolved["model"]["units"] == [3]


def test_resolved_config_validates_to_itself(write_config):
    first = invoke("validate", write_config(GOOD))
    again = invoke("validate", write_config(first.output, name="resolved.yaml"))
    assert again.exit_code == 0, again.output
    assert again.output == first.output


@pytest.mark.parametrize("config", sorted(CONFIGS.rglob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_config_is_valid(config):
    result = invoke("validate", config)
    assert result.exit_code == 0, result.output


def test_exponent_notation_is_a_number_in_files_and_overrides(write_config):
    path = write_config(GOOD.replace("learning_rate: 0.001", "learning_rate: 1e-3"))
    result = invoke("validate", path, "--set", "train.clipnorm=1e0")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["train"]["learning_rate"] == 0.001 and resolved["train"]["clipnorm"] == 1.0


# --- sweeps and claims ------------------------------------------------------------


def test_sweep_runs_the_cartesian_product_with_each_value_applied():
    experiment = parse_experiment(
        {
            "data": {"task": "lag_copy", "stream_length": 100},
            "sweep": {"data.lag": [0, 2, 4], "train.batch_size": [1, 8]},
        }
    )
    points = experiment.points
    assert [point for point, _ in points] == [
        {"data.lag": lag, "train.batch_size": batch} for lag in (0, 2, 4) for batch in (1, 8)
    ]
    for point, resolved in points:
        assert resolved.data.lag == point["data.lag"]
        assert resolved.train.batch_size == point["train.batch_size"]
        assert not resolved.sweep


def test_no_sweep_is_one_point_of_the_experiment_itself():
    experiment = parse_experiment({})
    assert experiment.points == [({}, experiment)]


def test_validate_lists_the_sweep_points(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(CONFIGS / "reset_policy.yaml")])
    assert result.exit_code == 0, result.output
    assert "# sweep: 2 points x 30 seeds x 1 variants = 60 runs" in result.output
    assert "#   train.reset=epoch" in result.output and "#   train.reset=never" in result.output


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"data.lagg": [1]}, "sweep.data.lagg: not a key that can be swept; did you mean data.lag?"),
        ({"seeds": [1, 2]}, "sweep.seeds: not a key that can be swept"),
        ({"data.lag": []}, "sweep.data.lag: the list of values is empty"),
        ({"data.lag": [1, -1]}, "sweep point data.lag=-1: data.lag: got -1"),
    ],
)
def test_bad_sweeps_exit_2_naming_the_key(tmp_path, sweep, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"data": {"task": "lag_copy"}, "sweep": sweep}))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_claims_must_select_what_exists(tmp_path):
    bad = {
        "id": "x",
        "kind": "claim",
        "source": "s",
        "statement": "s",
        "expect": {"metric": "test_accuracy", "test": "greater", "select": {"data.lag": 2}},
    }
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": [bad]}))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "claims[0] (x): test greater needs expect.versus" in result.output
    assert "selects by 'data.lag', which is neither variant nor a swept key" in result.output


def test_claim_configs_run_30_seeds_or_say_why_fewer():
    for path in sorted(CONFIGS.glob("*.yaml")):
        seeds = len(load_experiment(path).seed_list)
        line = next(line for line in path.read_text().splitlines() if line.startswith("seeds:"))
        assert seeds >= 30 or (seeds >= 10 and "# fewer than 30:" in line), f"{path.name}: 30 seeds, or say why fewer"


# --- one home per concept --------------------------------------------------------


def test_config_names_no_task_and_every_task_default_is_filled():
    from stateful_lab.tasks import TASKS

    source = (CONFIGS.parent / "stateful_lab" / "config" / "experiment.py").read_text()
    for task in TASKS:
        assert f'"{task}"' not in source, f"config.py names task {task}"
    resolved = yaml.safe_load(parse_experiment({"data": {"timesteps": 7}}).to_yaml())
    assert resolved["data"]["task"] == "first_timestep"
    assert resolved["data"]["sequence_length"] == 7  # a default that depends on another key


def test_settings_change_only_through_validation():
    experiment = parse_experiment({"data": {"train_samples": 64}})
    with pytest.raises(TypeError, match="override"):
        experiment.model_copy(update={"train": experiment.train})
    assert experiment.override("train.reset=never").train.reset == "never"
    with pytest.raises(ConfigError, match="train.reset: sequence needs sequences longer than one window"):
        experiment.override("train.reset=sequence")


def test_sweep_points_follow_the_experiment_they_belong_to():
    experiment = parse_experiment({"sweep": {"train.batch_size": [1, 4]}})
    changed = experiment.override("train.epochs=7", "sweep={train.batch_size: [2, 8, 16]}")
    assert [point["train.batch_size"] for point, _ in changed.points] == [2, 8, 16]
    assert all(resolved.train.epochs == 7 for _, resolved in changed.points)
    assert [point["train.batch_size"] for point, _ in experiment.points] == [1, 4]


def test_values_read_back_with_their_config_types():
    experiment = parse_experiment(
        {
            "sweep": {"train.clipnorm": [0.5, 1]},
            "claims": [
                {
                    "id": "c",
                    "kind": "claim",
                    "source": "s",
                    "statement": "s",
                    "expect": {
                        "metric": "test_loss",
                        "test": "at_most",
                        "value": 1,
                        "select": {"train.clipnorm": 1, "variant": "stateful"},
                    },
                }
            ],
        }
    )
    assert experiment.claims[0].expect.select == {"train.clipnorm": 1.0, "variant": "stateful"}
    assert experiment.typed("train.clipnorm", "1") == experiment.typed("train.clipnorm", 1) == 1.0
    assert experiment.typed("train.batch_size", "4") == 4
    assert experiment.typed("train.reset", "never") == "never"
    assert experiment.typed("model.units", "[3, 8]") == (3, 8)
    assert experiment.typed("variant", "stateless") == "stateless"


# --- hostile and careless input ----------------------------------------------------


def test_text_that_is_not_utf8_names_the_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: caf\xe9\n".encode("latin-1"))
    assert_config_error(
        invoke("validate", path), f"{path}: not UTF-8 text", "byte 0xe9 at offset 16", "save the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("train:\n  epochs: 2\ntrain:\n  batch_size: 4\n", ["key 'train' at line 3 repeats the one at line 1"]),
        ("train:\n  epochs: 2\n  batch_size: 4\n  epochs: 3\n", ["key 'epochs' at line 4 repeats the one at line 2"]),
        ("claims:\n  - {id: a, id: b}\n", ["key 'id' at line 2 repeats the one at line 2"]),
    ],
)
def test_a_key_written_twice_in_one_mapping_is_an_error(write_config, text, fragments):
    assert_config_error(invoke("validate", write_config(text)), *fragments, "keep one of them")


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("model.units=[]", ["model.units: got []", "at least 1"]),
        ("variants=[]", ["variants: got []", "at least 1"]),
        ("seeds=[]", ["seeds: the list is empty"]),
        ("sweep={train.epochs: []}", ["sweep.train.epochs: the list of values is empty"]),
        ("train.learning_rate=.inf", ["train.learning_rate: got inf", "finite number"]),
        ("train.clipnorm=.nan", ["train.clipnorm: got nan", "finite number"]),
        ("sweep={train.learning_rate: [0.1, -.inf]}", ["sweep point train.learning_rate=-inf", "finite number"]),
        ("name=../elsewhere", ["name: '../elsewhere' is not a plain folder name", "letters, digits"]),
        ("name=/tmp/results", ["name: '/tmp/results' is not a plain folder name"]),
        ("name=.hidden", ["name: '.hidden' is not a plain folder name"]),
    ],
)
def test_values_that_cannot_mean_anything_are_refused(write_config, override, fragments):
    assert_config_error(invoke("validate", write_config(GOOD), "--set", override), *fragments)


def test_a_claim_threshold_must_be_finite(write_config):
    text = (
        "claims:\n  - {id: c, kind: claim, source: s, statement: s,\n"
        "     expect: {metric: test_loss, test: at_most, value: .inf}}\n"
    )
    assert_config_error(invoke("validate", write_config(text)), "claims[0].expect.value: got inf", "finite number")


def test_every_declared_min_difference_says_why():
    """A claim's smallest difference that matters comes with a comment giving the
    reason, in the lines of its claim above the expectation."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if "min_difference:" not in line:
                continue
            claim_start = max(i for i in range(index + 1) if lines[i].lstrip().startswith("- id:"))
            comments = [text for text in lines[claim_start:index] if text.lstrip().startswith("#")]
            assert comments, f"{path.name} line {index + 1}: say why this min_difference, in a comment above it"
