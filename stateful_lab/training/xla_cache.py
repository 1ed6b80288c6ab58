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
  the store's entries that the store's manifest vouches for (name, size, SHA-256);
  an entry that does not match is deleted (recompiled, never trusted).
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
from pathlib import Path

FLAG = "--tf_xla_persistent_cache_directory"
DEVICES = "--tf_xla_persistent_cache_device_types"
OWNED = "STATEFUL_LAB_XLA_PRIVATE"
"""Set beside the flag when the lab set it, so that a child process (which inherits
both) knows the folder is its parent's and takes one of its own."""
MANIFEST = "manifest.tsv"
MAX_BYTES = 512 * 2**20
"""A store above this size drops its least recently used programs when a process
publishes (a program's store file is touched whenever a process links it)."""


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
        for path in verified(store):
            os.link(path, private / path.name)
            os.utime(path)  # used now: the last to be dropped when the store is full
    return private


def verified(store: Path) -> list[Path]:
    """The store's entries that match the manifest (size and SHA-256); every other
    file is deleted, and the manifest rewritten to the entries that remain. Call
    with the store locked."""
    manifest = _read_manifest(store)
    kept = {}
    for path in sorted(store.glob("*.pb")):
        record = manifest.get(path.name)
        if record is not None and path.stat().st_size == record[0] and _sha256(path) == record[1]:
            kept[path.name] = record
        else:
            path.unlink(missing_ok=True)  # damaged, or written outside the manifest: recompiled, never trusted
    if kept != manifest:
        _write_manifest(store, kept)
    return [store / name for name in kept]


def publish(store: Path, private: Path, keep: bool = False) -> None:
    """Move the entries this process compiled into the store, each with its
    manifest line; then remove the private folder (or, with `keep`, link the
    entries back into it)."""
    with contextlib.suppress(OSError), _locked(store):
        manifest = _read_manifest(store)
        published = []
        for path in sorted(private.glob("*.pb")):
            if path.name in manifest:
                continue  # loaded from the store, or compiled by another process meanwhile
            record = (path.stat().st_size, _sha256(path))
            os.replace(path, store / path.name)
            manifest[path.name] = record
            published.append(path.name)
        if keep:
            for name in published:
                os.link(store / name, private / name)
        if published:
            _write_manifest(store, _within_bounds(store, manifest))
    if not keep:
        shutil.rmtree(private, ignore_errors=True)


def _within_bounds(store: Path, manifest: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """The manifest after dropping the least recently used entries of a store over
    MAX_BYTES (a process that linked one keeps its own link until it ends)."""
    entries = sorted((path for path in store.glob("*.pb") if path.name in manifest), key=lambda p: p.stat().st_mtime)
    size = sum(manifest[path.name][0] for path in entries)
    for path in entries:
        if size <= MAX_BYTES:
            break
        size -= manifest[path.name][0]
        path.unlink(missing_ok=True)
        manifest = {name: record for name, record in manifest.items() if name != path.name}
    return manifest


def clear(cache: Path | None = None) -> tuple[int, int]:
    """Remove every store in the cache folder: (entries, bytes) removed."""
    cache = cache or root()
    if cache is None or not (cache / "xla").exists():
        return 0, 0
    entries = list((cache / "xla").rglob("*.pb"))
    size = sum(path.stat().st_size for path in entries)
    shutil.rmtree(cache / "xla")
    return len(entries), size


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


def _read_manifest(store: Path) -> dict[str, tuple[int, str]]:
    records = {}
    path = store / MANIFEST
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].isdigit():
                records[parts[0]] = (int(parts[1]), parts[2])
    return records


def _write_manifest(store: Path, records: dict[str, tuple[int, str]]) -> None:
    from stateful_lab.atomic import write_atomic

    write_atomic(store / MANIFEST, "".join(f"{name}\t{size}\t{digest}\n" for name, (size, digest) in records.items()))


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
