"""One run: the same config and seed give identical numbers in any process."""

import os
import subprocess
import sys

import pandas as pd

from .conftest import ROOT, smoke


def test_same_config_and_seed_give_identical_numbers_in_two_processes(tmp_path):
    tables = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        command = [
            sys.executable,
            "-m",
            "stateful_lab",
            "run",
            *smoke("first_timestep"),
            "--out",
            str(out),
            "--seeds",
            "2",
            "--quiet",
        ]
        completed = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": attempt == "a" and "1" or "2"},
        )
        assert completed.returncode == 0, completed.stderr
        tables.append(pd.read_csv(out / "epochs.csv").drop(columns="seconds"))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


def test_a_child_of_a_large_parent_reports_its_own_peak_memory():
    """ru_maxrss survives exec: a child of a large `run` process over many configs
    would report the parent's peak as its own (it did: 1752.3 MB for every cost run)."""
    import subprocess
    import sys

    ballast = bytearray(300 * 1024 * 1024)  # the parent's peak grows by 300 MB
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    script = "from stateful_lab.provenance import peak_memory_mb; print(peak_memory_mb())"
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(child.stdout) < 200, child.stdout
    del ballast
