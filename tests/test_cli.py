"""The command line's surface: help with examples, version, and refusing an
output folder it cannot write before any training."""

import pytest
from click.testing import CliRunner

from stateful_lab.cli import main

from .conftest import smoke_experiment

GOOD = smoke_experiment("first_timestep").to_yaml()


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_run_rejects_an_unwritable_output_folder(write_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("run", write_config(GOOD), "--out", blocker / "results")
    assert result.exit_code == 2
    assert "cannot write to" in result.output


@pytest.mark.parametrize("command", [[], *([name] for name in main.commands)], ids=lambda c: c[0] if c else "group")
def test_help_ends_with_an_example(command):
    result = invoke(*command, "-h")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "stateful-lab " in result.output.split("Example:")[1]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and "stateful-lab, version" in result.output
