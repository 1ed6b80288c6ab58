"""Before any training, a run's memory is estimated: what cannot fit is refused
(exit 2, with the estimate and what the machine has), what is merely slow is
warned about."""

import os

import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.config.experiment import parse_experiment
from stateful_lab.execution.resources import ResourceError, available_memory_bytes, check_resources, estimate

from .conftest import smoke


def test_the_estimate_grows_with_the_data_and_the_model():
    base = parse_experiment({"data": {"train_samples": 1024, "test_samples": 256}})
    assert estimate(base.override("data.train_samples=2048")).memory_bytes > estimate(base).memory_bytes
    assert estimate(base.override("model.units=64")).memory_bytes > estimate(base).memory_bytes
    wide = base.override("variants=[stateless, wide_window]")
    assert estimate(wide).memory_bytes > estimate(base).memory_bytes
    # the default: 3 seeds x 2 variants x 5 epochs x 256 batches of 4
    assert estimate(base).steps == 3 * 2 * 5 * 256
    assert estimate(base).memory_bytes < 10 * 2**20  # a few MB, nowhere near a refusal


@pytest.mark.parametrize(
    "override",
    [
        "data.train_samples=1000000000000",  # a trillion samples
        "data.sequence_length=1000000000",  # a billion time steps
        "model.units=1000000",
    ],
)
def test_what_cannot_fit_is_refused_before_anything_is_written(tmp_path, override):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *smoke("first_timestep", override), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "one run needs about" in result.output and "this machine has" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_sweep_is_judged_by_its_largest_point():
    experiment = parse_experiment(
        {"data": {"task": "lag_copy", "stream_length": 100}, "sweep": {"train.batch_size": [1, 10**7]}}
    )
    with pytest.raises(ResourceError, match="one run needs about"):
        check_resources(experiment, available=10**9)
    assert check_resources(experiment.override("sweep={train.batch_size: [1, 8]}"), available=10**9) == []


def test_what_is_merely_slow_gets_a_warning_and_runs():
    slow = parse_experiment({"train": {"epochs": 100_000}, "seeds": 30})
    (warning,) = check_resources(slow)
    assert "million batch steps" in warning and "it runs" in warning


def test_available_memory_is_a_share_of_the_machines_memory():
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 2**20 < available_memory_bytes() <= total  # more than a MB is free wherever tests run
