"""The command line: parses, calls the library, prints, maps errors to exit codes.

Exit codes: 0 success; 2 bad usage or bad config; 1 a run that failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from stateful_lab import __version__
from stateful_lab.config.claims import PAIRWISE_TESTS
from stateful_lab.config.experiment import (
    MAX_RUNS,
    ConfigError,
    Experiment,
    ModelConfig,
    TrainConfig,
    load_experiment,
)
from stateful_lab.console import BarProgress, LineProgress, quiet_tensorflow
from stateful_lab.ending import end
from stateful_lab.errors import LabError
from stateful_lab.results.show import FORMATS, SHOWABLE_METRICS, render, show_table
from stateful_lab.results.tables import METRICS
from stateful_lab.userfiles import reason, shorten

LISTED_POINTS = 50
"""`validate` lists at most this many sweep points."""
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ConfigErrorExit(click.ClickException):
    """Every problem of a config on its own line, exit status 2, no traceback."""

    exit_code = 2

    def __init__(self, config: str, error: ConfigError):
        super().__init__("\n".join(error.problems))
        self.config = config

    def show(self, file=None) -> None:
        stream = file or sys.stderr
        click.echo(f"Error: {self.config} is not a valid config:", err=True, file=stream)
        for problem in self.message.splitlines():
            click.echo(f"  {problem}", err=True, file=stream)


def _load(config: str, overrides: tuple[str, ...], seeds: int | None = None, trainer: str | None = None) -> Experiment:
    if seeds is not None:
        overrides = (*overrides, f"seeds={seeds}")
    if trainer is not None:
        overrides = (*overrides, f"train.trainer={trainer}")
    try:
        return load_experiment(config, overrides)
    except ConfigError as error:
        raise ConfigErrorExit(config, error) from None


def choices(section, key: str) -> list[str]:
    """The values a config key accepts, from its schema (one source for both)."""
    return list(typing.get_args(section.model_fields[key].annotation))


config_argument = click.argument("config", type=click.Path(exists=True, dir_okay=False))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a dotted config key with a YAML value, e.g. --set train.epochs=3. Repeatable.",
)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="stateful-lab")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines on stderr (hidden by default).")
def main(verbose: bool) -> None:
    """Reproduce and test the popular claims about stateful vs stateless Keras LSTMs.

    \b
    Example:
        stateful-lab run configs/collocated.yaml
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        quiet_tensorflow()


