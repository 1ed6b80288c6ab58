"""The local worker processes of a run with --jobs N: a small pool of its own.

Why not joblib's (loky's) executor, which the lab used before: when one of its
workers dies (killed for memory, or by hand), loky marks the whole pool broken and
every piece of work in it fails, the finished ones' results with it, and it cannot
say which worker was training what. Here the parent hands each worker one work item
at a time over a pipe of its own, so it always knows which item each worker has;
when a worker dies, exactly that item is lost (its runs come back as failed, with
the reason, so that a re-run trains them), a new worker takes the dead one's place,
and every other item trains on.

The workers start before this process imports TensorFlow (`start`): each imports
it as it starts, while this process imports its own and plans the runs. Kept free
of TensorFlow for that reason.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stateful_lab.runs.unit import Unit

EPOCHS_EVERY = 0.5
"""A worker sends the epochs its runs recorded at most this often (seconds)."""
STARTUP_DEATHS = 3
"""Workers that die before they are ready, one after another, before the pool gives
up (an import that fails, say) rather than start new ones for ever."""


class WorkerPool:
    """`jobs` worker processes training work items (lists of units) submitted in
    order; `submit` returns a future of the item's results and the worker's peak
    memory. A worker that dies loses only its own item: the future gets that item's
    runs as failed, naming the worker and how it died."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._context = multiprocessing.get_context("spawn")  # never fork a process that may hold TensorFlow
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._workers: list[_Worker] = []
        self._closed = False
        self._startup_deaths = 0
        self._broken = ""
        """Why no worker can start, once STARTUP_DEATHS died before they were ready."""
        self._wake_read, self._wake_write = self._context.Pipe(duplex=False)
        for _ in range(jobs):
            self._workers.append(self._spawn())
        self._manager = threading.Thread(target=self._manage, name="stateful-lab workers", daemon=True)
        self._manager.start()

    def submit(
        self, units: list[Unit], threads: int | None = None, on_epochs: Callable[[dict[str, int]], None] | None = None
    ) -> Future:
        """Queue a work item; its future gives (results, the worker's peak memory in
        MB). `on_epochs` hears, from this pool's thread, the epochs its runs record
        as they train ({run key: latest epoch}, at most every EPOCHS_EVERY seconds)."""
        item = _Item(Future(), units, threads, on_epochs)
        with self._lock:
            if self._closed or self._broken:
                raise RuntimeError(self._broken or "the worker pool is shut down")
            self._queue.append(item)
        self._wake()
        return item.future

    def in_flight(self) -> dict[int, list[Unit]]:
        """Each busy worker's process id and the work item it trains."""
        with self._lock:
            return {worker.process.pid: worker.item.units for worker in self._workers if worker.item}

    def shutdown(self) -> None:
        """Stop every worker now; queued and unfinished items are cancelled."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.process.kill()
        self._wake()
        self._manager.join(timeout=30)
        for worker in workers:
            worker.process.join(timeout=30)
            worker.connection.close()
        with self._lock:
            abandoned = [*self._queue, *(worker.item for worker in self._workers if worker.item)]
            self._queue.clear()
        for item in abandoned:
            item.future.cancel()
        if _pools.get(self.jobs) is self:
            del _pools[self.jobs]

    @property
    def closed(self) -> bool:
        """Shut down, or given up on (its workers die as they start): not to be used again."""
        return self._closed or bool(self._broken)

    # The manager thread: hands out items, hears results, replaces dead workers.

    def _spawn(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True, name="stateful-lab worker")
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed at exit
            self._wake_write.send_bytes(b"")

    def _manage(self) -> None:
        while not self._closed:
            self._hand_out()
            waiting = [self._wake_read]
            for worker in self._workers:
                waiting += [worker.connection, worker.process.sentinel]
            ready = set(wait(waiting))
            while self._wake_read.poll():
                self._wake_read.recv_bytes()
            for worker in list(self._workers):
                if worker.connection in ready or worker.process.sentinel in ready:
                    self._hear(worker)

    def _hand_out(self) -> None:
        """Give each idle, ready worker the next item (in the order submitted)."""
        for worker in self._workers:
            if worker.ready and worker.item is None and not self._closed:
                with self._lock:
                    if not self._queue:
                        return
                    worker.item = self._queue.popleft()
                try:
                    worker.connection.send((worker.item.units, worker.item.threads))
                except OSError:  # it died before taking it: the item never started, queue it again
                    with self._lock:
                        self._queue.appendleft(worker.item)
                        worker.item = None

    def _hear(self, worker: _Worker) -> None:
        """Read what `worker` sent; if it died, settle its item and replace it."""
        try:
            while worker.connection.poll():
                message = worker.connection.recv()
                if message[0] == "ready":
                    worker.ready = True
                    self._startup_deaths = 0
                    continue
                if message[0] == "epochs":
                    if worker.item is not None and worker.item.on_epochs is not None:
                        worker.item.on_epochs(message[1])
                    continue
                item, worker.item = worker.item, None
                self._hand_out()  # its next item first: a caller woken by the result finds every worker busy
                if message[0] == "done":
                    item.future.set_result((message[1], message[2]))
                else:
                    item.future.set_exception(message[1])
        except (EOFError, OSError):
            pass
        if worker.process.is_alive() or self._closed:
            return
        worker.process.join()
        worker.connection.close()
        with self._lock:
            self._workers.remove(worker)
        if worker.item is not None:
            item, worker.item = worker.item, None
            reason = died(worker.process.pid, worker.process.exitcode)
            error = f"lost: {reason} while training it (with {len(item.units) - 1} other runs); a re-run trains it"
            item.future.set_result(([unit.result(status="failed", error=error) for unit in item.units], 0.0))
        if not worker.ready:
            self._startup_deaths += 1
            if self._startup_deaths >= STARTUP_DEATHS:
                reason = died(worker.process.pid, worker.process.exitcode)
                self._broken = f"worker processes die as they start ({reason})"
        if not self._broken:
            with self._lock:
                self._workers.append(self._spawn())
            return
        with self._lock:
            abandoned = [] if self._workers else list(self._queue)  # the live ones go on with the queue
            if abandoned:
                self._queue.clear()
        for item in abandoned:
            item.future.set_exception(RuntimeError(self._broken))


def died(pid: int | None, exitcode: int | None) -> str:
    """How a worker ended, in words: "worker process 123 was killed by SIGKILL"."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process {pid} was killed by {name}"
    return f"worker process {pid} exited with status {exitcode}"


