"""A run's record survives its file, and a file that does not hold one of this
format reads as missing instead of stopping a run."""

import json
import math

from stateful_lab.runs.records import FORMAT, EpochResult, RunResult, UnitStore


def record(key="abc"):
    return RunResult(
        key=key,
        point={"data.lag": 2},
        variant="stateful",
        seed=3,
        status="diverged",
        epochs=[EpochResult(0, 0.25, 0.5, 0.26, math.nan, 0.01)],
        notes=["a note"],
        seconds=1.5,
    )


def test_a_record_round_trips_through_its_file(tmp_path):
    store = UnitStore(tmp_path)
    store.save(record())
    loaded = store.load("abc")
    assert loaded.point == {"data.lag": 2} and loaded.epochs[0].train_loss == 0.25
    assert math.isnan(loaded.epochs[0].test_accuracy) and loaded.notes == ["a note"]
    assert json.loads((tmp_path / "abc.json").read_text())["format"] == FORMAT
    assert store.finished("abc") and loaded.label == "seed 3 stateful data.lag=2"


def test_files_that_are_not_records_of_this_format_read_as_missing(tmp_path):
    store = UnitStore(tmp_path)
    good = json.loads(record().to_json())
    damaged = {
        "abc": "{not json",
        "def": json.dumps({"status": "ok"}),  # valid JSON, not a record
        "ghi": json.dumps(good | {"key": "ghi", "format": FORMAT - 1}),  # another format
        "jkl": json.dumps(good | {"key": "jkl", "epochs": [{"epoch": 0}]}),  # a damaged epoch
        "mno": json.dumps(good),  # stored under another run's key
    }
    for key, text in damaged.items():
        (tmp_path / f"{key}.json").write_text(text)
        assert store.load(key) is None, key
        assert not store.finished(key)
