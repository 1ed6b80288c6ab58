"""Keep the README honest: every config key and every CLI command is documented,
and CI runs the README's test command."""

import re

from pydantic import BaseModel

from stateful_lab.cli import main
from stateful_lab.config import Experiment

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += dotted_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_in_the_readme_reference():
    reference = README.split("## Config reference")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([\w.]+)` \|", reference, flags=re.MULTILINE))
    assert documented == set(dotted_keys(Experiment))


def test_every_command_is_in_the_readme():
    for command in main.commands:
        assert f"stateful-lab {command}" in README


def test_ci_runs_the_readme_test_command():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
