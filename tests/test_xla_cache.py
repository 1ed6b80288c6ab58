"""XLA's persistent compilation cache (training/xla_cache.py): a second process
loads what the first compiled; entries are vouched for by a manifest, and a
damaged one is deleted and compiled again, never loaded."""

import os
import subprocess
import sys

from click.testing import CliRunner

from stateful_lab.cli import main
from stateful_lab.training import xla_cache

from .conftest import ROOT

COMPILE = """
import tensorflow as tf
from stateful_lab.training import xla_cache  # sets up the cache, as the lab's training does
@tf.function(jit_compile=True)
def f(x):
    return tf.reduce_sum(tf.sin(x) * 2.0)
print(float(f(tf.ones([10]))))
"""


def compile_once(cache):
    env = {**os.environ, "STATEFUL_LAB_CACHE": str(cache)}
    env.pop("TF_XLA_FLAGS", None)
    env.pop(xla_cache.OWNED, None)
    completed = subprocess.run([sys.executable, "-c", COMPILE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    return float(completed.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_program_and_a_damaged_one_is_compiled_again(tmp_path, monkeypatch):
    first = compile_once(tmp_path)
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    store = xla_cache.store_folder(tmp_path)
    entries = sorted(store.glob("*.pb"))
    assert len(entries) == 1 and xla_cache._read_manifest(store).keys() == {entries[0].name}
    inode = entries[0].stat().st_ino
    assert compile_once(tmp_path) == first
    assert [path.stat().st_ino for path in store.glob("*.pb")] == [inode]  # loaded: nothing new compiled
    assert not list(store.parent.glob("*.proc-*"))  # each process removed its private folder
    with open(entries[0], "r+b") as entry:  # damaged in place, size unchanged
        entry.seek(1000)
        entry.write(b"garbage")
    damaged = entries[0].read_bytes()
    assert compile_once(tmp_path) == first
    (replaced,) = store.glob("*.pb")
    assert replaced.read_bytes() != damaged  # deleted, compiled again, published anew
    assert xla_cache._read_manifest(store)[replaced.name][1] == xla_cache._sha256(replaced)
    result = CliRunner().invoke(main, ["cache"])
    assert result.exit_code == 0 and "1 compiled programs" in result.output
    result = CliRunner().invoke(main, ["cache", "--clear"])
    assert result.exit_code == 0 and "removed 1 compiled programs" in result.output
    assert not store.exists()


def test_the_users_own_flag_and_off_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_persistent_cache_directory=/somewhere/mine")
    monkeypatch.delenv(xla_cache.OWNED, raising=False)
    assert xla_cache.setup() is None and os.environ["TF_XLA_FLAGS"].endswith("/somewhere/mine")
    monkeypatch.setenv("STATEFUL_LAB_CACHE", "off")
    monkeypatch.delenv("TF_XLA_FLAGS")
    assert xla_cache.setup() is None and "TF_XLA_FLAGS" not in os.environ


def test_a_child_takes_a_folder_of_its_own_and_dead_processes_folders_go(tmp_path, monkeypatch):
    """A worker inherits its parent's flag and marker: it replaces the folder with
    its own. A private folder whose process is gone (killed) is removed by the next
    process that starts, and an entry no manifest vouches for is never linked."""
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    monkeypatch.delenv(xla_cache.OWNED, raising=False)
    monkeypatch.setattr(xla_cache, "_current", [])
    parent = xla_cache.setup()
    store = xla_cache.store_folder(tmp_path)
    dead = store.parent / f"{store.name}.proc-999999999-0000"
    dead.mkdir()
    (store / "xla_compile_cache__1__2__XLA_CPU_JIT.pb").write_bytes(b"unvouched")
    child = xla_cache.setup()  # as a worker would, with the parent's environment
    assert child != parent and os.environ["TF_XLA_FLAGS"].count(xla_cache.FLAG) == 1
    assert str(child) in os.environ["TF_XLA_FLAGS"] and not dead.exists()
    assert not list(child.iterdir()) and not list(store.glob("*.pb"))
    (child / "xla_compile_cache__3__4__XLA_CPU_JIT.pb").write_bytes(b"compiled here")
    xla_cache.sync()  # a worker after an item: published, and kept linked in its folder
    assert (store / "xla_compile_cache__3__4__XLA_CPU_JIT.pb").read_bytes() == b"compiled here"
    assert (child / "xla_compile_cache__3__4__XLA_CPU_JIT.pb").exists()
    xla_cache.publish(store, parent)
    xla_cache.publish(store, child)
    assert not parent.exists() and not child.exists()


def test_a_full_store_drops_its_least_recently_used_programs(tmp_path, monkeypatch):
    """Above MAX_BYTES, publishing drops the programs used longest ago: linking one
    into a process's folder counts as a use."""
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(xla_cache, "MAX_BYTES", 25)
    store = xla_cache.store_folder(tmp_path)

    def used(index, when):  # the manifest says program `index` was last used at `when`
        manifest = xla_cache._read_manifest(store)
        name = f"xla_compile_cache__{index}__0__XLA_CPU_JIT.pb"
        xla_cache._write_manifest(store, manifest | {name: manifest[name]._replace(used_ns=when)})

    first = xla_cache._private_folder(store)
    for index in range(3):
        (first / f"xla_compile_cache__{index}__0__XLA_CPU_JIT.pb").write_bytes(b"x" * 10)
        xla_cache.publish(store, first, keep=True)
        if index < 2:
            used(index, index)  # used in this order, long ago
    kept = sorted(path.name.split("__")[1] for path in store.glob("*.pb"))
    assert kept == ["1", "2"]  # 30 bytes > 25: the oldest went
    xla_cache.publish(store, first)
    second = xla_cache._private_folder(store)  # links (uses) 1 and 2 now
    used(2, 0)  # 2 used long ago after all
    (second / "xla_compile_cache__3__0__XLA_CPU_JIT.pb").write_bytes(b"x" * 10)
    xla_cache.publish(store, second)
    assert sorted(path.name.split("__")[1] for path in store.glob("*.pb")) == ["1", "3"]
    assert set(xla_cache._read_manifest(store)) == {path.name for path in store.glob("*.pb")}


def test_an_entry_is_hashed_again_only_when_its_size_or_time_changed(tmp_path, monkeypatch):
    """A process trusts an entry whose size and modification time are the
    manifest's (hashing a full store took 0.5 s a process); a changed time makes
    it hash the entry: the same bytes are kept (and the new time recorded), other
    bytes deleted. An older manifest's line (no time) is hashed; a line of no
    known form is not trusted at all."""
    monkeypatch.setenv("STATEFUL_LAB_CACHE", str(tmp_path))
    store = xla_cache.store_folder(tmp_path)
    first = xla_cache._private_folder(store)
    names = [f"xla_compile_cache__{index}__0__XLA_CPU_JIT.pb" for index in range(3)]
    for name in names:
        (first / name).write_bytes(b"program " + name.encode())
    xla_cache.publish(store, first)
    hashed = []
    real = xla_cache._sha256
    monkeypatch.setattr(xla_cache, "_sha256", lambda path: hashed.append(path.name) or real(path))
    assert set(xla_cache.verified(store)) == set(names) and hashed == []  # nothing changed: nothing hashed
    os.utime(store / names[0], ns=(1, 1))  # touched, same bytes
    with open(store / names[1], "r+b") as entry:  # damaged in place, size unchanged
        entry.write(b"garbage!")
    os.utime(store / names[1], ns=(1, 1))
    kept = xla_cache.verified(store)
    assert sorted(hashed) == names[:2] and set(kept) == {names[0], names[2]}
    assert kept[names[0]].modified_ns == 1 and not (store / names[1]).exists()
    manifest = (store / xla_cache.MANIFEST).read_text().splitlines()
    (store / xla_cache.MANIFEST).write_text("".join(line.rsplit("\t", 2)[0] + "\n" for line in manifest))
    hashed.clear()  # the older manifest (name, size, SHA-256) has no time: every entry is hashed once
    assert set(xla_cache.verified(store)) == {names[0], names[2]} and sorted(hashed) == [names[0], names[2]]
    (store / xla_cache.MANIFEST).write_text("".join(f"{line.split()[0]}\tnonsense\n" for line in manifest))
    assert xla_cache.verified(store) == {}  # a line of no known form vouches for nothing
