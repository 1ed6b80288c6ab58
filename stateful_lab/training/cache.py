"""A bounded cache of compiled programs, kept per process."""

from __future__ import annotations


def recently_used(cache: dict, key: str, make, size: int):
    """cache[key], made by `make()` if missing, now the most recently used (dicts
    keep insertion order); the least recently used beyond `size` are dropped, so
    a process running many configs does not grow without end."""
    value = cache.pop(key, None) or make()
    cache[key] = value
    while len(cache) > size:
        del cache[next(iter(cache))]
    return value