@main.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (one config only). Default: results/<config name>/.",
)
@click.option("--seeds", type=click.IntRange(min=1), help="Run seeds 0..N-1 instead of the configs' seeds.")
@set_option
@click.option(
    "--trainer",
    type=click.Choice(choices(TrainConfig, "trainer")),
    help="Training procedure, instead of the configs' train.trainer.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; each gets an equal share of the cores.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Send the runs to this Dask scheduler (tcp://host:8786) instead of local workers.",
)
@click.option("--force", is_flag=True, help="Re-run runs whose results are already in the output folder.")
@click.option("--quiet", is_flag=True, help="Print only warnings, the summary and where results went.")
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=MAX_RUNS,
    show_default=True,
    help="Refuse a config that makes more runs than this (a sweep's points x seeds x variants).",
)
@click.option(
    "--tensorboard",
    "logdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write every run's epochs to this TensorBoard log folder (as `export tensorboard`).",
)
def run(
    configs: tuple[str, ...],
    out: Path | None,
    seeds: int | None,
    overrides: tuple[str, ...],
    trainer: str | None,
    jobs: int,
    scheduler: str | None,
    force: bool,
    quiet: bool,
    max_runs: int,
    logdir: Path | None,
) -> None:
    """Train every variant over every seed (and sweep point) of each CONFIG.

    Writes epochs.csv, runs.csv, summary.csv, summary.md, config.yaml and
    meta.json per config. Several configs run one after another in one process
    (one TensorFlow import, compiled functions shared where settings agree);
    every config is checked before any trains. Runs already finished in an
    output folder are skipped, so an interrupted run resumes when the same
    command is run again.

    \b
    Example:
        stateful-lab run configs/collocated.yaml --seeds 3 --set train.epochs=2 --jobs 2
        stateful-lab run configs/*.yaml --quiet
    """
    if out is not None and len(configs) > 1:
        raise click.UsageError(f"--out names one folder; {len(configs)} configs each write results/<config name>/")
    experiments = [_load(config, overrides, seeds, trainer) for config in configs]
    folders = [out or Path("results") / experiment.name for experiment in experiments]
    names = [experiment.name for experiment in experiments]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise click.UsageError(
            f"configs named {', '.join(repeated)} would write the same folder; give each its own name"
        )
    from stateful_lab.execution.resources import check_resources, check_size, workers_for

    for config, experiment, folder in zip(configs, experiments, folders):
        _check_writable(folder)
        try:
            check_size(experiment, max_runs)
            for warning in check_resources(experiment):  # makes every sweep point: checks their combinations
                click.echo(warning, err=True)
        except ConfigError as error:
            raise ConfigErrorExit(config, error) from None
        except LabError as error:
            _exit_with(error)
    fitting = workers_for(experiments, jobs)
    if fitting < jobs:
        workers = f"{fitting} worker" + ("s" if fitting > 1 else "")
        click.echo(f"note: {workers} instead of {jobs}: the memory available holds no more groups at once")
        jobs = fitting
    # Both signals abandon only the run in flight. SIGINT is set explicitly: a
    # process started in the background of a script inherits it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    from stateful_lab.execution.session import run_configs

    resume = "run the same command again to resume (finished runs are kept in each output folder's units/)"
    try:
        outcomes = run_configs(experiments, folders, jobs, scheduler, force, quiet, ConsoleReporter(quiet))
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted; {resume}.", err=True)
        sys.exit(130)
    except Terminated:
        click.echo(f"\nTerminated; {resume}.", err=True)
        sys.exit(143)
    except LabError as error:
        _exit_with(error)
    if logdir is not None:
        _export_tensorboard(folders, logdir)
    if any(outcome.failed for outcome in outcomes):
        sys.exit(1)


