"""Atomic writes: the target is replaced whole or not at all, and writers never share a file."""

from __future__ import annotations

import pytest

from gansearch.files import atomic_path, write_bytes, write_text


def test_atomic_path_replaces_the_target_only_when_the_block_succeeds(tmp_path) -> None:
    target = tmp_path / "deep" / "file.json"
    write_text(target, "old")  # the folder is created
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]  # no leftovers
    assert write_bytes(target, b"new") == target and target.read_bytes() == b"new"


def test_concurrent_writers_of_one_file_get_their_own_temporary_files(tmp_path) -> None:
    target = tmp_path / "metrics.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("first")
        second.write_text("second")
        assert not target.exists()  # nothing replaced before a writer finishes
    assert target.read_text() == "first"  # the outer block finished last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
