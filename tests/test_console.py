"""The console: TensorFlow's C++ log lines are kept off stderr, and a terminal
gets a live progress bar while logs get plain lines."""

import os
import pty
import select
import subprocess
import sys
import threading

from stateful_lab.console import _copy_lines

from .conftest import ROOT, smoke

TENSORFLOW_LINES = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1795510633.971164    8364 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
    b"E0000 00:00:1795510636.488599    8364 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    b"W1124 08:12:01.123456   12 device_compiler.h:208] Compiled cluster using XLA!",
    b"WARNING:tensorflow:5 out of the last 11 calls to <function one_step_on_data at 0x7f> triggered tf.function "
    b"retracing. Tracing is expensive and the excessive number of tracings could be due to (1) ...",
]


def test_only_tensorflow_log_lines_are_dropped():
    read_end, write_end = os.pipe()
    target_read, target_write = os.pipe()
    stop_read, _ = os.pipe()
    copier = threading.Thread(target=_copy_lines, args=(read_end, target_write, stop_read))
    copier.start()
    ours = [
        b"Error: configs/x.yaml is not a valid config:",
        b"warning: dropped 2 train samples",
        b"I0000 is not a log line without its file:line]",
        b"WARNING:tensorflow:any other warning of TensorFlow's passes",
    ]
    os.write(write_end, b"\n".join([TENSORFLOW_LINES[0], ours[0], *TENSORFLOW_LINES[1:], *ours[1:]]) + b"\nlast")
    os.close(write_end)
    copier.join(timeout=5)
    os.close(target_write)
    with os.fdopen(target_read, "rb") as copied:
        assert copied.read() == b"\n".join(ours) + b"\nlast"


def test_copying_stops_when_told_though_a_child_still_holds_the_pipe():
    """At exit the copier copies what is in the pipe and stops, without waiting for
    an end of file that a still-running child (a worker process being stopped) would
    hold back until this process had ended."""
    read_end, write_end = os.pipe()  # write_end stays open: the child's copy
    target_read, target_write = os.pipe()
    stop_read, stop_write = os.pipe()
    copier = threading.Thread(target=_copy_lines, args=(read_end, target_write, stop_read))
    copier.start()
    os.write(write_end, TENSORFLOW_LINES[1] + b"\nours\nlast")
    os.write(stop_write, b"x")
    copier.join(timeout=5)
    assert not copier.is_alive()
    os.close(target_write)
    with os.fdopen(target_read, "rb") as copied:
        assert copied.read() == b"ours\nlast"


def run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal; its return code, terminal
    output and stderr."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stateful_lab", *args],
        cwd=ROOT,
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "160"},
    )
    os.close(terminal)
    output = b""
    while select.select([controller], [], [], 120)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    return process.returncode, output.decode(errors="replace"), process.stderr.read().decode()


def test_a_terminal_gets_a_live_bar_and_stderr_stays_clean(tmp_path):
    code, output, stderr = run_on_a_terminal("run", *smoke("first_timestep"), "--out", str(tmp_path))
    assert code == 0, output + stderr
    assert stderr == ""  # no TensorFlow or absl line, on a machine without a GPU
    assert "\x1b[" in output  # drawn with terminal control codes
    assert "runs" in output and "4/4" in output and "0 diverged, 0 failed" in output
    assert "4 runs together: stateless and stateful, seeds 0-1" in output  # the work in flight
    assert "[1/4]" not in output  # no plain progress lines on a terminal
    assert output.index("4/4") < output.index("Epoch: 0 (Loss, Acc)")  # the tables come after the bar


def test_verbose_shows_tensorflow_lines_again(tmp_path):
    command = ["--verbose", "run", *smoke("first_timestep", "train.epochs=1"), "--seeds", "1", "--out", str(tmp_path)]
    completed = subprocess.run(
        [sys.executable, "-m", "stateful_lab", *command, "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert "cudart_stub.cc" in completed.stderr or "cpu_feature_guard.cc" in completed.stderr
    assert "[1/2]" not in completed.stdout  # --quiet, not a terminal: no progress lines


def test_the_bar_moves_by_epochs_and_credits_what_a_run_did_not_report():
    """Progress by epochs: each epoch heard advances the bar once (a repeated or
    late one not at all), and a run that ends is credited the epochs it did not
    report, so that the bar ends full whatever was heard."""
    from stateful_lab.console import BarProgress

    bar = BarProgress()
    bar.start(3, {"a": 10, "b": 10, "c": 10})
    task = bar.bar.tasks[0]
    assert task.total == 30
    for epoch in range(4):
        bar.epoch("a", epoch)
    bar.epoch("a", 2)  # heard again, out of order: nothing more
    bar.epoch("b", 6)  # epochs 0-6 of b, heard at once (a worker sends the latest only)
    bar.epoch("unknown", 3)
    assert task.completed == 4 + 7
    bar.finish("a", "ok", 1.0, "a")
    bar.finish("b", "diverged", 1.0, "b")  # stopped early: credited its remaining epochs
    assert task.completed == 20
    bar.finish("c", "ok", 1.0, "c")  # reported nothing (trained alone in a child process)
    assert task.completed == 30 and task.fields["runs"] == "3/3"
    assert task.fields["counts"] == "1 diverged, 0 failed"
    bar.close()


class Listening:
    """A progress that records what it hears: epochs by run, and when each run ended."""

    def __init__(self):
        from stateful_lab.console import LineProgress

        self.lines = LineProgress(lambda line: None, quiet=True)
        self.heard, self.finished, self.lock = [], [], threading.Lock()

    def __getattr__(self, name):
        return getattr(self.lines, name)

    def epoch(self, key, epoch):
        with self.lock:
            self.heard.append((key, epoch, len(self.finished)))

    def finish(self, label, status, seconds, key=None):
        self.finished.append(key)


def test_epochs_are_heard_as_runs_record_them_here_and_in_worker_processes(tmp_path):
    """In this process every epoch of every run of a group is heard, in order,
    before the group's results arrive; from worker processes the latest epochs
    come every half second, so a run that trains for seconds is heard before it
    ends."""
    from stateful_lab.config.experiment import load_experiment
    from stateful_lab.execution.runner import run_experiment

    config, *rest = smoke("first_timestep", "train.epochs=1500")
    experiment = load_experiment(config, [item for item in rest if item != "--set"])
    here = Listening()
    run_experiment(experiment, tmp_path / "here", here, quiet=True)
    keys = {key for key, _, _ in here.heard}
    assert len(keys) == 4
    for key in keys:
        assert [epoch for run, epoch, _ in here.heard if run == key] == list(range(1500))
    assert all(finished == 0 for _, _, finished in here.heard)  # all heard before any result
    workers = Listening()
    alone = experiment.override("variants=[stateful]", "seeds=[0, 1]", "train.group=false")  # two items: workers
    run_experiment(alone, tmp_path / "workers", workers, True, 2)
    assert any(epoch < 1499 and finished == 0 for _, epoch, finished in workers.heard), workers.heard
