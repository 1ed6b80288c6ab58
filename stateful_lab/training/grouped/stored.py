"""A group's traced epochs function, kept across processes (docs/design.md,
"Compiled once per machine").

XLA's persistent cache (`xla_cache`) spares a second process the compiling, not
the tracing: Python building the graph of the group's epochs took 0.35-0.45 s of
every process on the blog's model, a third of the lab's part of a one-seed run.
So the traced function and every function it calls (its loops' bodies and their
gradients) are stored as TensorFlow FunctionDefs in the cache folder
(`graphs/`), in a file named by a key of everything the graph depends on: the
lab's source (every .py file of the package), the versions of TensorFlow, Keras
and NumPy, Keras' float type and epsilon, the group's program key (its
settings, gate activations, runs, shapes and slot: `GroupedLoop.for_group`), its
inputs' dtypes and shapes, and the epochs a call trains. A later process with
the same key registers them with TensorFlow and calls the function by name, its
own group's variables in place of those it captured when traced; nothing is
traced.

Each function is renamed: its traced name without the counter of the process
that traced it, its place among the functions, and the key. So XLA's cache,
whose key holds the name, finds the compiled program in any process, whatever it
traced before; the tracing process calls the renamed functions too, so that its
program is the one later processes find.

A file that does not parse, or whose digest (of its name, captures and library)
does not match, is deleted and the function traced again. A function whose captures are not all
the group's variables, or whose inputs or outputs are not laid out as `call`
passes them, is not stored: it is traced in every process, as before. With the
cache off (STATEFUL_LAB_CACHE=off) nothing is stored or loaded. Above MAX_BYTES
the files used longest ago are dropped (a load touches its file).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.python.eager import context

from stateful_lab.atomic import write_atomic
from stateful_lab.training import xla_cache

FORMAT = 1
"""Changes when the file's layout does: older files are then never read."""
MAX_BYTES = 64 * 2**20
FIGURES = 4
"""`_train_epochs` returns its four figures' arrays and the forecasts."""


class Entry(NamedTuple):
    name: str
    """The renamed epochs function's name."""
    captures: list[int]
    """Its captured inputs, as places in `GroupedLoop.variables()`."""


_registered: dict[str, Entry] = {}
"""The keys whose functions this process has registered with TensorFlow."""
_lock = threading.Lock()


def folder() -> Path | None:
    cache_root = xla_cache.root()
    return None if cache_root is None else xla_cache.graphs_folder(cache_root)


def epochs_function(group, first, count, resets, inputs: dict) -> Callable:
    """`group.train_epochs`, called as it is (first, count, resets, **inputs), for
    inputs shaped as these: loaded from the store if there, else traced (and
    stored). Returns the traced tf.function itself when it cannot be stored."""
    graphs = folder()
    if graphs is None:
        group.train_epochs.get_concrete_function(first, count, resets, **inputs)
        return group.train_epochs
    key = _key(group, _flat(first, count, resets, inputs), inputs)
    path = graphs / f"{key}.json"
    with _lock:
        entry = _registered.get(key) or _load(path, key) or _trace_and_store(group, first, count, resets, inputs, path)
        if entry is None:
            return group.train_epochs
        _registered[key] = entry
    variables = group.variables()
    handles = [variables[place].handle for place in entry.captures]
    name = entry.name.encode()

    def call(first, count, resets, **inputs):
        outputs = context.context().call_function(name, _flat(first, count, resets, inputs) + handles, FIGURES + 1)
        return list(outputs[:FIGURES]), outputs[FIGURES]

    return call


def _flat(first, count, resets, inputs: dict) -> list:
    """The inputs in the order of `_train_epochs`' parameters."""
    return tf.nest.flatten([first, count, resets, inputs["train"], inputs["test"], inputs.get("forecast", ())])


@cache
def _source_digest() -> str:
    """SHA-256 of the package's Python source: any change of the lab's code is a
    new key."""
    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _key(group, flat: list, inputs: dict) -> str:
    versions = [importlib.metadata.version(name) for name in ("tensorflow", "keras", "numpy")]
    specs = [[tensor.dtype.name, list(tensor.shape)] for tensor in flat]
    forecast = inputs.get("forecast", ())
    per_call = group.epochs_per_call(int(forecast[1].shape[0]) if forecast else 0)
    settings = [keras.config.floatx(), keras.config.epsilon(), per_call]
    text = json.dumps([FORMAT, _source_digest(), versions, group.key, specs, settings])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _load(path: Path, key: str) -> Entry | None:
    """The stored entry, its functions registered; None (and the file deleted when
    damaged) if there is none to trust."""
    try:
        text = path.read_bytes()
    except OSError:
        return None
    try:
        stored = json.loads(text)
        library_bytes = base64.b64decode(stored["library"], validate=True)
        entry = Entry(stored["name"], [int(place) for place in stored["captures"]])
        if stored["format"] != FORMAT or stored["key"] != key:
            raise ValueError("another key or format")
        if _digest(entry, library_bytes) != stored["sha256"]:
            raise ValueError("digest")
        library = function_pb2.FunctionDefLibrary.FromString(library_bytes)
        if entry.name not in {function.signature.name for function in library.function}:
            raise ValueError("no such function")
    except Exception:  # damaged in any way: deleted, traced again, never trusted
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    _register(library)
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last to be dropped
    return entry


