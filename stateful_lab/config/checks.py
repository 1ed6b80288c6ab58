"""The cross-field checks of an experiment: what each field allows alone is the
schema's (`experiment`); what fields allow together is here, one line per problem."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stateful_lab.config.experiment import Experiment

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STATEFUL_VARIANTS = ("stateful",)
TIME_METRICS = ("epoch_seconds", "seconds_to_reach")


def sweep_key_problems(sweep: dict[str, list[Any]], known: list[str]) -> list[str]:
    """Each swept key that the schema lacks or may not sweep (`known` lists those it may), or whose list is empty."""
    problems = []
    for key, values in sweep.items():
        if key not in known:
            guess = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {guess[0]}?" if guess else "; give a dotted key such as train.batch_size"
            problems.append(f"sweep.{key}: not a key that can be swept{hint}")
        elif not values:
            problems.append(f"sweep.{key}: the list of values is empty; give at least one")
    return problems


def consistency_problems(experiment: Experiment) -> list[str]:
    """Every problem between fields of one experiment, one line each, and the task's size checks."""
    data, model, train = experiment.data, experiment.model, experiment.train
    problems = []
    if not FOLDER_NAME.fullmatch(experiment.name):
        problems.append(
            f"name: {experiment.name!r} is not a plain folder name (it names the results folder); use letters, "
            "digits, '.', '_' and '-', starting with a letter or digit"
        )
    if model.layers != len(model.units):
        problems.append(
            f"model.layers: {model.layers} does not match the {len(model.units)} entries of "
            "model.units; give one units value per layer, or a single number"
        )
    if model.cell == "simple_rnn" and model.recurrent_activation != "sigmoid":
        problems.append(
            f"model.recurrent_activation: {model.recurrent_activation} is for gated cells; "
            "simple_rnn has no gates, so remove it or use cell lstm or gru"
        )
    categorical = data.output_units > 1
    if categorical != (model.output_activation == "softmax"):
        problems.append(
            "model.output_activation: softmax is the head of a categorical target, and a categorical target "
            f"needs it (this one is {model.output_activation}); leave output_activation out"
        )
    if categorical != (model.loss == "sparse_categorical_crossentropy"):
        problems.append(
            "model.loss: sparse_categorical_crossentropy is the loss of a categorical target, and a categorical "
            f"target needs it (this one is {model.loss}); leave loss out"
        )
    if any(units < 1 for units in model.units):
        problems.append(f"model.units: {model.units} must all be at least 1")
    if train.shuffle and any(v in STATEFUL_VARIANTS for v in experiment.variants):
        problems.append(
            "train.shuffle: true cannot be used with a stateful variant (shuffling breaks the "
            "lane-to-lane order the state relies on); set shuffle: false or drop the variant"
        )
    if train.shuffle and train.trainer == "loop":
        problems.append(
            "train.shuffle: true needs train.trainer fit or train_on_batch; the compiled loop feeds batches in order"
        )
    timed = sorted({claim.id for claim in experiment.claims if claim.expect.metric in TIME_METRICS})
    if timed and train.trainer == "loop" and train.group and not train.isolate:
        problems.append(
            f"claims {', '.join(timed)} compare time, but grouped runs (train.group: true) share one "
            "program's time; set train.group: false to time runs one at a time"
        )
    if len(set(experiment.variants)) != len(experiment.variants):
        problems.append(f"variants: {experiment.variants} lists a variant twice")
    seeds = experiment.seeds
    if isinstance(seeds, int) and seeds < 1:
        problems.append(f"seeds: {seeds} must be at least 1 (N means seeds 0..N-1)")
    if isinstance(seeds, list):
        if not seeds:
            problems.append("seeds: the list is empty; give at least one seed")
        if any(seed < 0 for seed in seeds):
            problems.append(f"seeds: {seeds} must be non-negative")
        if len(set(seeds)) != len(seeds):
            problems.append(f"seeds: {seeds} lists a seed twice")
    if train.reset == "sequence" and experiment.windows_per_sequence == 1:
        problems.append(
            "train.reset: sequence needs sequences longer than one window (data.sequence_length "
            "a multiple of data.timesteps, above it); use epoch, never or batch"
        )
    if "wide_window" in experiment.variants and (
        experiment.per_step_targets or experiment.windows_per_sequence > 1 or not data.wide_window
    ):
        problems.append(
            f"variants: wide_window predicts one label per window from the window before it; it cannot be used "
            f"with task {data.task}, per-step targets or data.sequence_length"
        )
    return problems + data.problems(train.batch_size)
