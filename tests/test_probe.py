"""Each probe check is a test: CI guards what the state does in Keras 3."""

import json

import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.diagnostics import probe


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("check", probe.CELL_CHECKS, ids=lambda check: check.__name__)
def test_probe_check_passes_for_every_cell(check, cell):
    result = check(cell)
    assert result.passed, f"{cell} {result.name}: {result.measured}"
    assert type(result.passed) is bool
    assert json.loads(json.dumps(result.as_dict()))["passed"] is True  # what probe --json prints


def test_layout_check_passes():
    result = probe.check_layout_continuity()
    assert result.passed, f"{result.name}: {result.measured}"
    assert type(result.passed) is bool
    assert json.loads(json.dumps(result.as_dict()))["passed"] is True  # what probe --json prints


def test_probe_cli_prints_one_line_per_check_and_fails_on_a_failure(monkeypatch):
    fake = [probe.Check("a", "1.0", True, "x"), probe.Check("b", "2.0", False, "y")]
    monkeypatch.setattr(probe, "run_checks", lambda cell: fake)
    result = CliRunner().invoke(main, ["probe"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["PASS  a  1.0", "FAIL  b  2.0"]

    result = CliRunner().invoke(main, ["probe", "--json"])
    assert result.exit_code == 1
    assert [item["passed"] for item in json.loads(result.output)] == [True, False]


def test_probe_cli_exits_0_when_all_pass(monkeypatch):
    monkeypatch.setattr(probe, "run_checks", lambda cell: [probe.Check("a", "1.0", True, "x")])
    assert CliRunner().invoke(main, ["probe"]).exit_code == 0
    result = CliRunner().invoke(main, ["probe", "--cell", "all"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == ["lstm", "gru", "simple_rnn"]
