"""What the lab prints while it works: TensorFlow's own log lines kept off the
console, and progress as a live bar on a terminal or as plain lines elsewhere.

TensorFlow's C++ runtime writes absl log lines ("I0000 ... cudart_stub.cc:31]
Could not find cuda drivers", "E0000 ... failed call to cuInit") straight to file
descriptor 2, at import and at its first operation, before any Python setting
can silence them; worker processes inherit the same descriptor. So the CLI puts
a pipe in front of descriptor 2 and a thread copies every line through except
those (`quiet_tensorflow`); `stateful-lab --verbose` leaves stderr alone.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable

# An absl/glog line: severity letter, MMDD, time, thread id, file:line]; or the
# Python logger's warning that a function was traced again, which the lab does
# by design, once per shape (a compiled group, Keras' predict for each model).
TENSORFLOW_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\]"
    rb"|WARNING:tensorflow:.* triggered tf\.function retracing\.)"
)


def quiet_tensorflow() -> None:
    """Drop TensorFlow's C++ log lines from this process's stderr (descriptor 2)
    and its children's; every other line passes unchanged. Does nothing when
    stderr is not a real descriptor (inside a test runner's capture)."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    stop_read, stop_write = os.pipe()
    copier = threading.Thread(target=_copy_lines, args=(read_end, original, stop_read), daemon=True)
    copier.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writer in this process
        os.write(stop_write, b"x")  # children may still hold it open (a worker process
        copier.join(timeout=2)  # does, until this process ends): copy what is there, then stop

    atexit.register(restore)


def _copy_lines(read_end: int, target: int, stop: int) -> None:
    """Copy lines from the pipe until it closes, or until `stop` is readable and
    the pipe holds nothing more."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending, stopping = b"", False
        while True:
            ready, _, _ = select.select([pipe, stop], [], [], 0 if stopping else None)
            stopping = stopping or stop in ready
            if pipe not in ready:
                if stopping:
                    break
                continue
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line for line in lines if not TENSORFLOW_LINE.match(line)]
            if kept:
                os.write(target, b"\n".join(kept) + b"\n")
        if pending and not TENSORFLOW_LINE.match(pending):
            os.write(target, pending)


class LineProgress:
    """One plain line per finished run (for logs and CI), and the lab's own lines."""

    def __init__(self, echo: Callable[[str], None], quiet: bool = False):
        self.echo, self.quiet = echo, quiet
        self.total = self.done = self.diverged = self.failed = 0
        self.started = time.perf_counter()

    def start(self, total: int, epochs: dict[str, int] | None = None) -> None:
        """`total` runs to do; `epochs`, each one's epochs by its key (for progress by epochs)."""
        self.total, self.started = total, time.perf_counter()

    def begin(self, label: str) -> None:
        """A run starts (known only when runs go one at a time)."""

    def epoch(self, key: str, epoch: int) -> None:
        """A run recorded an epoch (0-based), maybe in a worker's thread: plain lines
        say nothing until the run ends."""

    def finish(self, label: str, status: str, seconds: float, key: str | None = None) -> None:
        self.done += 1
        self.diverged += status == "diverged"
        self.failed += status == "failed"
        self.show(label, status, seconds)

    def show(self, label: str, status: str, seconds: float) -> None:
        if not self.quiet:
            left = (time.perf_counter() - self.started) / self.done * (self.total - self.done)
            self.echo(f"[{self.done}/{self.total}] {label}: {status}, {seconds:.1f} s; about {left:.0f} s left")

    def close(self) -> None:
        """The runs are over."""


class BarProgress(LineProgress):
    """A live bar on a terminal: runs done / total, the run in flight, elapsed and
    estimated time left, diverged and failed counts. The lab's own lines print
    above it. The bar measures epochs, not runs: it moves as a group's epochs
    finish (`epoch`, heard from this process or a worker's), so that a group of
    hundreds of runs shows where it is and how long is left; a run that ends
    credits the epochs it did not report (all of them, if it reported none)."""

    def __init__(self, quiet: bool = False):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self.bar = Progress(
            TextColumn("[bold]runs"),
            BarColumn(),
            TextColumn("{task.fields[runs]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.description}"),
            console=self.console,
        )
        super().__init__(lambda line: self.console.print(line, markup=False, highlight=False), quiet)
        self.task = None
        self.epochs: dict[str, int] = {}
        self.reported: dict[str, int] = {}
        self.lock = threading.Lock()

    def start(self, total: int, epochs: dict[str, int] | None = None) -> None:
        super().start(total)
        self.epochs, self.reported = dict(epochs or {}), {}
        self.bar.start()
        size = sum(self.epochs.values()) if self.epochs else total
        self.task = self.bar.add_task("", total=size, counts="0 diverged, 0 failed", runs=f"0/{total}")

    def begin(self, label: str) -> None:
        self.bar.update(self.task, description=label)

    def epoch(self, key: str, epoch: int) -> None:
        with self.lock:
            if key not in self.epochs:
                return
            done = min(epoch + 1, self.epochs[key])
            advance = max(0, done - self.reported.get(key, 0))
            self.reported[key] = max(done, self.reported.get(key, 0))
        if advance:
            self.bar.update(self.task, advance=advance)

    def finish(self, label: str, status: str, seconds: float, key: str | None = None) -> None:
        with self.lock:
            left = self.epochs.get(key, 1) - self.reported.get(key, 0) if self.epochs else 1
            if key in self.epochs:
                self.reported[key] = self.epochs[key]
        self.bar.update(self.task, advance=max(0, left))
        super().finish(label, status, seconds, key)

    def show(self, label: str, status: str, seconds: float) -> None:
        counts = f"{self.diverged} diverged, {self.failed} failed"
        self.bar.update(self.task, counts=counts, description="", runs=f"{self.done}/{self.total}")

    def close(self) -> None:
        self.bar.stop()
