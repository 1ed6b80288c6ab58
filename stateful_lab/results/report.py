"""`stateful-lab report`: results/REPORT.md from the result folders of every run.

A verdict table comes first (one row per claim, plus the probe's measured checks),
then a section per config: what it tests, its final-epoch table with intervals,
the articles' figures beside ours, and plots saved as PNG files in plots/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stateful_lab.atomic import write_atomic  # noqa: E402
from stateful_lab.results import stats  # noqa: E402
from stateful_lab.results.claims import Verdict, evaluate_claims  # noqa: E402
from stateful_lab.results.formatting import markdown_row
from stateful_lab.results.tables import ConfigResults, ResultsError, load_results, summary_markdown  # noqa: E402

METRICS_PER_EPOCH = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")


def build_report(results_dir: Path, checks: Callable[[], list] = list) -> Path:
    """Write REPORT.md and its plots into `results_dir`; return the report's path.
    `checks()`: the probe's measured checks, as (cell, check) pairs, for its
    table; called once every config's section and plots are done, so that a
    probe measuring elsewhere meanwhile (the CLI's, in a child process) is waited
    for only then."""
    configs = load_results(results_dir)
    if not configs:
        raise ResultsError(f"no result folders in {results_dir}; run `stateful-lab run CONFIG` first")
    plots = results_dir / "plots"
    # One family: every claim of the report, so Holm's adjustment covers them all.
    judged = [(config, claim) for config in configs for claim in config.experiment.claims]
    decided = evaluate_claims([(claim, config.runs, config.epochs) for config, claim in judged])
    verdicts = {config.experiment.name: [] for config in configs}
    for (config, _), verdict in zip(judged, decided):
        verdicts[config.experiment.name].append(verdict)

    lines = [
        "# stateful-lab report",
        "",
        "Each claim of the source articles, the experiment that tests it, and the verdict. "
        "Numbers are final-epoch figures over seeds: means with 95% BCa bootstrap intervals "
        f"({stats.RESAMPLES} resamples, seeded), differences paired by seed where both groups share "
        "seeds. A verdict is supported (or reproduced) when its test is significant after Holm's "
        f"adjustment over all {len(decided)} claims below (p < {stats.ALPHA}) and the interval clears "
        "the claim's declared smallest difference that matters; not supported when the interval "
        "rules out such a difference; inconclusive otherwise. The rule column names the test; the "
        'p column gives the raw and the adjusted p-value. See the README, "How verdicts are decided". '
        "Regenerate with `make reproduce`.",
        "",
        "## Verdicts",
        "",
        "| claim | source | verdict | our numbers | article | rule | p (raw / Holm) | config |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sections = [line for config in configs for line in ["", *_section(config, verdicts[config.experiment.name], plots)]]
    checks = checks()
    for config in configs:
        for verdict in verdicts[config.experiment.name]:
            claim = verdict.claim
            lines.append(
                markdown_row(
                    claim.statement,
                    claim.source,
                    f"**{verdict.word}**",
                    verdict.numbers,
                    claim.article or "-",
                    verdict.rule,
                    _p_cell(verdict),
                    f"[{config.experiment.name}](#{config.experiment.name})",
                )
            )
    for name in dict.fromkeys(check.name for _, check in checks):  # one row per check, over the cells
        per_cell = [(cell, check) for cell, check in checks if check.name == name]
        first = per_cell[0][1]
        others = ", ".join(f"{cell} {'PASS' if check.passed else 'FAIL'}" for cell, check in per_cell[1:])
        lines.append(
            markdown_row(
                first.claim,
                f"measured by `stateful-lab probe` ({name})",
                f"**{'supported' if all(check.passed for _, check in per_cell) else 'not supported'}**",
                f"{per_cell[0][0]}: {first.measured}" + (f"; {others}" if others else ""),
                "-",
                "the probe's check, for every cell",
                "-",
                "[probe](#what-the-state-does)",
            )
        )
    if checks:
        lines += [
            "",
            "## What the state does",
            "",
            "`stateful-lab probe --cell all`, measured on tiny seeded models:",
            "",
            "```",
            *[f"{cell:<10}  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.measured}" for cell, c in checks],
            "```",
        ]
    report = results_dir / "REPORT.md"
    lines += sections
    write_atomic(report, "\n".join(lines) + "\n")
    return report


def _section(config: ConfigResults, verdicts: list[Verdict], plots: Path) -> list[str]:
    experiment = config.experiment
    keys = list(experiment.sweep)
    lines = [
        f"## {experiment.name}",
        "",
        experiment.description.strip() or "(no description)",
        "",
        f"Task `{experiment.data.task}`, {len(experiment.seed_list)} seeds, {experiment.train.epochs} epochs, "
        f"batch {experiment.train.batch_size}, {experiment.model.cell} units {experiment.model.units}, "
        f"reset `{experiment.train.reset}`, "
        f"trainer `{experiment.train.trainer}`"
        + (f"; sweep over {', '.join(f'`{key}` {values}' for key, values in experiment.sweep.items())}" if keys else "")
        + f". Files: [{config.folder.name}/]({config.folder.name}/).",
        "",
    ]
    table = summary_markdown(config.summary, experiment.name, keys).split("\n", 2)[2]  # drop the title
    lines.append(table.strip())
    if config.unjudged:
        lines += [
            "",
            f"Claims not judged: its config.yaml has claims this version cannot read ({config.unjudged}); "
            f"re-run the config to judge them.",
        ]
    if verdicts:
        lines += ["", "| claim | kind | article | ours | verdict |", "|---|---|---|---|---|"]
        lines += [
            markdown_row(v.claim.statement, v.claim.kind, v.claim.article or "-", v.numbers, f"**{v.word}** ({v.rule})")
            for v in verdicts
        ]
    for name, draw in (
        ("curves", plot_curves),
        ("sweep", plot_sweep),
        ("forecasts", plot_forecasts),
        ("rmse", plot_rmse),
    ):
        path = plots / f"{experiment.name}-{name}.png"
        if draw(config, path):
            lines += ["", f"![{experiment.name} {name}](plots/{path.name})"]
        else:  # a plot this config no longer has (a sweep removed, say) is not left beside the report
            path.unlink(missing_ok=True)
    return lines


def _p_cell(verdict: Verdict) -> str:
    if verdict.p_value != verdict.p_value:
        return "-"
    return f"{verdict.p_value:.2g} / {verdict.p_adjusted:.2g}"


def plot_curves(config: ConfigResults, path: Path) -> bool:
    """Mean test metric per epoch with a 95% band, one line per variant (and sweep point)."""
    experiment, metric = config.experiment, config.metric
    epochs = config.epochs[config.epochs["status"] == "ok"]
    keys = list(experiment.sweep)
    if epochs.empty or experiment.point_count > 8:
        return False  # a large sweep reads better in its sweep plot
    figure, axes = plt.subplots(figsize=(6.4, 4))
    # Colour says the variant, line style and marker the sweep point, so that
    # curves which coincide (fit and loop do) still show as two.
    colours = {variant: f"C{index}" for index, variant in enumerate(experiment.variants)}
    point_index = {
        tuple(experiment.typed(key, value) for key, value in point.items()): index
        for index, (point, _) in enumerate(experiment.points)
    }
    for group_keys, group in epochs.groupby([*keys, "variant"], sort=False):
        group_keys = group_keys if isinstance(group_keys, tuple) else (group_keys,)
        label = _group_label([*keys, "variant"], group_keys)
        point = point_index[tuple(group_keys[:-1])]
        matrix = group.pivot_table(index="epoch", columns="seed", values=metric)
        means = matrix.mean(axis=1)
        bands = stats.band(matrix.to_numpy())
        (line,) = axes.plot(
            means.index,
            means.to_numpy(),
            color=colours[group_keys[-1]],
            label=label,
            linestyle=["-", "--", ":", "-."][point % 4],
            marker="osD^v<>p"[point % 8],
        )
        if not np.isnan(bands).all():
            axes.fill_between(means.index, bands[:, 0], bands[:, 1], color=line.get_color(), alpha=0.2)
    axes.set_title(f"{experiment.name}: {_metric_label(metric)} per epoch (mean, 95% bootstrap band)")
    axes.set_xlabel("epoch")
    axes.set_ylabel(_metric_label(metric))
    axes.legend(fontsize="small")
    axes.xaxis.get_major_locator().set_params(integer=True)
    return _save(figure, path)


def plot_sweep(config: ConfigResults, path: Path) -> bool:
    """Final value against the first swept key, one line per variant (and value of
    any other swept key), with 95% interval error bars; one panel per metric the
    config's claims judge (else its main test metric)."""
    experiment = config.experiment
    if not experiment.sweep:
        return False
    judged = [claim.expect.metric for claim in experiment.claims if claim.expect.metric in config.runs.columns]
    metrics = list(dict.fromkeys(judged)) or [config.metric]
    over, *others = list(experiment.sweep)
    values = experiment.sweep[over]
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)
    positions = {experiment.typed(over, value): (value if numeric else index) for index, value in enumerate(values)}
    runs = config.runs[config.runs["status"] == "ok"]
    figure, panels = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4), squeeze=False)
    for axes, metric in zip(panels[0], metrics):
        groups = list(runs.groupby([*others, "variant"], sort=False))
        for index, (group_keys, group) in enumerate(groups):
            group_keys = group_keys if isinstance(group_keys, tuple) else (group_keys,)
            label = _group_label([*others, "variant"], group_keys)
            x, mean, errors = [], [], []
            for value, at_value in group.groupby(over, sort=False):
                numbers = at_value[metric].dropna().to_numpy(dtype=float)
                low, high = stats.mean_interval(numbers)
                offset = 0 if numeric else (index - (len(groups) - 1) / 2) * 0.08
                x.append(positions[value] + offset)
                mean.append(numbers.mean())
                errors.append((numbers.mean() - low, high - numbers.mean()))
            order = np.argsort(x)
            axes.errorbar(
                np.array(x)[order],
                np.array(mean)[order],
                yerr=np.nan_to_num(np.array(errors)[order].T),
                marker="o",
                capsize=3,
                label=label,
                linestyle="-" if numeric else "none",
            )
        if not numeric:
            axes.set_xticks(range(len(values)), [str(value) for value in values])
        elif len(values) > 2 and min(values) > 0 and max(values) / min(values) >= 16:
            axes.set_xscale("log", base=2)
        label = ("final " if metric in METRICS_PER_EPOCH else "") + _metric_label(metric)
        axes.set_title(f"{experiment.name}: {label} by {over}\n(mean, 95% bootstrap CI)")
        axes.set_xlabel(over)
        axes.set_ylabel(label)
        axes.legend(fontsize="small")
    return _save(figure, path)


