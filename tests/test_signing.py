"""Signatures of files whose loading runs code (gansearch.signing): the user's key, signing,
and what fails a signature."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gansearch.errors import UsageError
from gansearch.signing import (
    CHANGED,
    KEEP,
    KEY_BYTES,
    KEY_FILE_ENV,
    NOT_SIGNED,
    SIGNATURES_FILE,
    Signatures,
    key_path,
    load_key,
)


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A key file of this test's own (in a folder not made yet), named the way users can."""
    path = tmp_path / "config" / "gansearch" / "key"
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    return path


def test_the_key_is_made_once_readable_by_this_user_only(key_file: Path):
    assert key_path() == key_file
    key = load_key()
    assert len(key) == KEY_BYTES and key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert load_key() == key  # the same key next time
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left


def test_a_key_others_can_read_is_refused_with_the_fix(key_file: Path):
    load_key()
    key_file.chmod(0o644)
    with pytest.raises(UsageError, match=rf"{key_file}: .*other users \(mode 0644\): chmod 600"):
        load_key()


def test_a_damaged_key_is_refused(key_file: Path):
    key_file.parent.mkdir(parents=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(UsageError, match=r"not a gansearch signing key \(5 bytes, 32 expected\)"):
        load_key()


def test_signatures_round_trip(tmp_path: Path, key_file: Path):
    (tmp_path / "state.pkl").write_bytes(b"state")
    signatures = Signatures.load(tmp_path, load_key())
    signatures.sign("state.pkl")
    signatures.save()
    stored = json.loads((tmp_path / SIGNATURES_FILE).read_text())
    assert set(stored["files"]) == {"state.pkl"}
    assert load_key().hex() not in (tmp_path / SIGNATURES_FILE).read_text()
    assert Signatures.load(tmp_path, load_key()).problem("state.pkl") is None


def test_a_changed_byte_fails_its_signature(tmp_path: Path, key_file: Path):
    path = tmp_path / "state.pkl"
    path.write_bytes(b"state")
    signatures = Signatures.load(tmp_path, load_key())
    signatures.sign("state.pkl")
    signatures.save()
    path.write_bytes(b"statf")
    assert Signatures.load(tmp_path, load_key()).problem("state.pkl") == CHANGED


def test_a_file_without_a_signature_fails(tmp_path: Path, key_file: Path):
    (tmp_path / "signed.pkl").write_bytes(b"a")
    (tmp_path / "planted.pkl").write_bytes(b"b")
    signatures = Signatures.load(tmp_path, load_key())
    assert signatures.problem("signed.pkl") == NOT_SIGNED  # no signatures file at all
    signatures.sign("signed.pkl")
    signatures.save()
    assert Signatures.load(tmp_path, load_key()).problem("planted.pkl") == NOT_SIGNED


def test_another_users_signatures_are_not_yours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "state.pkl").write_bytes(b"state")
    signatures = Signatures.load(tmp_path, load_key(tmp_path / "theirs"))
    signatures.sign("state.pkl")
    signatures.save()
    mine = load_key(tmp_path / "mine")
    assert Signatures.load(tmp_path, mine).problem("state.pkl") == NOT_SIGNED


def test_a_file_is_signed_from_its_source_and_older_versions_stay_valid(
    tmp_path: Path, key_file: Path
):
    signatures = Signatures.load(tmp_path, load_key())
    staged = tmp_path / "staging.pkl"
    for version in range(KEEP + 1):
        staged.write_bytes(b"v%d" % version)
        signatures.sign("state.pkl", source=staged)
    signatures.save()
    target = tmp_path / "state.pkl"
    reloaded = Signatures.load(tmp_path, load_key())
    target.write_bytes(b"v1")  # a copy that lags a version behind is still this user's
    assert reloaded.problem("state.pkl") is None
    target.write_bytes(b"v0")  # older than the versions kept
    assert reloaded.problem("state.pkl") == CHANGED