def _digest(entry: Entry, library_bytes: bytes) -> str:
    """SHA-256 of the entry's name, captures and library."""
    return hashlib.sha256(json.dumps([entry.name, entry.captures]).encode() + b"\0" + library_bytes).hexdigest()


def _trace_and_store(group, first, count, resets, inputs: dict, path: Path) -> Entry | None:
    """Trace the epochs function, rename its library, register and store it: its
    entry, or None (traced, not stored) where its captures or layout are not the
    ones `call` can pass."""
    concrete = group.train_epochs.get_concrete_function(first, count, resets, **inputs)
    variables = {id(variable.handle): place for place, variable in enumerate(group.variables())}
    captures = [variables.get(id(tensor)) for tensor in concrete.captured_inputs]
    flat = _flat(first, count, resets, inputs)
    try:
        ordered = concrete.function_type.unpack_inputs(concrete.function_type.bind(first, count, resets, **inputs))
    except Exception:  # TensorFlow's internals changed: trace in every process
        return None
    outputs = concrete.structured_outputs
    laid_out = (
        [id(tensor) for tensor in ordered] == [id(tensor) for tensor in flat]
        and len(concrete.outputs) == FIGURES + 1
        and len(outputs) == 2
        and len(outputs[0]) == FIGURES
    )
    if None in captures or not laid_out:
        return None
    library = function_pb2.FunctionDefLibrary()
    library.function.extend(concrete.graph.as_graph_def().library.function)
    library.function.append(concrete.function_def)
    entry = Entry(_rename(library, concrete.function_def.signature.name, "_sl" + path.stem[:16]), captures)
    _register(library)
    library_bytes = library.SerializeToString()
    stored = {
        "format": FORMAT,
        "key": path.stem,
        "name": entry.name,
        "captures": captures,
        "sha256": _digest(entry, library_bytes),
        "library": base64.b64encode(library_bytes).decode(),
    }
    try:
        write_atomic(path, json.dumps(stored))
        _within_bounds(path.parent)
    except OSError:  # a read-only cache folder: this process still uses it
        pass
    return entry


def _rename(library, main: str, suffix: str) -> str:
    """Give every function a name that holds no counter of this process: its
    traced name without the counter, its place in a walk of the calls from
    `main`, and `suffix`; every reference follows. The new name of `main`."""
    functions = {function.signature.name: function for function in library.function}
    order, waiting = [], [main]
    while waiting:  # the calls in the order the graph's nodes make them
        name = waiting.pop(0)
        if name in order:
            continue
        order.append(name)
        for node in functions[name].node_def:
            waiting += [called for called in _called(node) if called in functions]
    order += sorted(set(functions) - set(order))  # none expected: kept, named all the same
    names = {name: f"{re.sub(r'_[0-9]+$', '', name)}_{place}{suffix}" for place, name in enumerate(order)}
    for function in library.function:
        function.signature.name = names[function.signature.name]
        for node in function.node_def:
            if node.op in names:  # a direct call
                node.op = names[node.op]
            for reference in _references(node):
                if reference.name in names:
                    reference.name = names[reference.name]
    return names[main]


def _called(node) -> list[str]:
    """The functions a node calls: its op, and its attributes' functions."""
    return [node.op] + [reference.name for reference in _references(node)]


def _references(node) -> list:
    """A node's attributes that name functions (by the attributes' keys), as
    protobuf messages whose `name` can be set."""
    references = []
    for key in sorted(node.attr):
        value = node.attr[key]
        if value.HasField("func"):
            references.append(value.func)
        references += list(value.list.func)
    return references


def _register(library) -> None:
    """Add the functions to TensorFlow's, but none it has by that name already:
    the same key's, traced or loaded earlier by this process (a name holds the
    key), which is used as it is."""
    ctx = context.context()
    for function in library.function:
        if not ctx.has_function(function.signature.name):
            ctx.add_function_def(function)


def _within_bounds(place: Path) -> None:
    files = sorted(place.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    total = sum(path.stat().st_size for path in files)
    while files and total > MAX_BYTES:
        oldest = files.pop(0)
        total -= oldest.stat().st_size
        oldest.unlink(missing_ok=True)