class ConsoleReporter:
    """`run`'s console: a live bar on a terminal, plain lines in logs, CI and with
    --quiet; each config's summary table and where its results went."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def progress(self, experiment: Experiment):
        return BarProgress() if sys.stdout.isatty() and not self.quiet else LineProgress(click.echo, self.quiet)

    def started(self, experiment: Experiment) -> None:
        click.echo(f"== {experiment.name}")

    def finished(self, experiment: Experiment, out: Path, outcome) -> None:
        from stateful_lab.results.tables import summary_markdown

        click.echo(summary_markdown(outcome.summary, experiment.name, list(experiment.sweep)))
        from stateful_lab.results.tables import table_file

        names = ["epochs.csv", "runs.csv", "summary.csv", "summary.md", "config.yaml", "meta.json", "forecasts.csv"]
        written = [table_file(out, name).name for name in names if table_file(out, name).exists()]
        click.echo(
            f"ran {outcome.ran} of {outcome.total} runs ({outcome.skipped} already finished); "
            f"wrote {out}/ ({', '.join(written)})"
        )
        for status, labels in (("diverged", outcome.diverged), ("failed", outcome.failed)):
            if labels:
                click.echo(f"{len(labels)} {status}: " + "; ".join(labels), err=True)
        if outcome.failed:
            click.echo(f"See {out}/runs.csv for the errors; a re-run retries failed runs.", err=True)

    def note(self, line: str) -> None:
        click.echo(line)


def _exit_with(error: LabError) -> None:
    """The lab's own error as one line on stderr and its exit code: a usage error
    (exit 2) in Click's words, a failed run (exit 1) as `Error: ...`."""
    if error.exit_code == 2:
        raise click.UsageError(str(error)) from None
    click.echo(f"Error: {error.strerror if isinstance(error, OSError) else error}", err=True)
    sys.exit(error.exit_code)


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so only the run in flight is lost."""


def _terminate(signum, frame) -> None:
    raise Terminated()


@main.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", required=True, help="The column to predict.")
@click.option(
    "--inputs",
    metavar="A,B",
    help="The columns the model reads, comma-separated. Default: every numeric column but the entity and order "
    "(the target's own past included when predicting ahead).",
)
@click.option("--entity", help="The column naming the series each row belongs to (several series in one file).")
@click.option("--order", help="With --entity: the column that orders an entity's rows in time.")
@click.option(
    "--horizon",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Predict the target this many rows after the window's last row (0: at that row, from the inputs).",
)
@click.option("--kind", type=click.Choice(["regression", "binary", "categorical"]), help="Default: inferred.")
@click.option(
    "--seeds", type=click.IntRange(min=3), default=10, show_default=True, help="Seeds per model, paired by seed."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for config.yaml, results/ and the answer. Default: results/ask_<file>_<target>/.",
)
@click.option("--format", "output", type=click.Choice(["text", "md", "json"]), default="text", show_default=True)
@click.option("--force", is_flag=True, help="Re-run runs whose results are already in the folder.")
@click.option(
    "--serving/--no-serving", default=True, show_default=True, help="Measure one prediction's cost per model."
)
def ask(
    data: Path,
    target: str,
    inputs: str | None,
    entity: str | None,
    order: str | None,
    horizon: int,
    kind: str | None,
    seeds: int,
    out: Path | None,
    output: str,
    force: bool,
    serving: bool,
) -> None:
    """Should a model of DATA's --target column be stateful? Answered with evidence.

    Designs an experiment from the table (every choice written, with its reason,
    in the config it saves), trains stateless and stateful LSTMs and a stateless
    one with a longer window over paired seeds, compares them with each other and
    with the best baseline by the lab's tests, and prints one of: stateful,
    stateless, stateless_longer_window, baseline, inconclusive; then the figures
    behind it and what one prediction costs each model.

    \b
    Example:
        stateful-lab ask sales.csv --target units --entity store --order week
        stateful-lab ask sales.csv --target units --format json
    """
    from stateful_lab.answer import ask as answer_question

    if out is not None:
        _check_writable(out)
    names = [name.strip() for name in inputs.split(",")] if inputs else None
    if names is not None and not all(names):
        raise click.UsageError(f"--inputs: {inputs!r} has an empty name; give column names separated by commas")
    bar = output == "text" and sys.stdout.isatty()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        answer = answer_question(
            data,
            target=target,
            inputs=names,
            entity=entity,
            order=order,
            horizon=horizon,
            kind=kind,
            seeds=seeds,
            out=out,
            force=force,
            serving=serving,
            progress=bar,
            reporter=_AskReporter(bar),
        )
    except KeyboardInterrupt:
        click.echo("\nInterrupted; run the same command again to resume (finished runs are kept).", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("\nTerminated; run the same command again to resume (finished runs are kept).", err=True)
        sys.exit(143)
    except LabError as error:
        _exit_with(error)
    click.echo({"text": answer.text, "md": answer.markdown, "json": answer.to_json}[output](), nl=False)
    if answer.results.runs["status"].eq("failed").any():
        sys.exit(1)


class _AskReporter:
    """`ask`'s console: the live bar on a terminal, else warnings only, on stderr
    (stdout holds the answer, which may be JSON)."""

    def __init__(self, bar: bool):
        self.bar = bar

    def progress(self, experiment: Experiment):
        return BarProgress() if self.bar else LineProgress(lambda line: click.echo(line, err=True), quiet=True)

    def started(self, experiment: Experiment) -> None:
        pass

    def finished(self, experiment: Experiment, out: Path, outcome) -> None:
        pass

    def note(self, line: str) -> None:
        click.echo(line, err=True)


@main.command()
@click.option(
    "--clear", is_flag=True, help="Remove every compiled program (of every TensorFlow build and CPU) and traced graph."
)
def cache(clear: bool) -> None:
    """Show or clear the compilation cache: the XLA programs earlier runs compiled,
    and the graphs of grouped runs they traced, which a later process loads
    instead of compiling and tracing again.

    It lives in $STATEFUL_LAB_CACHE (default ~/.cache/stateful-lab; off turns
    it off), one folder per TensorFlow build, CPU and XLA flags; every entry is
    checked against its SHA-256 before use, and a damaged one is compiled again.
    The traced graphs are in its graphs/ folder, keyed by the lab's own source
    too; a damaged one is traced again.

    \b
    Example:
        stateful-lab cache --clear
    """
    from stateful_lab.training import xla_cache

    if xla_cache.root() is None:
        click.echo("the compilation cache is off (STATEFUL_LAB_CACHE=off)")
        return
    if clear:
        entries, size, graphs = xla_cache.clear()
        click.echo(
            f"removed {entries} compiled programs ({size / 1e6:.1f} MB) and {graphs} traced graphs"
            f" from {xla_cache.root()}"
        )
        return
    store, entries, size = xla_cache.describe()
    graphs = len(list(xla_cache.graphs_folder(xla_cache.root()).glob("*.json")))
    click.echo(
        f"{store}: {entries} compiled programs, {size / 1e6:.1f} MB (this TensorFlow build, CPU and XLA flags);"
        f" {graphs} traced graphs"
    )


@main.command()
@config_argument
@set_option
def validate(config: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG and print it resolved, with every default filled in.

    Prints every problem (and exits 2) if the config is not valid.

    \b
    Example:
        stateful-lab validate configs/first_timestep.yaml --set train.batch_size=1
    """
    experiment = _load(config, overrides)
    click.echo(experiment.to_yaml(), nl=False)
    if experiment.sweep:
        click.echo(
            f"# sweep: {experiment.point_count} points x {len(experiment.seed_list)} seeds x "
            f"{len(experiment.variants)} variants = {experiment.run_count} runs"
        )
        points = itertools.product(*experiment.sweep.values())
        for values in itertools.islice(points, LISTED_POINTS):
            click.echo("#   " + ", ".join(f"{key}={value}" for key, value in zip(experiment.sweep, values)))
        if experiment.point_count > LISTED_POINTS:
            click.echo(f"#   ... and {experiment.point_count - LISTED_POINTS} more points")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.option(
    "--cell",
    type=click.Choice([*choices(ModelConfig, "cell"), "all"]),
    default="lstm",
    show_default=True,
    help="The recurrent cell the checks build; all runs them for each.",
)
def probe(as_json: bool, cell: str) -> None:
    """Measure what a stateful RNN's state does: carry, lanes, gradients, resets.

    Runs seven checks on tiny seeded models of the chosen cell and prints, for
    each, what it measured and PASS or FAIL. Exits 1 if any check fails.

    \b
    Example:
        stateful-lab probe --cell gru --json
    """
    import json

    from stateful_lab.diagnostics import probe as probes

    cells = choices(ModelConfig, "cell") if cell == "all" else [cell]
    checks = probes.checks_for(cells)
    if as_json:
        click.echo(json.dumps([{"cell": name, **check.as_dict()} for name, check in checks], indent=2))
    else:
        width = max(len(check.name) for _, check in checks)
        for name, check in checks:
            prefix = f"{name:<10}  " if len(cells) > 1 else ""
            click.echo(f"{prefix}{'PASS' if check.passed else 'FAIL'}  {check.name:<{width}}  {check.measured}")
    if not all(check.passed for _, check in checks):
        sys.exit(1)


