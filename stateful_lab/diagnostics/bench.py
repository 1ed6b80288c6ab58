"""`make bench`: how fast the lab trains the blog's setup, against Keras itself.

The blog post "stateful option in Keras LSTM": its stateful first_timestep model
(1024 samples, batch 4, 5 steps, 3 units) trained for 5 epochs, in this one
process, four ways: the plain Keras procedure the article uses (reset, then
fit(epochs=1, shuffle=False), each epoch); Keras `fit` tuned as well as Keras
allows (XLA and every batch of an epoch in one call); the lab's single-run `loop`
trainer; and the lab's grouped runs (grouped.py), many runs in one program, per
run. Each is warmed up first (tracing and XLA compilation happen once per shape
and process, not per epoch), then timed over REPEATS trainings; figures are
median ms of training per epoch. Then: the per-run cost as the group grows to
1,000 runs, where an epoch goes (`decomposed`), the floating-point rate achieved
against the machine's, 100- and 1,000-run groups' memory, and from the shell
(`shell`): a 10,000-run sweep with its phases and memory, `stateful-lab run`
with 1 and 10 seeds, and `ask` on a 2,000-row table. `bench_report` writes
results/bench.md.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from stateful_lab.atomic import write_atomic
from stateful_lab.config.experiment import Experiment, load_experiment
from stateful_lab.diagnostics.shell import CONFIG, SWEEP_SEEDS, cli_sweep, time_ask, time_cli_run
from stateful_lab.provenance import cpu_fields, peak_memory_mb
from stateful_lab.runs.seeding import seed_everything
from stateful_lab.runs.unit import Unit
from stateful_lab.tasks import make_dataset
from stateful_lab.training.engine import SHARD_STEPS, prepared, side_by_side
from stateful_lab.training.grouped.program import GroupedLoop
from stateful_lab.training.grouped.sizing import padded, split_sizes
from stateful_lab.training.models import build_model
from stateful_lab.training.shapes import GATES
from stateful_lab.training.trainers import train_loop

REPEATS = 3
EPOCHS = 5
GROUP = 20
"""Runs in the group whose per-run cost is set against tuned fit."""
GROUP_SIZES = (1, 5, 20, 100, 1000)
DECOMPOSED = (100, 1000)
"""Group sizes whose epoch the bench takes apart."""
FLOPS_PER_CYCLE = 32
"""Float32 operations per core and cycle with two 256-bit fused multiply-add
pipes, 8 lanes each, 2 operations per multiply-add: AVX2 and FMA, and Zen 4's
AVX-512 too (family 25, the lab's machine since December 2026), which runs each
512-bit instruction on those two pipes as two halves."""
FLOPS_PER_CYCLE_ZEN1 = 16
"""AMD's first Zen cores (family 23, models below 0x30: the lab's machine until
November 2026) run a 256-bit instruction as two halves on two 128-bit pipes:
half the rate."""


def keras_fit_ms_per_epoch(x, y, tuned: bool = False) -> float:
    """The article's procedure with Keras 3 spellings; no lab code inside the timing.
    Tuned: compiled with jit_compile=True and steps_per_execution = batches per
    epoch, the best a careful Keras user can get from fit itself."""
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(4, 5, 1)),
            keras.layers.LSTM(3, stateful=True),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    tuning = {"jit_compile": True, "steps_per_execution": len(x) // 4} if tuned else {}
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy"], **tuning)
    if tuned and not model.jit_compile:  # Keras falls back silently but for a warning
        raise RuntimeError("Keras turned jit_compile off (is op determinism on?); the tuned figure would not be XLA")
    lstm = model.layers[0]

    def one_training() -> float:
        started = time.perf_counter()
        for _ in range(EPOCHS):
            lstm.reset_state()
            model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        return (time.perf_counter() - started) * 1000 / EPOCHS

    one_training()  # warm-up: traces fit's train function
    return statistics.median(one_training() for _ in range(REPEATS))


def lab_loop_ms_per_epoch(experiment, dataset) -> tuple[float, float]:
    """Median ms per epoch of training alone (the plain side's work), and of
    training with the lab's per-epoch evaluation."""

    def one_training() -> tuple[float, float]:
        model = build_model(experiment, "stateful", experiment.train.batch_size, seed=0)
        started = time.perf_counter()
        training = sum(result.seconds for result in train_loop(model, experiment, dataset, "stateful"))
        with_evaluation = time.perf_counter() - started
        return training * 1000 / EPOCHS, with_evaluation * 1000 / EPOCHS

    one_training()  # warm-up: XLA-compiles the epoch and evaluation functions
    timings = [one_training() for _ in range(REPEATS)]
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def trained_group(
    experiment: Experiment, runs: int, first: int = 0, slot: int = 0, size: int | None = None
) -> tuple[GroupedLoop, tf.Tensor, tf.Tensor]:
    """A group of `runs` stateful runs (seeds `first` on), loaded and compiled, in
    program slot `slot` (groups trained side by side need slots of their own);
    with `size`, filled up to that many runs with copies of the last, as `run`
    fills a shard (`sizing.padded`)."""
    items = [prepared(Unit({}, "stateful", seed, experiment)) for seed in range(first, first + runs)]
    items += items[-1:] * ((size or runs) - runs)
    runs = len(items)
    group = GroupedLoop.for_group([experiment] * runs, ("bench",), slot)
    group.load([weights for _, weights in items], [True] * runs, [experiment] * runs)
    x, y = group.batches([dataset.x_train for dataset, _ in items], [dataset.y_train for dataset, _ in items])
    group.train_epoch(x, y)[0].numpy()  # warm-up: XLA-compiles the group's epoch
    return group, x, y


def lab_group_ms_per_epoch(experiment: Experiment, runs: int) -> float:
    """Median ms per epoch of training a group of `runs` runs (all of them)."""
    group, x, y = trained_group(experiment, runs)

    def one_training() -> float:
        group.reset_states()
        started = time.perf_counter()
        for _ in range(EPOCHS):
            group.train_epoch(x, y)[0].numpy()
        return (time.perf_counter() - started) * 1000 / EPOCHS

    return statistics.median(one_training() for _ in range(REPEATS))


def lab_side_by_side_ms_per_epoch(experiment: Experiment, runs: int, lanes: int) -> dict[str, float]:
    """Median ms per epoch of training `runs` runs as `run` trains a large group:
    cut into `lanes` shards (`training.engine`), each its own program filled up
    to whole vectors of runs (`sizing.padded`), trained at once in threads; and
    the cores busy meanwhile (CPU time / wall time)."""
    shards, start = [], 0
    for slot, size in enumerate(split_sizes(runs, math.ceil(runs / lanes))):
        shards.append(trained_group(experiment, size, start, slot, padded(size)))
        start += size

    def epochs(shard) -> None:
        group, x, y = shard
        for _ in range(EPOCHS):
            group.train_epoch(x, y)[0].numpy()

    def one_training() -> tuple[float, float]:
        for group, _, _ in shards:
            group.reset_states()
        cpu, started = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(len(shards)) as pool:
            list(pool.map(epochs, shards))
        wall = time.perf_counter() - started
        return wall * 1000 / EPOCHS, (time.process_time() - cpu) / wall

    timings = sorted(one_training() for _ in range(REPEATS))
    return {"ms": timings[len(timings) // 2][0], "cores": timings[len(timings) // 2][1], "shards": len(shards)}


def cores_busy(experiment: Experiment, runs: int) -> float:
    """CPU time / wall time while one program trains `runs` runs for EPOCHS epochs."""
    group, x, y = trained_group(experiment, runs)
    cpu, started = time.process_time(), time.perf_counter()
    for _ in range(EPOCHS):
        group.train_epoch(x, y)[0].numpy()
    return (time.process_time() - cpu) / (time.perf_counter() - started)


def training_flops_per_epoch(experiment: Experiment, samples: int) -> int:
    """Floating-point operations of one run's training epoch, counting the matrix
    products (2 m n k each) of the forward pass and twice that for the backward
    pass (the input and the weight gradients), the usual convention; the
    element-wise gate arithmetic and the optimizer are left out, so this is a
    floor on the work done."""
    spec, data = experiment.model, experiment.data
    gates, inputs, per_sample = GATES[spec.cell], data.features, 0
    for units in spec.units:
        per_sample += data.timesteps * 2 * (inputs + units) * gates * units
        inputs = units
    per_sample += 2 * inputs  # the Dense head
    return 3 * per_sample * samples


def measured_matmul_gflops(size: int = 2048, trials: int = 5) -> float:
    """The float32 rate of one large matrix product with all of TensorFlow's
    threads, the best these cores reach in practice: the best of `trials`
    timings of 5 products, a second apart. On a shared host a neighbour's load
    lowers a timing, never raises it, and a low rate would flatter every
    fraction of it (here one timing measured 113 GFLOP/s, the next 198)."""
    a = tf.random.stateless_uniform((size, size), seed=(1, 2))
    tf.matmul(a, a).numpy()
    rates = []
    for trial in range(trials):
        time.sleep(1 if trial else 0)
        started = time.perf_counter()
        for _ in range(5):
            tf.matmul(a, a).numpy()
        rates.append(5 * 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return max(rates)


def nominal_peak_gflops(fields: dict[str, str] | None = None) -> tuple[float, int] | None:
    """Cores x clock x float32 operations per cycle, from /proc/cpuinfo's `fields`
    (default: this machine's), and those operations per cycle; None if unknown."""
    fields = cpu_fields() if fields is None else fields
    try:
        mhz = float(fields["cpu MHz"])
        zen1 = (
            fields.get("vendor_id") == "AuthenticAMD"
            and fields.get("cpu family") == "23"
            and int(fields["model"]) < 0x30
        )
    except (KeyError, ValueError):
        return None
    per_cycle = FLOPS_PER_CYCLE_ZEN1 if zen1 else FLOPS_PER_CYCLE
    return (os.cpu_count() or 1) * mhz * 1e6 * per_cycle / 1e9, per_cycle


def group_memory(runs: int, lanes: int = 1) -> dict[str, float]:
    """In a fresh process: peak memory before a `runs`-run group, and after
    loading its data, compiling it and training it for EPOCHS epochs (VmHWM, MB),
    as one program or, with `lanes`, as that many shards side by side. The child
    compiles its programs (the compilation cache off): loaded from the cache
    instead, a program's compilation is not in the peak, and whether the cache
    holds it depends on what ran before."""
    child = subprocess.run(
        [sys.executable, "-m", "stateful_lab.diagnostics.bench", "--memory", str(runs), str(lanes)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STATEFUL_LAB_CACHE": "off"},
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def _memory_child(runs: int, lanes: int) -> None:
    experiment = bench_experiment()
    before = peak_memory_mb()
    if lanes > 1:
        lab_side_by_side_ms_per_epoch(experiment, runs, lanes)
    else:
        group, x, y = trained_group(experiment, runs)
        for _ in range(EPOCHS):
            group.train_epoch(x, y)[0].numpy()
    print(json.dumps({"before_mb": before, "peak_mb": peak_memory_mb()}))


def decomposed(experiment: Experiment, groups: dict[int, float]) -> dict:
    """Where a group's epoch goes, from measurements: a least-squares line through
    the growth table (ms per epoch against runs) splits an epoch into a fixed
    part, paid once per epoch whatever the runs (the compiled loop's steps and
    their dispatch), and a part per run (each run's arithmetic); and for the
    DECOMPOSED sizes, the share of an epoch with the lab's evaluation that the
    evaluation takes (train_epochs, which trains then evaluates, against
    train_epoch, which only trains)."""
    runs = np.array(list(groups))
    slope, intercept = np.polyfit(runs, np.array(list(groups.values())), 1)
    parts = {"fixed_ms": float(intercept), "per_run_ms": float(slope), "at": {}}
    for size in DECOMPOSED:
        group, x, y = trained_group(experiment, size)
        xt, yt = evaluation_batches(experiment, size, group)
        epoch = functools.partial(group.train_epochs, tf.constant(1), tf.constant(1), tf.constant([True] * size))
        epoch((x, y), (xt, yt))[0][0].numpy()  # compiles the epoch with its evaluation
        total = statistics.median(_timed(epoch, (x, y), (xt, yt)) for _ in range(REPEATS))
        training = groups[size]
        parts["at"][size] = {
            "epoch_with_evaluation_ms": total,
            "evaluation_share": max(0.0, 1 - training / total),
            "fixed_share": min(1.0, max(0.0, intercept / training)),
            "per_run_share": min(1.0, max(0.0, slope * size / training)),
        }
    return parts


def _timed(epoch, train, test) -> float:
    """ms per epoch of `epoch(train, test)` over EPOCHS calls."""
    started = time.perf_counter()
    for _ in range(EPOCHS):
        epoch(train, test)[0][0].numpy()
    return (time.perf_counter() - started) * 1000 / EPOCHS


def evaluation_batches(experiment: Experiment, runs: int, group: GroupedLoop) -> tuple[tf.Tensor, tf.Tensor]:
    items = [prepared(Unit({}, "stateful", seed, experiment)) for seed in range(runs)]
    return group.batches([dataset.x_test for dataset, _ in items], [dataset.y_test for dataset, _ in items])


def bench_experiment() -> Experiment:
    return load_experiment(CONFIG, ["train.trainer=loop", "variants=[stateful]", f"train.epochs={EPOCHS}"])


def main() -> None:
    from stateful_lab.diagnostics.bench_report import report, report_tail, scale_report

    experiment = bench_experiment()
    dataset = make_dataset(experiment.data, experiment.train.batch_size, seed=0)
    # Keras' fit turns XLA off while TensorFlow's op determinism is on, which the lab's
    # seeding enables; a user tuning fit for speed would not, so it is timed first.
    tuned = keras_fit_ms_per_epoch(dataset.x_train, dataset.y_train, tuned=True)
    seed_everything(0)
    plain = keras_fit_ms_per_epoch(dataset.x_train, dataset.y_train)
    loop, loop_with_evaluation = lab_loop_ms_per_epoch(experiment, dataset)
    print(f"plain Keras fit loop:       {plain:.1f} ms/epoch (median of {REPEATS})", flush=True)
    print(f"tuned Keras fit loop:       {tuned:.1f} ms/epoch", flush=True)
    print(f"lab loop trainer, one run:  {loop:.2f} ms/epoch ({tuned / loop:.1f}x tuned fit)", flush=True)
    groups = {runs: lab_group_ms_per_epoch(experiment, runs) for runs in GROUP_SIZES}
    for runs, ms in groups.items():
        print(f"lab group of {runs:3d} runs:     {ms:.2f} ms/epoch, {ms / runs:.3f} ms per run", flush=True)
    per_run = groups[GROUP] / GROUP
    print(f"grouped ({GROUP} runs), per run: {tuned / per_run:.1f}x tuned fit, {plain / per_run:.0f}x plain fit")
    lanes = side_by_side()
    batches = (len(dataset.x_train) + len(dataset.x_test)) // experiment.train.batch_size
    side = {}
    for runs in GROUP_SIZES:
        if runs >= lanes > 1:
            side[runs] = lab_side_by_side_ms_per_epoch(experiment, runs, lanes)
            side[runs]["run_shards"] = runs * EPOCHS * batches // SHARD_STEPS >= 2
            print(
                f"{lanes} shards of {runs:4d} runs side by side: {side[runs]['ms']:.2f} ms/epoch, "
                f"{side[runs]['ms'] / runs:.3f} ms per run, {side[runs]['cores']:.2f} cores busy",
                flush=True,
            )
    busy = cores_busy(experiment, 1000)
    print(f"one program of 1000 runs: {busy:.2f} cores busy")
    flops = training_flops_per_epoch(experiment, len(dataset.x_train))
    best = max(GROUP_SIZES, key=lambda runs: runs / groups[runs])
    achieved = flops * best / (groups[best] / 1000) / 1e9
    matmul, nominal = measured_matmul_gflops(), nominal_peak_gflops()
    shown = f"{nominal[0]:.0f} at the clock /proc/cpuinfo gives" if nominal else "unknown"
    print(f"floating point: {achieved:.2f} GFLOP/s at {best} runs; one large matmul {matmul:.1f}; nominal {shown}")
    memory = group_memory(100)
    print(f"100-run group: peak {memory['peak_mb']:.0f} MB ({memory['before_mb']:.0f} MB before the group)")
    memory_1000 = group_memory(1000)
    print(f"1000-run group: peak {memory_1000['peak_mb']:.0f} MB ({memory_1000['before_mb']:.0f} MB before the group)")
    parts = decomposed(experiment, groups)
    for size, shares in parts["at"].items():
        print(
            f"{size} runs: evaluation {shares['evaluation_share']:.0%} of an epoch with it; of training, fixed "
            f"{shares['fixed_share']:.0%}, per run {shares['per_run_share']:.0%} (line: {parts['fixed_ms']:.2f} ms "
            f"+ {parts['per_run_ms']:.4f} ms a run)"
        )
    at_1000 = side[1000]["ms"] if 1000 in side else groups[1000]
    achieved_1000 = flops * 1000 / (at_1000 / 1000) / 1e9
    print(f"1000 runs: {achieved_1000:.2f} GFLOP/s, {100 * achieved_1000 / matmul:.1f}% of the matrix product's rate")
    memory_side = group_memory(1000, lanes) if 1000 in side else None
    sweep = cli_sweep(SWEEP_SEEDS)
    print(f"{2 * SWEEP_SEEDS} runs from the shell: {sweep['seconds']:.1f} s, peak {sweep['peak_mb']:.0f} MB")
    print(f"  phases: {sweep['phases']}")
    one, ten = time_cli_run(1), time_cli_run(10)
    print(f"stateful-lab run {CONFIG} --seeds 1:  {one:.1f} s")
    print(f"stateful-lab run {CONFIG} --seeds 10: {ten:.1f} s ({ten / one:.2f}x one seed)")
    asked, answer = time_ask()
    print(f"stateful-lab ask, 2,000 rows x 3 numeric columns, defaults: {asked:.1f} s (answer: {answer})")
    write_atomic(
        Path("results/bench.md"),
        report(plain, tuned, loop, loop_with_evaluation, groups, side, flops, best, achieved, matmul, nominal)
        + report_tail(memory, one, ten)
        + f"\n`stateful-lab ask` on a 2,000-row table of three numeric columns, default settings (10 seeds, 40 "
        f"runs), from the shell, import and compilation included: {asked:.1f} s (answer: {answer}).\n"
        + scale_report(tuned, groups, side, busy, memory_1000, memory_side, parts, achieved_1000, matmul, sweep),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        _memory_child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
