"""`make bench`: how much faster the lab's compiled loop trains than the plain
Keras procedure of the blog post "stateful option in Keras LSTM", and than Keras
`fit` tuned as well as Keras allows (XLA and every batch of an epoch in one call).

Both train the blog's stateful first_timestep model (1024 samples, batch 4,
5 steps, 3 units) for 5 epochs, in this one process. The plain side is written
with Keras alone, the way the article trains: reset, then fit(epochs=1,
shuffle=False), each epoch. Each side is warmed up first (tracing and XLA
compilation happen once per process and are not per-epoch costs), then timed over
REPEATS trainings; the figure is the median ms per epoch. The whole `stateful-lab
run` is then timed with 1 seed and with 10 seeds, compile and import included.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras

from .atomic import write_atomic
from .config import load_experiment
from .models import build_model
from .provenance import cpu_model
from .tasks import make_dataset
from .trainers import train_loop
from .unit import seed_everything

REPEATS = 3
EPOCHS = 5
CONFIG = Path("configs/first_timestep.yaml")


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


def time_cli_run(seeds: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "stateful_lab", "run", str(CONFIG), "--seeds", str(seeds), "--out", out, "--quiet"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    experiment = load_experiment(CONFIG, ["train.trainer=loop", "variants=[stateful]", f"train.epochs={EPOCHS}"])
    dataset = make_dataset(experiment.data, experiment.train.batch_size, seed=0)
    # Keras' fit turns XLA off while TensorFlow's op determinism is on, which the lab's
    # seeding enables; a user tuning fit for speed would not, so it is timed first.
    tuned = keras_fit_ms_per_epoch(dataset.x_train, dataset.y_train, tuned=True)
    seed_everything(0)
    plain = keras_fit_ms_per_epoch(dataset.x_train, dataset.y_train)
    loop, loop_with_evaluation = lab_loop_ms_per_epoch(experiment, dataset)
    print(f"plain Keras fit loop:      {plain:.1f} ms/epoch (median of {REPEATS})", flush=True)
    print(f"tuned Keras fit loop:      {tuned:.1f} ms/epoch (median of {REPEATS})", flush=True)
    print(f"lab loop trainer:          {loop:.2f} ms/epoch (median of {REPEATS})", flush=True)
    print(f"  with its test evaluation: {loop_with_evaluation:.2f} ms/epoch", flush=True)
    one, ten = time_cli_run(1), time_cli_run(10)
    print(f"stateful-lab run {CONFIG} --seeds 1:  {one:.1f} s")
    print(f"stateful-lab run {CONFIG} --seeds 10: {ten:.1f} s ({ten / one:.2f}x one seed)")
    speedup = plain / loop
    write_atomic(
        Path("results/bench.md"),
        "\n".join(
            [
                "# Benchmark: plain and tuned Keras fit vs the lab's compiled loop",
                "",
                "The blog's stateful first_timestep setup: 1024 samples, batch 4, 5 steps, 3 units, "
                f"{EPOCHS} epochs. Median of {REPEATS} trainings after one warm-up, in one process "
                "(`make bench`).",
                "",
                "| measurement | figure |",
                "|---|---|",
                f"| plain Keras: reset + fit(epochs=1, shuffle=False) per epoch | {plain:.1f} ms/epoch |",
                f"| lab `loop` trainer: one XLA-compiled function per epoch | {loop:.2f} ms/epoch |",
                "| Keras tuned: the same, compiled with jit_compile=True, "
                f"steps_per_execution={len(dataset.x_train) // 4} | {tuned:.1f} ms/epoch |",
                f"| speedup over plain fit (same work: training epochs only) | {speedup:.1f}x |",
                f"| speedup over tuned fit | {tuned / loop:.1f}x |",
                "| lab `loop` with its per-epoch test evaluation (256 samples) | "
                f"{loop_with_evaluation:.2f} ms/epoch |",
                f"| `stateful-lab run {CONFIG} --seeds 1` (2 variants, import and compile included) | {one:.1f} s |",
                f"| `stateful-lab run {CONFIG} --seeds 10` | {ten:.1f} s ({ten / one:.2f}x one seed) |",
                "",
                f"Machine: {cpu_model()}, {__import__('os').cpu_count()} cores.",
                "",
            ]
        ),
    )
    print(f"speedup: {speedup:.1f}x over plain fit, {tuned / loop:.1f}x over tuned fit")


if __name__ == "__main__":
    main()