def plot_forecasts(config: ConfigResults, path: Path) -> bool:
    """The test part: actual values, the persistence forecast, and each variant's
    final walk-forward forecasts (mean over seeds, 95% band), a panel per sweep point."""
    forecasts, experiment = config.forecasts, config.experiment
    if forecasts is None or forecasts.empty:
        return False
    keys = list(experiment.sweep)
    points = list(forecasts.groupby(keys, sort=False)) if keys else [((), forecasts)]
    figure, panels = plt.subplots(1, len(points), figsize=(5.2 * len(points), 4), squeeze=False, sharey=True)
    for axes, (point, at_point) in zip(panels[0], points):
        first = at_point[at_point["seed"] == at_point["seed"].iloc[0]]
        first = first[first["variant"] == first["variant"].iloc[0]]
        axes.plot(first["step"], first["actual"], color="black", marker="o", label="actual")
        axes.plot(first["step"], first["persistence"], color="grey", linestyle="--", label="persistence")
        for index, (variant, group) in enumerate(at_point.groupby("variant", sort=False)):
            matrix = group.pivot_table(index="step", columns="seed", values="forecast")
            means = matrix.mean(axis=1)
            bands = stats.band(matrix.to_numpy())
            axes.plot(means.index, means.to_numpy(), color=f"C{index}", marker=".", label=f"{variant} (mean)")
            if not np.isnan(bands).all():
                axes.fill_between(means.index, bands[:, 0], bands[:, 1], color=f"C{index}", alpha=0.2)
        point = point if isinstance(point, tuple) else (point,)
        axes.set_title(_group_label(keys, point) if keys else experiment.name, fontsize="small")
        axes.set_xlabel("test step (walk-forward)")
    panels[0][0].set_ylabel("value (series units)")
    panels[0][0].legend(fontsize="small")
    figure.suptitle(
        f"{experiment.name}: final-epoch forecasts\nover seeds (mean, 95% bootstrap band)", fontsize="medium"
    )
    return _save(figure, path)


