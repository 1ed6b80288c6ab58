"""How large a run is and how many runs a group takes, from the config alone.

A group's size is a pure function of the config: never of `--jobs`, of the memory
free at run time or of timing, so that planning never changes a number. It
matters because a run whose matrix products are large enough for XLA's batched
kernel (`shapes.fused` says which) differs in its last bits with the number of runs
in its batch: such a run always trains in a group of exactly `group_size` runs,
the last group filled up with copies whose results are dropped
(tests/test_planning.py).
"""

from __future__ import annotations

import math

from stateful_lab.config.experiment import Experiment
from stateful_lab.training.shapes import GATES, fused

FLOAT_BYTES = 4
ARRAY_COPIES = 3
"""A task's arrays as generated, cut into windows, and as tensors in a program."""
CACHE_BYTES = 4 * 2**20
"""A group's weights, gradients and two optimizer slots at most: half of an 8 MB
L3 cache, each of two workers' share (timed in commit d729853). Fixed, not read
from the machine, so that the same config plans the same groups."""
GROUP_BYTES = 2**30
"""A group's memory at most, by the estimate of `run_bytes`."""


def weight_count(experiment: Experiment) -> int:
    """One run's weights: each recurrent layer's kernel, recurrent kernel and
    biases (two for a GRU), and the Dense head."""
    spec = experiment.model
    outputs = experiment.data.output_units
    weights, inputs = outputs * (1 + spec.units[-1]), experiment.data.features
    for units in spec.units:
        weights += (inputs + units + 2) * GATES[spec.cell] * units
        inputs = units
    return weights


def run_bytes(experiment: Experiment, widening: int = 1) -> int:
    """A generous estimate of one run's memory, from its config: its arrays (three
    copies, `widening` times as wide for wide_window), its weights four times over
    (weights, gradients, two optimizer slots), and the activations one batch's
    gradient keeps (every gate of every step and layer, and the cell and output)."""
    spec, train = experiment.model, experiment.train
    elements, _ = experiment.data.array_elements(train.batch_size)
    data = elements * FLOAT_BYTES * ARRAY_COPIES * widening
    steps = experiment.data.timesteps * widening
    activations = train.batch_size * steps * sum(spec.units) * (GATES[spec.cell] + 4) * FLOAT_BYTES
    return data + weight_count(experiment) * 4 * FLOAT_BYTES + activations


def runs_in_cache(experiment: Experiment) -> int:
    """The most runs whose weights, gradients and two optimizer slots fit in
    CACHE_BYTES: larger groups of large layers run slower per run, their working
    set spilling out of the cache. The blog's 3-unit model is never cut."""
    return max(1, CACHE_BYTES // (4 * FLOAT_BYTES * weight_count(experiment)))


def size_sensitive(experiment: Experiment, variant: str) -> bool:
    """Whether some matrix product of the program takes XLA's batched kernel, whose
    rounding depends on how many runs the batch holds."""
    spec, lanes = experiment.model, experiment.train.batch_size
    steps = experiment.data.timesteps * (2 if variant == "wide_window" else 1)
    if any(not fused(lanes, units, GATES[spec.cell] * units) for units in spec.units):
        return True
    head_rows = lanes * steps if experiment.per_step_targets else lanes
    return not fused(head_rows, spec.units[-1], 1)


SENSITIVE_GROUP = 16
"""A size-sensitive program's group size at most: every group of one is filled up
to its size, so a large size would make a small config train many copies."""


def group_size(experiment: Experiment, variant: str) -> int:
    """The most runs of this program a group takes: what fits the cache and
    GROUP_BYTES, and SENSITIVE_GROUP for a size-sensitive program, each of whose
    groups has exactly this size."""
    widening = 2 if variant == "wide_window" else 1
    largest = max(1, min(runs_in_cache(experiment), GROUP_BYTES // run_bytes(experiment, widening)))
    return min(largest, SENSITIVE_GROUP) if size_sensitive(experiment, variant) else largest


VECTOR_LANES = 8
"""float32 lanes of the 256-bit vectors XLA's CPU code computes with."""


def padded(runs: int) -> int:
    """The size a group of `runs` runs of a program that is not size-sensitive
    trains as: from 9 runs on, up to the next multiple of VECTOR_LANES, filled
    with copies whose results are dropped (`grouped.driver.Together`). A group's
    element-wise loops run along the run axis, a vector of 8 runs at a time, and
    the runs left over one at a time at about a vector's cost each: one copy
    more costs less than one run left over. The blog's model, an epoch on one
    core, same process, medians of 8: 20 runs 11.0 ms, 24 runs 7.8 ms; 100 runs
    20.8 ms, 104 runs 17.9 ms; 500 runs 80.8 ms, 504 runs 75.5 ms. Not below 9:
    2 runs 5.9 ms, 8 runs 7.4 ms. A run's figures do not depend on the runs
    beside it in such a program, so the copies change none."""
    return runs if runs <= VECTOR_LANES else math.ceil(runs / VECTOR_LANES) * VECTOR_LANES


def even_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into groups of at most `largest`, all of one size (one compiled
    program serves them all) where up to twice the fewest groups allow it, else
    as equal as possible."""
    fewest = max(1, math.ceil(runs / max(1, largest)))
    for groups in range(fewest, min(runs, 2 * fewest) + 1):
        if runs % groups == 0:
            return [runs // groups] * groups
    return split_sizes(runs, largest)


def split_sizes(runs: int, largest: int) -> list[int]:
    """`runs` cut into the fewest groups of at most `largest`, as equal as possible."""
    groups = max(1, math.ceil(runs / max(1, largest)))
    base, extra = divmod(runs, groups)
    return [base + (index < extra) for index in range(groups)]
