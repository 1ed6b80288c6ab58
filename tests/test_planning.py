"""Planning: which runs train together, in what groups, in what order, as a pure
function of the configs, so that neither --jobs, nor the memory free, nor what
else runs or is already stored changes a single figure."""

import pandas as pd
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.execution import plan as planning
from stateful_lab.execution import resources
from stateful_lab.execution.plan import plan
from stateful_lab.runs.unit import Unit, plan_units
from stateful_lab.training import engine
from stateful_lab.training.engine import train_group
from stateful_lab.training.grouped.sizing import even_sizes, group_size, padded, size_sensitive, split_sizes

from .conftest import smoke, smoke_experiment


@pytest.mark.parametrize(
    ("runs", "largest", "split", "even"),
    [(7, 3, [3, 2, 2], [3, 2, 2]), (6, 6, [6], [6]), (5, 0, [1] * 5, [1] * 5), (12, 5, [4, 4, 4], [4, 4, 4])],
)
def test_group_sizes_are_as_equal_as_possible(runs, largest, split, even):
    assert split_sizes(runs, largest) == split
    assert even_sizes(runs, largest) == even


def test_groups_are_filled_up_to_whole_vectors_of_runs_from_nine_runs_on():
    assert [padded(runs) for runs in (1, 2, 8, 9, 16, 20, 500, 504)] == [1, 2, 8, 16, 16, 24, 504, 504]


def test_runs_are_grouped_by_program_settings_and_time_claims_stay_alone():
    experiment = smoke_experiment("lag_copy")  # lags differ in data values only: one program
    items = plan(plan_units(experiment))
    assert len(items) == 1 and len(items[0]) == len(plan_units(experiment))
    # two configs, two tasks, one program: one group
    both = plan_units(smoke_experiment("first_timestep")) + plan_units(smoke_experiment("collocated"))
    assert len(plan(both)) == 1
    batch_sizes = smoke_experiment("batch_size")  # batch sizes change shapes: a program each
    assert len(plan(plan_units(batch_sizes))) == len(batch_sizes.points)
    wide = smoke_experiment("collocated_wide_window")  # wide_window's windows are longer
    assert sorted(len(item) for item in plan(plan_units(wide))) == [2, 4]
    timed = smoke_experiment("training_time")
    assert all(len(item) == 1 for item in plan(plan_units(timed)))
    isolated = smoke_experiment("memory")
    assert all(len(item) == 1 for item in plan(plan_units(isolated)))


def test_long_groups_are_cut_into_equal_parts_longest_first(monkeypatch):
    units = plan_units(smoke_experiment("lag_copy", "seeds=20"))
    per_run = 3 * planning.PART_SECONDS / len(units)  # three parts' worth of compute

    def estimate(item):
        return planning.COMPILE_SECONDS + per_run * len(item)

    monkeypatch.setattr(planning, "estimated_seconds", estimate)
    items = plan(units)
    assert sum(items, []) == units  # cut in order, nothing lost
    assert len(items) >= 3 and len({len(item) for item in items}) == 1  # equal parts: one program serves them
    assert all(estimate(item) - planning.COMPILE_SECONDS <= planning.PART_SECONDS for item in items)
    short = plan(units[:6])
    assert len(short) == 1  # too little compute to pay for a second compilation


def test_a_size_sensitive_program_trains_in_groups_of_exactly_its_size(monkeypatch):
    """The plan keeps whole groups in a work item; the engine trains them one
    after another, each of exactly `group_size` runs, the last filled up."""
    stacked = smoke_experiment("stacked_clipnorm", "seeds=7")
    units = plan_units(stacked)
    assert size_sensitive(stacked, "stateful") and not size_sensitive(smoke_experiment("first_timestep"), "stateful")
    size = group_size(stacked, "stateful")
    assert 1 < size < len(units)
    items = plan(units)
    assert all(len(item) % size == 0 for item in items[:-1]) and sum(items, []) == units
    calls = []

    class Spy:
        def __init__(self, items, shapes, size, slot=0, sharing=1):
            calls.append((len(items), size))
            self.items = items

        def train(self):
            return [unit.result() for unit, _, _ in self.items]

    monkeypatch.setattr(engine, "Together", Spy)
    train_group(units)
    assert calls == [(size, size)] * (len(units) // size) + [(len(units) % size, size)]


def test_a_size_sensitive_run_gives_identical_figures_alone_and_in_a_full_group():
    """A large layer's products take XLA's batched kernel, whose rounding can
    depend on how many runs the batch holds; the engine fills every group of
    such a program up to its fixed size, so a run resumed alone equals the same
    run trained with the others, bit for bit."""
    stacked = smoke_experiment("stacked_clipnorm", "seeds=[0,1,2]", "variants=[stateful]")
    point, experiment = stacked.points[0]
    units = [Unit(point, "stateful", seed, experiment) for seed in (0, 1, 2)]
    alone = train_group(units[:1])[0]
    together = train_group(units)[0]
    assert alone.label == together.label == "seed 0 stateful"
    assert [vars(epoch) | {"seconds": 0} for epoch in alone.epochs] == [
        vars(epoch) | {"seconds": 0} for epoch in together.epochs
    ]


def test_jobs_and_memory_change_no_figure(tmp_path, monkeypatch):
    """stacked_clipnorm's large layers with --jobs 1, --jobs 2, and --jobs 2 in
    a memory that holds one group at a time: every figure identical."""
    arguments = [*smoke("stacked_clipnorm", "seeds=5"), "--quiet"]
    runner = CliRunner()
    tables = {}
    for name, jobs, memory in (("one", 1, None), ("two", 2, None), ("short", 2, 1)):
        if memory is not None:
            largest = resources.largest_group_bytes(smoke_experiment("stacked_clipnorm", "seeds=5"))
            monkeypatch.setattr(resources, "available_memory_bytes", lambda largest=largest: largest * 3 // 2)
        result = runner.invoke(main, ["run", *arguments, "--jobs", str(jobs), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        if memory is not None:
            assert "1 worker instead of 2" in result.output
        tables[name] = pd.read_csv(tmp_path / name / "epochs.csv").drop(columns=["seconds"])
    assert len(tables["one"]) == 2 * 5 * 2  # variants x seeds x epochs
    pd.testing.assert_frame_equal(tables["one"], tables["two"], check_exact=True)
    pd.testing.assert_frame_equal(tables["one"], tables["short"], check_exact=True)
