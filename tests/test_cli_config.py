"""Every bad input exits 2 with a line naming the key and the fix; no traceback."""

import pytest
import yaml
from click.testing import CliRunner

from stateful_lab.cli import main

from .conftest import CONFIGS

GOOD = (CONFIGS / "smoke" / "first_timestep.yaml").read_text()


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
    result = invoke("validate", write_config(GOOD), "--set", "train.shuffle=true",
                    "--set", "variants=[stateless]", "--set", "train.trainer=fit")
    assert result.exit_code == 0, result.output
    result = invoke("validate", write_config(GOOD), "--set", "train.shuffle=true",
                    "--set", "variants=[stateless]")
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
    assert_config_error(invoke("validate", write_config(GOOD), "--set", "train.epochs"),
                        "expected KEY=VALUE")


def test_set_into_a_value_is_an_error(write_config):
    assert_config_error(invoke("validate", write_config(GOOD), "--set", "seeds.x=1"),
                        "seeds is a value, not a section")


def test_run_rejects_bad_config_before_writing_anything(write_config, tmp_path):
    out = tmp_path / "out"
    result = invoke("run", write_config(GOOD), "--out", out, "--set", "train.epochs=0")
    assert_config_error(result, "train.epochs")
    assert not out.exists()


def test_run_rejects_an_unwritable_output_folder(write_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("run", write_config(GOOD), "--out", blocker / "results")
    assert result.exit_code == 2
    assert "cannot write to" in result.output


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


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["probe"]])
def test_help_ends_with_an_example(command):
    result = invoke(*command, "-h")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "stateful-lab " in result.output.split("Example:")[1]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "stateful-lab, version" in result.output


def test_exponent_notation_is_a_number_in_files_and_overrides(write_config):
    path = write_config(GOOD.replace("learning_rate: 0.001", "learning_rate: 1e-3"))
    result = invoke("validate", path, "--set", "train.clipnorm=1e0")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["train"]["learning_rate"] == 0.001 and resolved["train"]["clipnorm"] == 1.0