@dataclass
class _Item:
    future: Future
    units: list[Unit]
    threads: int | None
    on_epochs: Callable[[dict[str, int]], None] | None = None


@dataclass
class _Worker:
    process: multiprocessing.Process
    connection: Connection
    ready: bool = False
    item: _Item | None = field(default=None)


def _serve(connection: Connection) -> None:
    """A worker: import TensorFlow, say so, then train each item it is sent until
    the parent closes the pipe. Ctrl-C at the terminal reaches the whole process
    group: the parent decides what it means, so the worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from stateful_lab import provenance
    from stateful_lab.execution.dispatch import run_item
    from stateful_lab.runs.listening import listening
    from stateful_lab.training import engine, xla_cache  # noqa: F401  (engine: TensorFlow and Keras)

    try:
        connection.send(("ready",))
    except OSError:  # the parent is gone
        return
    while True:
        try:
            units, threads = connection.recv()
        except (EOFError, OSError):
            return
        try:
            with listening(_EpochSender(connection)):
                message = ("done", run_item(units, threads), provenance.peak_memory_mb())
            xla_cache.sync()  # this worker is stopped with a kill: publish what it compiled now
        except Exception as error:  # noqa: BLE001  (raised again in the parent, as the caller of the item)
            message = ("error", _picklable(error))
        try:
            connection.send(message)
        except (EOFError, OSError):
            return


class _EpochSender:
    """A worker's listener (`runs.listening`): the latest epoch of each run it
    trains, sent to the parent at most every EPOCHS_EVERY seconds."""

    def __init__(self, connection: Connection):
        self.connection, self.pending, self.sent = connection, {}, time.monotonic()

    def __call__(self, key: str, epoch: int) -> None:
        self.pending[key] = epoch
        if time.monotonic() - self.sent >= EPOCHS_EVERY:
            with contextlib.suppress(OSError):  # the parent is gone: the result's send says so
                self.connection.send(("epochs", self.pending))
            self.pending, self.sent = {}, time.monotonic()


def _picklable(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


_pools: dict[int, WorkerPool] = {}


@atexit.register
def _stop_every_pool() -> None:
    """At exit, stop the pools first: multiprocessing's own exit hook terminates
    the workers, and a pool still open would take that for deaths and start new ones."""
    for pool in list(_pools.values()):
        pool.shutdown()


def executor(jobs: int) -> WorkerPool:
    """The pool of `jobs` workers: the one `start` started, or a new one."""
    pool = _pools.get(jobs)
    if pool is not None and pool.closed:
        pool.shutdown()  # given up on: stop any worker it still has
        pool = None
    if pool is None:
        pool = _pools[jobs] = WorkerPool(jobs)
    return pool


def start(jobs: int) -> None:
    """Start the `jobs` workers now, so that they import TensorFlow meanwhile."""
    executor(jobs)