@main.command()
@click.argument("results_dir", default="results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Run the probe's measured checks and include them in the report.",
)
def report(results_dir: Path, probe: bool) -> None:
    """Write RESULTS_DIR/REPORT.md: a verdict per claim, then a section per config.

    Reads every sub-folder that a `run` wrote, evaluates each config's claims on
    its runs, and draws the plots into RESULTS_DIR/plots/.

    \b
    Example:
        stateful-lab report results
    """
    _check_writable(results_dir)
    from stateful_lab.results.report import build_report

    with _probing(probe) as checks:
        try:
            path = build_report(results_dir, checks)
        except LabError as error:
            _exit_with(error)
    click.echo(f"wrote {path}")


@contextlib.contextmanager
def _probing(probe: bool) -> Iterator[Callable[[], list]]:
    """The probe's checks for every cell, measured in a child process while the
    report draws its sections (each took about half of `report`'s time, one after
    the other); a function that waits for them. The child is stopped if the
    report fails first."""
    if not probe:
        yield list
        return
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        measuring = pool.apply_async(_probe_checks, (choices(ModelConfig, "cell"),))
        yield measuring.get
        pool.close()
    finally:
        pool.terminate()


def _probe_checks(cells: list[str]) -> list:
    """The probe's checks, as `probe --cell all` measures them (in `report`'s child)."""
    from stateful_lab.diagnostics.probe import checks_for

    return checks_for(cells)


