"""Writing files so that a reader sees the old file or the new one, never half of
one, even across a power loss: the data is flushed to disk before the rename that
publishes it, and the folder entry after it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stateful_lab.errors import LabError

# mkstemp makes private (0600) files; results get the permissions of a plain write.
_UMASK = os.umask(0)
os.umask(_UMASK)
TEMPORARY_SUFFIX = ".tmp"


class WriteError(LabError, OSError):
    """A result file that could not be written (a full disk, say); the message names it."""

    exit_code = 1


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to a temporary file in the same folder, flush it to
    disk, rename it over `path`, then flush the folder. On any error nothing is
    left behind and WriteError names the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    except OSError as error:
        raise WriteError(error.errno, f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb" if isinstance(text, bytes) else "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except BaseException as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise WriteError(error.errno, f"cannot write {path}: {error.strerror}") from None
        raise


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files a killed writer left in `folder` (call only while
    holding the folder's lock); how many there were."""
    stale = [path for path in folder.glob(f".*{TEMPORARY_SUFFIX}") if path.is_file()]
    for path in stale:
        path.unlink()
    return len(stale)
