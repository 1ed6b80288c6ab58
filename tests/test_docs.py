"""Keep the README honest: every config key and every CLI command is documented,
and CI runs the README's test command."""

import re

from stateful_lab.cli import main
from stateful_lab.config.experiment import config_keys

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_config_key_is_in_the_readme_reference():
    section = README.split("## Config reference")[1]
    table = section[section.index("| key |") :].split("\n\n")[0]
    documented = set(re.findall(r"^\| `([\w.]+)` \|", table, flags=re.MULTILINE))
    assert documented == set(config_keys())


def test_every_command_is_in_the_readme():
    for command in main.commands:
        assert f"stateful-lab {command}" in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
