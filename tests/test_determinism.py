"""Determinism: the same config and seed give identical numbers in any process."""

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
