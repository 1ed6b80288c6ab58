"""How the lab's processes end: once TensorFlow is loaded, quickly, but only
after every exit hook has run and every line written has reached its reader."""

import os
import subprocess
import sys
import threading
import types

import pytest

from stateful_lab import ending

from .conftest import ROOT

# A stand-in for TensorFlow: `end` only asks whether it is loaded, and a real
# import would cost this test 2-4 s.
PROGRAM = """
import atexit, sys, types
sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))
from stateful_lab.ending import end
atexit.register(lambda: open(sys.argv[1], "w").write("hook ran"))
sys.stdout.write("said, not yet flushed")
sys.stderr.write("and on stderr")
end(3)
"""


def test_a_process_ended_quickly_keeps_its_code_its_output_and_its_exit_hooks(tmp_path):
    marker = tmp_path / "marker"
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(marker)], cwd=ROOT, env=buffered, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert done.stdout == "said, not yet flushed"  # a pipe buffers: this arrived only through end's flush
    assert done.stderr == "and on stderr"
    assert marker.read_text() == "hook ran"


@pytest.fixture
def exits(monkeypatch):
    """`os._exit` and the exit hooks recorded instead of run (they are pytest's own here)."""
    seen = []
    monkeypatch.setattr(ending.atexit, "_run_exitfuncs", lambda: seen.append("hooks"))

    def fast(code):
        seen.append(("fast", code))
        raise SystemExit(code)  # os._exit never returns; neither may this

    monkeypatch.setattr(ending.os, "_exit", fast)
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    return seen


@pytest.mark.parametrize("code, expected", [(0, 0), (None, 0), (2, 2)])
def test_with_tensorflow_loaded_the_hooks_run_then_the_process_ends_at_once(exits, code, expected):
    with pytest.raises(SystemExit):
        ending.end(code)
    assert exits == ["hooks", ("fast", expected)]


def test_a_message_or_a_thread_still_running_takes_pythons_own_way_out(exits):
    with pytest.raises(SystemExit) as message:
        ending.end("Error: a message Python prints")
    assert message.value.code == "Error: a message Python prints"
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # not a daemon: Python's shutdown waits for it
    worker.start()
    try:
        with pytest.raises(SystemExit):
            ending.end(0)
    finally:
        release.set()
        worker.join()
    assert exits == []  # neither took the quick way


def test_without_tensorflow_python_ends_as_usual(exits, monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow")
    with pytest.raises(SystemExit):
        ending.end(0)
    assert exits == []
