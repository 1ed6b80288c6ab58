"""Atomic writes: whole files, ordinary permissions, nothing left behind."""


def test_atomic_writes_replace_whole_files_with_ordinary_permissions(tmp_path):
    import os
    import stat

    from stateful_lab.atomic import write_atomic

    target = tmp_path / "deep" / "file.csv"
    write_atomic(target, "old\n")
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert list(target.parent.iterdir()) == [target]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