def plot_rmse(config: ConfigResults, path: Path) -> bool:
    """Final test RMSE per sweep point and variant (mean, 95% bootstrap CI), with the
    persistence forecast's RMSE as a line."""
    runs, experiment = config.runs, config.experiment
    if "persistence_rmse" not in runs:
        return False
    keys = list(experiment.sweep)
    ok = runs[runs["status"] == "ok"]
    groups = list(ok.groupby([*keys, "variant"], sort=False))
    figure, axes = plt.subplots(figsize=(max(4.8, 1.2 * len(groups)), 4))
    for index, (_, group) in enumerate(groups):
        values = group["test_rmse"].to_numpy(dtype=float)
        low, high = stats.mean_interval(values)
        errors = np.nan_to_num([[values.mean() - low], [high - values.mean()]])
        axes.errorbar([index], [values.mean()], yerr=errors, marker="o", capsize=4, color=f"C{index % 10}")
        axes.hlines(group["persistence_rmse"].iloc[0], index - 0.4, index + 0.4, colors="grey", linestyles="--")
    labels = [_group_label([*keys, "variant"], keys_ if isinstance(keys_, tuple) else (keys_,)) for keys_, _ in groups]
    axes.set_xticks(range(len(groups)), labels, rotation=20, ha="right", fontsize="small")
    axes.set_ylabel("final test RMSE (series units)")
    axes.set_title(
        f"{experiment.name}: final test RMSE (mean, 95% bootstrap CI)\ndashed: the persistence forecast's RMSE"
    )
    return _save(figure, path)


def _group_label(keys: list[str], values: tuple) -> str:
    """ "train.batch_size=4, stateful": swept keys with their values, the variant bare."""
    return ", ".join(str(value) if key == "variant" else f"{key}={value}" for key, value in zip(keys, values))


def _metric_label(metric: str) -> str:
    labels = {"epoch_seconds": "seconds per epoch", "peak_memory_mb": "peak memory (MB)"}
    return labels.get(metric, metric.replace("_", " "))


def _save(figure, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)
    return True
