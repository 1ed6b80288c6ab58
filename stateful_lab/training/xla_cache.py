"""XLA's persistent compilation cache for the lab's programs (docs/design.md,
"Compiled once per machine"): a second process running the same config loads the
programs the first compiled instead of compiling them again.

TensorFlow saves each program it compiles with `jit_compile=True` to the folder
TF_XLA_FLAGS names, and loads it from there when the same program (the same
function signature and HLO, checked in full) is compiled again. This module keeps
that folder safe to share:

- The store is a user cache folder (`$STATEFUL_LAB_CACHE`, else
  `$XDG_CACHE_HOME/stateful-lab`, else `~/.cache/stateful-lab`), one sub-folder
  per TensorFlow build, CPU (its model and every instruction-set flag) and XLA
  flags: a program compiled elsewhere is never even looked at.
- TensorFlow writes its files in place and reads whatever it finds, so it never
  works in the store itself. Each process gets a private folder of hard links to
  the store's entries that the store's manifest vouches for (name, size, SHA-256,
  and the file's modification time when it was hashed); an entry that does not
  match is deleted (recompiled, never trusted). An entry is hashed again only when
  its size or modification time differs from the manifest's, as any write makes
  it: hashing the whole store (up to MAX_BYTES) took every process 0.5 s under the
  lock. Damage that keeps both (a disk's silent bit rot) is left to TensorFlow,
  which compares the program's HLO before it loads one.
- At exit, what the process compiled (files TensorFlow finished writing) is moved
  into the store and added to the manifest, under a lock. A process killed before
  that leaves its private folder, removed by the next one that starts.

`STATEFUL_LAB_CACHE=off` turns it off; `stateful-lab cache --clear` empties it.
A TF_XLA_FLAGS that already names a cache folder is the user's and left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

FLAG = "--tf_xla_persistent_cache_directory"
DEVICES = "--tf_xla_persistent_cache_device_types"
OWNED = "STATEFUL_LAB_XLA_PRIVATE"
"""Set beside the flag when the lab set it, so that a child process (which inherits
both) knows the folder is its parent's and takes one of its own."""
MANIFEST = "manifest.tsv"
MAX_BYTES = 512 * 2**20
"""A store above this size drops its least recently used programs when a process
publishes (a program counts as used whenever a process links it)."""


class Entry(NamedTuple):
    """A manifest line: a stored program as it was hashed, and when last used."""

    size: int
    digest: str
    """SHA-256 of its bytes."""
    modified_ns: int
    """The file's st_mtime_ns when it was hashed: a write changes it."""
    used_ns: int
    """When a process last linked it (or published it)."""


