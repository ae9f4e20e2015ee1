"""Atomic writes: the target is replaced whole or not at all, and writers never share a file;
no write follows a symbolic link; whose files are trusted."""

from __future__ import annotations

import os

import pytest

from gansearch import files
from gansearch.errors import UsageError
from gansearch.files import append_jsonl, atomic_path, read_jsonl, write_bytes, write_text


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


def test_an_atomic_write_replaces_a_link_and_leaves_its_target(tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "gansearch.json"
    link.symlink_to(victim)
    write_text(link, "{}")
    assert not link.is_symlink() and link.read_text() == "{}"
    assert victim.read_text() == "precious"


def test_appending_through_a_link_is_refused_and_leaves_its_target(tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "reports.jsonl"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match=rf"{link} is a symbolic link \(to {victim}\)"):
        append_jsonl(link, {"a": 1})
    assert victim.read_text() == "precious"
    append_jsonl(tmp_path / "own.jsonl", {"a": 1})  # a plain file is appended to
    append_jsonl(tmp_path / "own.jsonl", {"a": 2})
    assert read_jsonl(tmp_path / "own.jsonl") == [{"a": 1}, {"a": 2}]


def test_foreign_writer_names_the_owner_and_who_else_can_write(tmp_path, monkeypatch) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o600)
    assert files.foreign_writer(path.stat()) is None
    path.chmod(0o622)
    assert files.foreign_writer(path.stat()) == "can be written by its group and other users"
    monkeypatch.setattr(files, "current_uid", lambda: os.getuid() + 4242)
    owner = files.user_name(os.getuid())
    assert files.foreign_writer(path.stat()) == f"belongs to user {owner}, not to you"