@main.command()
@click.argument("results_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(SHOWABLE_METRICS),
    help="A final-epoch metric to show, with its 95% interval. Repeatable. Default: test_accuracy and test_loss.",
)
@click.option("--sort", metavar="COLUMN", help="Sort by a column or a shown metric's mean; -COLUMN for descending.")
@click.option(
    "--where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep rows where config, variant or a swept key has this value, e.g. --where data.lag=2. "
    "Repeatable: all must hold.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Aligned columns, Markdown, CSV or JSON.",
)
def show(
    results_dirs: tuple[Path, ...], metrics: tuple[str, ...], sort: str | None, where: tuple[str, ...], output: str
) -> None:
    """One table of every result folder in RESULTS_DIRS (default: results).

    A row per config, sweep point and variant: runs finished, diverged and
    failed, and the final-epoch metrics with their 95% intervals. Reads the
    files `run` wrote; never imports TensorFlow.

    \b
    Example:
        stateful-lab show results --where variant=stateful --sort -test_accuracy
    """
    metrics = metrics or METRICS
    try:
        table = show_table(list(results_dirs) or [Path("results")], metrics, where, sort)
    except LabError as error:
        _exit_with(error)
    if table.empty and output == "table":
        click.echo("no rows match --where " + " ".join(where), err=True)
        return
    click.echo(render(table, metrics, output), nl=False)


@main.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--a", "first", multiple=True, metavar="KEY=VALUE", help="Group A, e.g. --a variant=stateless. Repeatable."
)
@click.option(
    "--b", "second", multiple=True, metavar="KEY=VALUE", help="Group B, e.g. --b variant=stateful. Repeatable."
)
@click.option("--at", multiple=True, metavar="KEY=VALUE", help="A sweep point for both groups, e.g. --at data.lag=2.")
@click.option(
    "--metric",
    type=click.Choice(SHOWABLE_METRICS),
    help="The final-epoch metric compared (default: the config's own, test_accuracy or test_rmse).",
)
@click.option("--expect", type=click.Choice(PAIRWISE_TESTS), help='Also judge "A <expect> B" as a claim would be.')
@click.option(
    "--min-difference",
    type=click.FloatRange(min=0),
    default=0.0,
    help="With --expect: the smallest difference that matters, in the metric's units.  [default: 0]",
)
@click.option(
    "--format", "output", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
)
def compare(
    results_dir: Path,
    first: tuple[str, ...],
    second: tuple[str, ...],
    at: tuple[str, ...],
    metric: str | None,
    expect: str | None,
    min_difference: float,
    output: str,
) -> None:
    """Compare two groups of runs in one result folder.

    Paired by seed where the groups share seeds (paired t-test, or Wilcoxon
    signed-rank when Shapiro-Wilk rejects normal differences), Welch's t-test
    otherwise: the difference A - B with its 95% bootstrap interval, the
    p-value and a standardized effect size, by the code the report uses.

    \b
    Example:
        stateful-lab compare results/lag_copy --a variant=stateful --b variant=stateless \\
            --at data.lag=2 --expect greater --min-difference 0.02
    """
    from stateful_lab.results.compare import compare_groups, render

    try:
        row = compare_groups(results_dir, first, second, at, metric, expect, min_difference)
    except LabError as error:
        _exit_with(error)
    click.echo(render(row, output), nl=False)


