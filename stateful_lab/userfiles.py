"""Files the user names (a config, a CSV table): read bounded in size, regular
files only, every operating-system error worded as one line that names the path
and the reason, and every value an error message echoes cut to a readable length."""

from __future__ import annotations

import errno
import os
import reprlib
import stat
from pathlib import Path

from stateful_lab.errors import LabError

ECHO_CHARACTERS = 80
"""The most characters of a user's value an error message repeats."""


class UserFileError(LabError):
    """A named file that cannot be read as asked; the message is one line."""


_BOUNDED = reprlib.Repr()
_BOUNDED.maxlevel = 2
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxset = _BOUNDED.maxdict = 6
_BOUNDED.maxstring = _BOUNDED.maxother = ECHO_CHARACTERS


def shorten(text: str, limit: int = ECHO_CHARACTERS) -> str:
    """Text cut to `limit` characters, with a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def echo(value: object) -> str:
    """How an error quotes a user's value: its repr, bounded in depth and length
    without ever making the whole of it (YAML aliases can make a small file hold
    a list of billions of items)."""
    return shorten(_BOUNDED.repr(value))


def reason(error: OSError) -> str:
    """What the system said, in words: "Permission denied", "Too many levels of
    symbolic links"."""
    return error.strerror or os.strerror(error.errno or errno.EIO)


def size_text(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    """The file's bytes, if it is a regular file of at most `limit` bytes; else
    UserFileError naming `what` (e.g. "the config file"), the path and the reason.
    Never reads more than `limit` + 1 bytes, so a file that never ends (a device,
    a pipe) or grows while read costs no more memory than the limit."""
    where = shorten(str(path), 200)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserFileError(f"{where} does not exist; give the path of {what}") from None
    except OSError as error:
        raise UserFileError(f"{where}: cannot read {what} ({reason(error)})") from None
    except ValueError:  # a NUL byte in the name
        raise UserFileError(f"{where}: not a valid file name for {what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserFileError(f"{where}: a folder, not {what}; give the file's path")
    if not stat.S_ISREG(info.st_mode):
        raise UserFileError(f"{where}: not a regular file (a device, pipe or socket); {what} must be a file")
    if info.st_size > limit:
        raise UserFileError(
            f"{where}: {size_text(info.st_size)}, above the {size_text(limit)} the lab reads as {what}; "
            "use a smaller file"
        )
    try:
        with open(path, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        raise UserFileError(f"{where}: cannot read {what} ({reason(error)})") from None
    if len(data) > limit:
        raise UserFileError(f"{where}: grew past {size_text(limit)} while being read; use a smaller, finished file")
    return data
