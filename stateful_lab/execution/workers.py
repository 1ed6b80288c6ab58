"""The local worker processes of a pooled run (`runner.WorkPool`), started before
this process imports TensorFlow: each worker imports it as it starts, while this
process imports its own and plans the runs, instead of after it.

Kept free of TensorFlow, so that starting the workers does not wait for it."""

from __future__ import annotations


def executor(jobs: int):
    """The pool's executor: joblib's own, which `runner.execute`'s joblib.Parallel
    re-uses as is (loky's bare one lacks what Parallel adds, and Parallel would
    fail on it). The same one for the same `jobs`, already running if `start`
    started it."""
    from joblib.executor import get_memmapping_executor

    return get_memmapping_executor(jobs, initializer=_prepare_worker)


def start(jobs: int) -> None:
    """Start the `jobs` workers now (loky starts them all at the first task)."""
    executor(jobs).submit(int)


def _prepare_worker() -> None:
    """In a worker, as it starts: import what its work needs (TensorFlow), and
    never restart it for growing memory. loky replaces a worker whose
    memory grew 300 MB past its size after its first task, taking it for a leak;
    a worker here grows by design (it keeps its compiled programs for the next
    groups), and a replaced one pays a TensorFlow import and its compilations
    again. (Memory stays bounded: at most CACHED programs each.)"""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = 2**62
    from stateful_lab.training import engine  # noqa: F401  (TensorFlow and Keras)
