"""The report is written from a results folder, reading swept values back with
their config types."""

from click.testing import CliRunner

from stateful_lab.cli import main

from .conftest import ROOT, smoke, smoke_experiment


def test_report_from_a_small_results_folder(tmp_path):
    results = tmp_path / "results"
    for name in ("first_timestep", "reset_policy"):
        run = CliRunner().invoke(main, ["run", *smoke(name), "--out", str(results / name), "--quiet"])
        assert run.exit_code == 0, run.output
    # a plot from an earlier version of the config, which had a sweep: the report no longer draws it
    stale = results / "plots" / "smoke_first_timestep-sweep.png"
    stale.parent.mkdir()
    stale.write_bytes(b"\x89PNG\r\n\x1a\n old")
    result = CliRunner().invoke(main, ["report", str(results), "--no-probe"])
    assert result.exit_code == 0, result.output
    report = (results / "REPORT.md").read_text()
    assert report.index("## Verdicts") < report.index("## smoke_first_timestep")
    for name in ("first_timestep", "reset_policy"):
        for item in smoke_experiment(name).claims:
            assert item.statement in report.split("## Verdicts")[1].split("\n## ")[0]
    plots = sorted(path.name for path in (results / "plots").glob("*.png"))
    assert plots == ["smoke_first_timestep-curves.png", "smoke_reset_policy-curves.png", "smoke_reset_policy-sweep.png"]
    for path in (results / "plots").glob("*.png"):
        assert path.stat().st_size > 5000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{path.name})" in report


def test_report_of_an_empty_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--no-probe"])
    assert result.exit_code == 2
    assert "no result folders" in result.output


def test_a_float_sweep_reads_back_typed_and_a_claim_selecting_an_integer_matches(tmp_path, write_config):
    """A sweep over [0.5, 1] is written as 0.5 and 1.0; the report must read 1.0 as
    the config's 1, in its plots and in a claim that selects 1."""
    config = write_config("""
name: clip
data: {task: first_timestep, train_samples: 16, test_samples: 8}
train: {epochs: 1}
seeds: 2
sweep: {train.clipnorm: [0.5, 1]}
claims:
  - {id: clipped, kind: claim, source: s, statement: clipping at 1 runs,
     expect: {metric: test_loss, test: at_most, value: 10, select: {variant: stateful, train.clipnorm: 1}}}
""")
    results = tmp_path / "results"
    run = CliRunner().invoke(main, ["run", str(config), "--out", str(results / "clip"), "--quiet"])
    assert run.exit_code == 0, run.output
    result = CliRunner().invoke(main, ["report", str(results), "--no-probe"])
    assert result.exit_code == 0, result.output
    verdicts = (results / "REPORT.md").read_text().split("## Verdicts")[1].split("\n## ")[0]
    assert "**supported**" in verdicts and "train.clipnorm=1.0" in verdicts
    assert (results / "plots" / "clip-curves.png").exists()


def test_an_unreadable_result_file_is_named_with_its_folder(tmp_path):
    results = tmp_path / "results"
    arguments = [*smoke("first_timestep", "train.epochs=1"), "--seeds", "1", "--out", str(results / "one")]
    run = CliRunner().invoke(main, ["run", *arguments, "--quiet"])
    assert run.exit_code == 0, run.output
    (results / "one" / "runs.csv").write_text('config,variant\n"unclosed\n')
    result = CliRunner().invoke(main, ["report", str(results), "--no-probe"])
    assert result.exit_code == 2
    assert f"{results / 'one' / 'runs.csv'}: cannot be read as a result table" in result.output
    assert "Traceback" not in result.output


def test_results_of_an_older_version_keep_their_tables_and_say_why_claims_are_not_judged(tmp_path):
    """Claims written before min_difference existed cannot be judged, but the folder still reads."""
    import shutil

    from stateful_lab.results.tables import load_folder

    folder = tmp_path / "first_timestep"
    shutil.copytree(ROOT / "results" / "first_timestep", folder)
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text())
    for claim in config["claims"]:
        claim["expect"].pop("min_difference", None)  # as round 2 wrote them
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_folder(folder)
    assert loaded.experiment.claims == [] and "needs expect.min_difference" in loaded.unjudged
    assert len(loaded.runs)