def root() -> Path | None:
    """The cache's folder, or None when turned off."""
    chosen = os.environ.get("STATEFUL_LAB_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stateful-lab"


def build_key() -> str:
    """What a compiled program depends on beyond its own HLO: TensorFlow's build,
    the CPU (model and instruction-set flags) and XLA's flags."""
    from stateful_lab.provenance import cpu_fields

    try:
        tensorflow = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        tensorflow = "unknown"
    fields = cpu_fields()
    parts = [tensorflow, fields.get("vendor_id", ""), fields.get("cpu family", ""), fields.get("model", "")]
    parts += [fields.get("stepping", ""), " ".join(sorted(fields.get("flags", "").split()))]
    parts.append(os.environ.get("XLA_FLAGS", ""))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def store_folder(cache: Path) -> Path:
    return cache / "xla" / build_key()


def setup() -> Path | None:
    """Give this process its private cache folder (call before TensorFlow compiles
    anything): verified links to the store's entries, named in TF_XLA_FLAGS; its
    new entries are published at exit. The private folder, or None when the
    cache is off, the user set the flag, or the cache folder cannot be used."""
    flags = os.environ.get("TF_XLA_FLAGS", "")
    inherited = os.environ.get(OWNED)
    if FLAG in flags and (not inherited or inherited not in flags):
        return None  # the user's own cache folder
    cache = root()
    if cache is None:
        return None
    try:
        store = store_folder(cache)
        private = _private_folder(store)
    except OSError:  # a read-only home, say: compile as without a cache
        return None
    ours = f"{FLAG}={private} {DEVICES}=CPU"
    if inherited:
        flags = " ".join(part for part in flags.split() if not part.startswith((FLAG, DEVICES)))
    os.environ["TF_XLA_FLAGS"] = f"{flags} {ours}".strip()
    os.environ[OWNED] = str(private)
    _current[:] = [store, private]
    atexit.register(publish, store, private)
    return private


_current: list[Path] = []
"""This process's store and private folder, once `setup` made them."""

_from_store: dict[Path, set[str]] = {}
"""The entries each private folder of this process took from the store: never
published again (the store may have dropped one since, as least recently used)."""


def sync() -> None:
    """Publish what this process compiled so far (a worker, after each work item:
    its pool stops it with a kill, so its exit hook never runs)."""
    if _current:
        publish(*_current, keep=True)


def _private_folder(store: Path) -> Path:
    """A new private folder, linked to every entry the manifest vouches for;
    unverified entries and dead processes' folders removed."""
    store.mkdir(parents=True, exist_ok=True)
    for folder in store.parent.glob(f"{store.name}.proc-*"):  # <store>.proc-<pid>-<random>
        pid = folder.name.rsplit("-", 2)[1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    private = store.parent / f"{store.name}.proc-{os.getpid()}-{os.urandom(4).hex()}"
    private.mkdir()
    with _locked(store):
        kept = verified(store)
        now = time.time_ns()
        for name in kept:
            os.link(store / name, private / name)
        _from_store[private] = set(kept)
        # used now: the last to be dropped when the store is full
        _write_manifest(store, {name: entry._replace(used_ns=now) for name, entry in kept.items()})
    return private


def verified(store: Path) -> dict[str, Entry]:
    """The store's entries that match the manifest: size and modification time as
    recorded, or else the same SHA-256 (then recorded with the new time); every
    other file is deleted. The manifest of the entries that remain (the caller
    writes it). Call with the store locked."""
    manifest = _read_manifest(store)
    kept = {}
    for path in sorted(store.glob("*.pb")):
        entry, status = manifest.get(path.name), path.stat()
        if entry is not None and status.st_size == entry.size:
            if status.st_mtime_ns == entry.modified_ns:
                kept[path.name] = entry
                continue
            if _sha256(path) == entry.digest:
                kept[path.name] = entry._replace(modified_ns=status.st_mtime_ns)
                continue
        path.unlink(missing_ok=True)  # damaged, or written outside the manifest: recompiled, never trusted
    return kept


def publish(store: Path, private: Path, keep: bool = False) -> None:
    """Move the entries this process compiled into the store, each with its
    manifest line; then remove the private folder (or, with `keep`, link the
    entries back into it)."""
    with contextlib.suppress(OSError), _locked(store):
        manifest = _read_manifest(store)
        published = []
        taken = _from_store.setdefault(private, set())
        for path in sorted(private.glob("*.pb")):
            if path.name in manifest or path.name in taken:
                continue  # loaded from the store, or compiled by another process meanwhile
            digest, status = _sha256(path), path.stat()
            os.replace(path, store / path.name)  # keeps the file's modification time
            manifest[path.name] = Entry(status.st_size, digest, status.st_mtime_ns, time.time_ns())
            published.append(path.name)
        if keep:
            for name in published:
                os.link(store / name, private / name)
            taken.update(published)
        if published:
            _write_manifest(store, _within_bounds(store, manifest))
    if not keep:
        shutil.rmtree(private, ignore_errors=True)


def _within_bounds(store: Path, manifest: dict[str, Entry]) -> dict[str, Entry]:
    """The manifest after dropping the least recently used entries of a store over
    MAX_BYTES (a process that linked one keeps its own link until it ends)."""
    size = sum(entry.size for entry in manifest.values())
    kept = dict(manifest)
    for name in sorted(manifest, key=lambda name: manifest[name].used_ns):
        if size <= MAX_BYTES:
            break
        size -= manifest[name].size
        (store / name).unlink(missing_ok=True)
        del kept[name]
    return kept


def graphs_folder(cache: Path) -> Path:
    """Where `grouped.stored` keeps the traced graphs of groups' epochs."""
    return cache / "graphs"


def clear(cache: Path | None = None) -> tuple[int, int, int]:
    """Remove every store in the cache folder and every stored graph: (entries,
    bytes, graphs) removed."""
    cache = cache or root()
    if cache is None:
        return 0, 0, 0
    graphs = list(graphs_folder(cache).glob("*.json"))
    shutil.rmtree(graphs_folder(cache), ignore_errors=True)
    if not (cache / "xla").exists():
        return 0, 0, len(graphs)
    entries = list((cache / "xla").rglob("*.pb"))
    size = sum(path.stat().st_size for path in entries)
    shutil.rmtree(cache / "xla")
    return len(entries), size, len(graphs)


def describe(cache: Path | None = None) -> tuple[Path | None, int, int]:
    """The cache folder, and the entries and bytes of this build's store."""
    cache = cache or root()
    if cache is None:
        return None, 0, 0
    store = store_folder(cache)
    entries = list(store.glob("*.pb")) if store.exists() else []
    return store, len(entries), sum(path.stat().st_size for path in entries)


@contextlib.contextmanager
def _locked(store: Path):
    with open(store / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(store: Path) -> dict[str, Entry]:
    """The manifest's lines. A line of the older form (name, size, SHA-256) has no
    time, so its entry is hashed before it is trusted; any other line is left out,
    so its entry is deleted and compiled again."""
    records = {}
    path = store / MANIFEST
    if path.exists():
        for line in path.read_text().splitlines():
            name, *fields = line.split("\t")
            if len(fields) == 2 and fields[0].isdigit():
                fields += ["-1", "0"]  # no time: never matches a file's
            if len(fields) == 4 and all(fields[index].lstrip("-").isdigit() for index in (0, 2, 3)):
                records[name] = Entry(int(fields[0]), fields[1], int(fields[2]), int(fields[3]))
    return records


def _write_manifest(store: Path, records: dict[str, Entry]) -> None:
    from stateful_lab.atomic import write_atomic

    write_atomic(
        store / MANIFEST, "".join(f"{name}\t" + "\t".join(map(str, entry)) + "\n" for name, entry in records.items())
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