@main.group()
def export() -> None:
    """Send results where their users already look (TensorBoard, MLflow).

    \b
    Example:
        stateful-lab export tensorboard results/lag_copy --logdir runs/
        stateful-lab export mlflow results/lag_copy --tracking-uri sqlite:///mlflow.db
    """


@export.command("tensorboard")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--logdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The TensorBoard log folder to write (`tensorboard --logdir DIR` shows it).",
)
def export_tensorboard(results: tuple[Path, ...], logdir: Path) -> None:
    """Write each run of RESULTS (result folders, or folders of them) to TensorBoard.

    One TensorBoard run per config, sweep point, variant and seed, under
    LOGDIR/<config>/: every epoch's losses, accuracies and forecast figures as
    scalars, and the sweep keys, variant and seed as hyperparameters (the HParams
    dashboard) beside the final figures.

    \b
    Example:
        stateful-lab export tensorboard results/collocated --logdir runs/
        tensorboard --logdir runs/
    """
    _export_tensorboard(list(results), logdir)


@export.command("mlflow")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--tracking-uri", required=True, help="The MLflow tracking server or store (sqlite:///mlflow.db, http://...)."
)
def export_mlflow(results: tuple[Path, ...], tracking_uri: str) -> None:
    """Log each run of RESULTS to MLflow (needs pip install 'stateful-lab[mlflow]').

    One MLflow run per config, sweep point, variant and seed, in an experiment
    named after the config: the point, variant and seed as parameters, every
    epoch's figures as metrics (step = epoch), the run's status as a tag; and one
    run per config with the result files as artifacts.

    \b
    Example:
        stateful-lab export mlflow results/collocated --tracking-uri sqlite:///mlflow.db
    """
    from stateful_lab.results.mlflow_export import export as log

    try:
        count = log(list(results), tracking_uri)
    except LabError as error:
        _exit_with(error)
    click.echo(f"logged {count} runs to MLflow at {tracking_uri}")


def _export_tensorboard(folders: list[Path], logdir: Path) -> None:
    _check_writable(logdir)
    from stateful_lab.results.tensorboard import export as write

    try:
        count = write(folders, logdir)
    except LabError as error:
        _exit_with(error)
    click.echo(f"wrote {count} runs to TensorBoard under {logdir}/ (tensorboard --logdir {logdir})")


def _check_writable(out: Path) -> None:
    """Fail before training, not after, when results could not be written: the
    nearest existing folder on the way to `out` must be writable, and no name on
    the way may be one the system refuses (too long, a link loop)."""
    where = shorten(str(out), 200)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.stat(out)
        existing = next((parent for parent in (out, *out.parents) if os.path.lexists(parent)), Path("."))
        os.stat(existing)  # a link loop or an over-long name fails here, in words
    except OSError as error:
        raise click.UsageError(f"cannot write to {where} ({reason(error)}); choose another --out") from None
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"cannot write to {where} ({shorten(str(existing), 200)} is not a writable folder); choose another --out"
        )


def entry() -> None:
    """The `stateful-lab` console script: `main`, ended without Python's slow
    shutdown once TensorFlow is loaded (see `ending`)."""
    try:
        main()
    except SystemExit as done:
        end(done.code)
