"""The package's layers: data flows config -> tasks -> runs -> training ->
execution -> results, the CLI on top; each folder imports only what sits below
it, and the results side never imports TensorFlow."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "stateful_lab"

MAY_NOT_IMPORT = {
    "config": ["runs", "training", "execution", "results", "diagnostics", "cli", "api"],
    "tasks": ["runs", "training", "execution", "results", "diagnostics", "cli", "api"],
    "runs": ["training", "execution", "results", "diagnostics", "cli", "api"],
    "training": ["execution", "results", "diagnostics", "cli", "api"],
    "execution": ["diagnostics", "cli", "api"],
    "results": ["training", "execution", "diagnostics", "cli", "api"],
    "diagnostics": ["execution", "results", "cli", "api"],
    "answer": ["diagnostics", "cli"],
}
"""What each folder must not import (docs/design.md, "Data flow")."""


def imported_by(path: Path) -> set[str]:
    """The stateful_lab modules a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stateful_lab"):
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("stateful_lab")}
    return names


@pytest.mark.parametrize("folder", sorted(MAY_NOT_IMPORT))
def test_each_folder_imports_only_what_sits_below_it(folder):
    forbidden = tuple(f"stateful_lab.{name}" for name in MAY_NOT_IMPORT[folder])
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files
    wrong = {
        str(path.relative_to(ROOT)): sorted(name for name in imported_by(path) if name.startswith(forbidden))
        for path in files
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_run_checks_and_plans_a_config_before_importing_tensorflow():
    """A pooled run starts its workers (each importing TensorFlow) before this
    process imports its own: everything `run` does before that must not load it."""
    script = """
import sys
from stateful_lab.cli import main
from stateful_lab.config.experiment import load_experiment
from stateful_lab.execution import session
from stateful_lab.execution.resources import check_resources, check_size, workers_for
experiment = load_experiment("configs/stacked_clipnorm.yaml")
check_size(experiment)
check_resources(experiment)
assert workers_for([experiment], 2) >= 1
print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
"""
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_the_results_side_runs_without_tensorflow(tmp_path):
    """Every module under results/ imported, and show, compare and report run on a
    small folder, in a fresh process that never loads TensorFlow or Keras."""
    for name in ("first_timestep", "lag_copy"):
        shutil.copytree(ROOT / "results" / name, tmp_path / name)
    modules = sorted(
        "stateful_lab." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in (PACKAGE / "results").glob("*.py")
    )
    script = f"""
import importlib, sys
from click.testing import CliRunner
from stateful_lab.cli import main
for module in {modules!r}:
    importlib.import_module(module)
folder = {str(tmp_path)!r}
commands = [
    ["show", folder],
    ["compare", folder + "/lag_copy", "--a", "variant=stateful", "--b", "variant=stateless", "--at", "data.lag=2"],
    ["report", folder, "--no-probe"],
]
for command in commands:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, (command, result.output)
print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
"""
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "REPORT.md").read_text().count("## ") >= 2  # a section per config
    assert len(modules) >= 7
