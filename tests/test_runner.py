"""Runs that survive: finished work is skipped, interruptions resume, parallel
workers and a Dask cluster give the numbers of a plain run, and one bad run never
costs the rest."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.execution import backends
from stateful_lab.training import engine, trainers

from .conftest import ROOT, smoke

SIX_RUNS = smoke("collocated_wide_window")  # 2 seeds x 3 variants
ONE_AT_A_TIME = smoke("collocated_wide_window", "train.group=false")
"""The six runs trained one at a time, so that an interruption finds some stored and
some not (a group's runs are stored together when the group ends); the same numbers
as the grouped runs within 1e-5 (tests/test_grouped.py)."""
FOUR_RUNS = smoke("first_timestep")  # 2 seeds x 2 variants


def run_cli(*args):
    return CliRunner().invoke(main, ["run", *map(str, args), "--quiet"])


def numbers(folder):
    """epochs.csv without the wall-clock column."""
    return pd.read_csv(folder / "epochs.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*SIX_RUNS, "--out", out)
    assert result.exit_code == 0, result.output
    return numbers(out)


def test_rerun_skips_finished_runs_and_force_runs_them_again(tmp_path):
    assert run_cli(*FOUR_RUNS, "--out", tmp_path).exit_code == 0
    first = numbers(tmp_path)
    again = run_cli(*FOUR_RUNS, "--out", tmp_path)
    assert "skipped 4 finished runs; --force to re-run them" in again.output
    assert "ran 0 of 4 runs" in again.output
    pd.testing.assert_frame_equal(numbers(tmp_path), first)
    forced = run_cli(*FOUR_RUNS, "--out", tmp_path, "--force")
    assert "ran 4 of 4 runs" in forced.output
    pd.testing.assert_frame_equal(numbers(tmp_path), first)


def test_a_changed_config_gets_new_runs_and_old_results_stay_out(tmp_path):
    assert run_cli(*FOUR_RUNS, "--out", tmp_path, "--set", "train.epochs=1").exit_code == 0
    result = run_cli(*FOUR_RUNS, "--out", tmp_path, "--set", "train.epochs=3")
    assert "ran 4 of 4 runs" in result.output
    epochs = numbers(tmp_path)
    assert sorted(epochs["epoch"].unique()) == [0, 1, 2]
    assert len(epochs) == 2 * 2 * 3  # only the new config's runs
    assert len(list((tmp_path / "units").glob("*.json"))) == 8  # the old ones are kept, unused


@pytest.mark.parametrize(
    ("signum", "code", "jobs"), [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 2)], ids=["SIGINT", "SIGTERM-jobs2"]
)
def test_interrupted_run_keeps_finished_work_and_resumes_to_the_same_numbers(
    tmp_path, uninterrupted, signum, code, jobs
):
    units = tmp_path / "units"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stateful_lab",
            "run",
            *ONE_AT_A_TIME,
            "--out",
            str(tmp_path),
            "--quiet",
            "--jobs",
            str(jobs),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (units.exists() and any(units.glob("*.json"))):
        assert process.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    finished = list(units.glob("*.json"))
    assert 1 <= len(finished) < 6
    for path in finished:
        assert json.loads(path.read_text())["status"] == "ok"  # whole files only
    assert not list(tmp_path.rglob("*.tmp"))
    assert not (tmp_path / "epochs.csv").exists()  # nothing half-summarized

    resumed = run_cli(*ONE_AT_A_TIME, "--out", tmp_path)
    assert resumed.exit_code == 0, resumed.output
    assert f"skipped {len(finished)} finished runs" in resumed.output
    pd.testing.assert_frame_equal(numbers(tmp_path), uninterrupted)


def test_two_jobs_give_the_numbers_of_one(tmp_path, uninterrupted):
    result = run_cli(*SIX_RUNS, "--out", tmp_path, "--jobs", "2")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(numbers(tmp_path), uninterrupted)


def test_the_pool_waits_for_unfinished_work_without_spinning(monkeypatch):
    """A config whose work is partly done must not make `finished` poll: waiting
    on a set that holds a done future returns at once, and the main process spun
    on a core the workers needed."""
    import threading
    from concurrent.futures import Future

    done, pending = Future(), Future()
    done.set_result(None)
    pool = backends.WorkPool.__new__(backends.WorkPool)
    pool.futures = [[done], [done, pending]]
    waits = []
    real_wait = backends.wait
    monkeypatch.setattr(backends, "wait", lambda *args, **kwargs: waits.append(1) or real_wait(*args, **kwargs))
    threading.Timer(0.3, pending.set_result, (None,)).start()
    assert list(pool.finished()) == [0, 1]
    assert len(waits) <= 2


def test_a_config_whose_work_ended_while_another_was_written_comes_next():
    """Work that ends while this process writes a config's results is noticed
    before waiting again: waiting only on what is unfinished would otherwise wait
    for the next item of other work (measured: a config written 23 s late)."""
    import threading
    from concurrent.futures import Future

    done, ends_during_writing, later = Future(), Future(), Future()
    done.set_result(None)
    pool = backends.WorkPool.__new__(backends.WorkPool)
    pool.futures = [[done], [ends_during_writing], [later]]
    threading.Timer(5, later.set_result, (None,)).start()
    configs = pool.finished()
    assert next(configs) == 0
    ends_during_writing.set_result(None)  # while config 0 is written
    assert next(configs) == 1 and not later.done()
    assert list(configs) == [2]


def test_a_dask_cluster_gives_the_numbers_of_a_plain_run(tmp_path, uninterrupted):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = run_cli(*SIX_RUNS, "--out", tmp_path, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(numbers(tmp_path), uninterrupted)
    assert json.loads((tmp_path / "meta.json").read_text())["scheduler"].startswith("tcp://127.0.0.1")


def test_dask_workers_with_several_threads_are_refused(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = run_cli(*FOUR_RUNS, "--out", tmp_path, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 2
    assert "--nthreads 1" in result.output


def test_an_unreachable_scheduler_is_a_usage_error(tmp_path):
    result = run_cli(*FOUR_RUNS, "--out", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output


def test_a_diverging_run_stops_early_and_is_counted_not_averaged(tmp_path):
    overrides = ("train.optimizer=sgd", "train.learning_rate=1e6", "train.epochs=4", "variants=[stateful]")
    result = run_cli(*smoke("random_series", *overrides), "--out", tmp_path, "--seeds", "1")
    assert result.exit_code == 0, result.output  # divergence alone is not a failure
    assert "1 diverged: seed 0 stateful" in result.output
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert set(epochs["status"]) == {"diverged"}
    assert len(epochs) < 4  # stopped early
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.loc[0, "n"] == 0 and summary.loc[0, "n_diverged"] == 1
    assert "0 (1 diverged)" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "meta.json").read_text())["diverged"] == ["seed 0 stateful"]


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "one at a time"])
def test_a_failing_run_is_recorded_the_rest_carry_on_and_a_rerun_retries_it(tmp_path, monkeypatch, grouped):
    real_loop, real_prepared = trainers.TRAINERS["loop"], engine.prepared

    def fails_for_stateful(model, experiment, dataset, variant):
        if variant == "stateful":
            raise RuntimeError("the optimizer exploded")
        yield from real_loop(model, experiment, dataset, variant)

    def prepared_fails_for_stateful(one):
        if one.variant == "stateful":
            raise RuntimeError("the optimizer exploded")
        return real_prepared(one)

    alone = []
    if grouped:
        monkeypatch.setattr(engine, "prepared", prepared_fails_for_stateful)
    else:
        monkeypatch.setitem(trainers.TRAINERS, "loop", fails_for_stateful)
        alone = ["--set", "train.group=false"]
    result = run_cli(*FOUR_RUNS, *alone, "--out", tmp_path, "--seeds", "1")
    assert result.exit_code == 1
    assert "FAILED seed 0 stateful: RuntimeError: the optimizer exploded" in result.output
    assert "Traceback" not in result.output
    runs = pd.read_csv(tmp_path / "runs.csv").set_index("variant")
    assert runs.loc["stateless", "status"] == "ok"
    assert runs.loc["stateful", "status"] == "failed"
    assert "the optimizer exploded" in runs.loc["stateful", "error"]
    assert pd.read_csv(tmp_path / "summary.csv").set_index("variant").loc["stateful", "n_failed"] == 1

    monkeypatch.undo()
    retried = run_cli(*FOUR_RUNS, *alone, "--out", tmp_path, "--seeds", "1")
    assert retried.exit_code == 0, retried.output
    assert "ran 1 of 2 runs" in retried.output


# --- nothing is lost ---------------------------------------------------------------


def test_unreadable_stored_results_are_run_again_and_reported_once(tmp_path, uninterrupted):
    assert run_cli(*SIX_RUNS, "--out", tmp_path).exit_code == 0
    stored = sorted((tmp_path / "units").glob("*.json"))
    good = json.loads(stored[0].read_text())
    stored[0].write_text("{half a record")  # damaged
    stored[1].write_text(json.dumps({"status": "ok"}))  # valid JSON, not a result
    stored[2].write_text(json.dumps(good | {"format": 1}))  # another format
    result = run_cli(*SIX_RUNS, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("re-running 3 runs whose stored results were unreadable") == 1
    assert "ran 3 of 6 runs" in result.output
    pd.testing.assert_frame_equal(numbers(tmp_path), uninterrupted)


def test_a_second_run_into_a_folder_in_use_exits_2_naming_the_holder(tmp_path):
    import os

    from stateful_lab.execution.runner import folder_lock

    with folder_lock(tmp_path):
        result = run_cli(*FOUR_RUNS, "--out", tmp_path)
    assert result.exit_code == 2
    assert f"{tmp_path} is in use by another stateful-lab run (process {os.getpid()})" in result.output
    assert not (tmp_path / "units").exists()


def test_a_lock_left_by_a_dead_process_does_not_block(tmp_path):
    (tmp_path / ".lock").write_text("999999999\n")  # a process id that is not running, and no lock held
    result = run_cli(*FOUR_RUNS, "--out", tmp_path, "--seeds", "1", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output


def test_a_full_disk_fails_with_one_line_and_leaves_no_partial_files(tmp_path, monkeypatch):
    import errno

    from stateful_lab import atomic

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    result = run_cli(*FOUR_RUNS, "--out", tmp_path, "--seeds", "1", "--set", "train.epochs=1")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert f"cannot write {tmp_path / 'units'}" in errors[0]
    assert "Traceback" not in result.output
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and path.name != ".lock"]


def test_a_worker_killed_in_the_middle_of_a_group_loses_only_its_own_runs(tmp_path):
    """With --jobs 2, SIGKILL of one worker while it trains a group: that group's
    runs, and only they, are reported lost and stored as failed (so the run exits 1
    and a re-run trains them), the other worker's and the queued groups finish, and
    the re-run completes the folder to the numbers of a run nobody interrupted."""
    import os
    import threading

    from stateful_lab.execution import workers

    sweep = smoke("lag_copy", "sweep={data.lag: [2, 8], model.units: [2, 3, 4]}")  # 3 groups of 8 runs
    whole = run_cli(*sweep, "--out", tmp_path / "whole", "--jobs", "2")
    assert whole.exit_code == 0, whole.output
    killed, lost, victim = tmp_path / "killed", [], []

    def kill_the_worker_of_the_third_group():
        """The third group a worker takes is handed out only when a first one has
        finished: kill its worker as soon as it holds it, in the middle of it."""
        deadline, seen = time.monotonic() + 120, set()
        while time.monotonic() < deadline:
            for pid, units in workers.executor(2).in_flight().items():
                seen.add(tuple(unit.label for unit in units))
                if len(seen) == 3:
                    lost.extend(unit.label for unit in units)
                    victim.append(pid)
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_worker_of_the_third_group)
    killer.start()
    result = run_cli(*sweep, "--out", killed, "--jobs", "2")
    killer.join()
    assert result.exit_code == 1, result.output
    assert len(lost) == 8
    reported = [line for line in result.output.splitlines() if line.startswith("FAILED ")]
    assert sorted(line.split(": ")[0].removeprefix("FAILED ") for line in reported) == sorted(lost)
    reason = "was killed by SIGKILL while training it (with 7 other runs); a re-run trains it"
    assert all(f": lost: worker process {victim[0]} {reason}" in line for line in reported)
    runs = pd.read_csv(killed / "runs.csv")
    assert (runs["status"] == "failed").sum() == 8 and (runs["status"] == "ok").sum() == 16

    resumed = run_cli(*sweep, "--out", killed, "--jobs", "2")
    assert resumed.exit_code == 0, resumed.output
    assert "ran 8 of 24 runs" in resumed.output
    pd.testing.assert_frame_equal(numbers(killed), numbers(tmp_path / "whole"))


def test_a_run_killed_hard_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    sweep = smoke("lag_copy", "train.group=false")  # 4 sweep points x 2 seeds x 2 variants, one at a time
    assert run_cli(*sweep, "--out", tmp_path / "whole").exit_code == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "stateful_lab", "run", *sweep, "--out", str(killed), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(list((killed / "units").glob("*.json"))) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "no run finished"
        time.sleep(0.05)
    process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    process.wait(timeout=30)
    finished = len(list((killed / "units").glob("*.json")))
    assert finished < 16
    resumed = run_cli(*sweep, "--out", killed)
    assert resumed.exit_code == 0, resumed.output
    assert f"ran {16 - finished} of 16 runs" in resumed.output
    pd.testing.assert_frame_equal(numbers(killed), numbers(tmp_path / "whole"))
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.filterwarnings("ignore:resource_tracker")  # it is started with the same failing interpreter
def test_workers_that_die_as_they_start_fail_the_work_with_the_reason_and_are_not_restarted_for_ever():
    """A worker that cannot start (here: the interpreter it is started with exits
    at once with status 1) is replaced, but after STARTUP_DEATHS such deaths in a
    row the pool gives up: queued work fails with the reason, never a hang."""
    import multiprocessing.spawn

    from stateful_lab.execution import workers

    real = multiprocessing.spawn.get_executable()
    multiprocessing.spawn.set_executable("/bin/false")
    try:
        pool = workers.WorkerPool(1)
        future = pool.submit([], None)
        error = future.exception(timeout=60)
    finally:
        multiprocessing.spawn.set_executable(real)
        pool.shutdown()
    assert isinstance(error, RuntimeError)
    assert str(error).startswith("worker processes die as they start (worker process ")
    assert str(error).endswith("exited with status 1)")
    with pytest.raises(RuntimeError, match="die as they start"):
        pool.submit([], None)
