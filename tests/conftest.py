import json
import os
from pathlib import Path

import pytest
from hypothesis import settings

from stateful_lab.config.experiment import load_experiment

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one TensorFlow thread pool each
    # (tiny models gain nothing from more), inherited by the processes they start,
    # so the workers do not fight over the cores. Set before TensorFlow starts.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
EXAMPLES = ROOT / "examples"
SMOKE_EPOCHS = 2


def smoke_overrides(path: Path) -> list[str]:
    """`--set` overrides that shrink a real config to a smoke run of a few seconds:
    2 epochs, 2 seeds (1 when every run is its own process), each task's tiny
    sizes, and each sweep cut to its ends and the values its claims select. The
    rest (task, variants, sweep keys, claims) is the real config's, so a claim's
    selection is exercised against the real structure."""
    experiment = load_experiment(path)
    points = [point for _, point in experiment.points]
    largest_batch = max(point.train.batch_size for point in points)
    tiny: dict[str, int] = {}
    for point in points:
        for key, value in point.data.tiny(largest_batch).items():
            tiny[key] = max(value, tiny.get(key, value))
    overrides = [
        f"name=smoke_{experiment.name}",
        f"train.epochs={SMOKE_EPOCHS}",
        f"seeds={1 if experiment.train.isolate else 2}",
    ]
    overrides += [f"data.{key}={value}" for key, value in tiny.items()]
    if experiment.train.trainer == "fit" and not experiment.train.isolate and "train.trainer" not in experiment.sweep:
        # The trainers are held equal in test_trainers; here a batch-1 fit epoch of the
        # tiny sizes (batch_time.yaml) would take seconds, the compiled loop a fraction.
        overrides.append("train.trainer=loop")
    if experiment.sweep:
        overrides.append("sweep=" + json.dumps(_shrunk_sweep(experiment)))
    return overrides


def _shrunk_sweep(experiment) -> dict[str, list]:
    selected: dict[str, list] = {}
    for claim in experiment.claims:
        for select in (claim.expect.select, claim.expect.versus or {}):
            for key, value in select.items():
                selected.setdefault(key, []).append(value)
    return {
        key: [
            value
            for index, value in enumerate(values)
            if index in (0, len(values) - 1) or value in selected.get(key, [])
        ]
        for key, values in experiment.sweep.items()
    }


def smoke(name: str, *more: str) -> list[str]:
    """CLI arguments for a smoke run of configs/NAME.yaml, with `more` --set overrides."""
    path = CONFIGS / f"{name}.yaml"
    return [str(path), *(arg for item in [*smoke_overrides(path), *more] for arg in ("--set", item))]


def smoke_experiment(name: str | Path, *more: str):
    """The Experiment of a smoke run of configs/NAME.yaml (or of the config at a path)."""
    path = name if isinstance(name, Path) else CONFIGS / f"{name}.yaml"
    return load_experiment(path, [*smoke_overrides(path), *more])


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config text to a file and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# Example budgets for the property tests: `ci` keeps them to a few seconds; run
# longer with `pytest --hypothesis-profile long` or STATEFUL_LAB_HYPOTHESIS_PROFILE=long.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True)
settings.register_profile("long", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("STATEFUL_LAB_HYPOTHESIS_PROFILE", "ci"))
