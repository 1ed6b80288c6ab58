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
