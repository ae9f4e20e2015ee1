"""Signatures of the files whose loading runs code, so that only this user's own are loaded.

A pickle runs code when it is loaded. Whoever owns a file may still not have written it (a
directory copied with cp, tar or rsync, or from a shared drive, belongs to whoever copied it),
so ownership cannot say whether a pickle is safe to load. A signature can: gansearch records an
HMAC-SHA256 of each such file under a secret key that only this user can read, and loads a file
only when its HMAC matches one it recorded (Jupyter's trusted notebooks work the same way).

The key is 32 random bytes, made on first use in the user's configuration directory (mode 0600,
its folder 0700); the environment variable GANSEARCH_KEY_FILE names another file. A directory's
signatures are one JSON file in it, SIGNATURES_FILE, written atomically, which names the key
that made them (by an HMAC of a constant, never the key itself).

    key = load_key()
    signatures = Signatures.load(directory, key)
    signatures.sign("tuner.pkl")
    signatures.save()
    signatures.problem("tuner.pkl")   # None, or why the file must not be loaded
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from gansearch.errors import UsageError
from gansearch.files import write_text

KEY_FILE_ENV = "GANSEARCH_KEY_FILE"  # another key file than the default one
KEY_FILE_NAME = "signing-key"
KEY_BYTES = 32
SIGNATURES_FILE = ".gansearch-signatures"  # not *.json: Ray copies those of the directory back
FORMAT = "gansearch-signatures/1"
# Digests kept per file: a file may be copied into place a little after a newer version of it
# was signed, and a process killed meanwhile leaves the older version, which is still its own.
KEEP = 8
NOT_SIGNED = "is not signed by you"
CHANGED = "changed since gansearch wrote it"
_CHUNK = 1 << 20


def key_path() -> Path:
    """The key file: GANSEARCH_KEY_FILE, else `signing-key` in gansearch's user config folder."""
    given = os.environ.get(KEY_FILE_ENV)
    if given:
        return Path(given).expanduser()
    return Path(platformdirs.user_config_dir("gansearch")) / KEY_FILE_NAME


def load_key(path: Path | None = None) -> bytes:
    """This user's signing key, made (32 random bytes, mode 0600) when there is none yet.

    A key that others could read or replace is refused, with the command that fixes it.
    """
    path = key_path() if path is None else Path(path)
    if not path.exists():
        _create_key(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read gansearch's signing key ({exc.strerror})") from None
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: gansearch's signing key is not a regular file")
        if info.st_uid != os.getuid():
            raise UsageError(f"{path}: gansearch's signing key belongs to another user")
        if info.st_mode & 0o077:
            raise UsageError(
                f"{path}: gansearch's signing key can be read or written by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 {path}"
            )
        key = f.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise UsageError(
            f"{path}: not a gansearch signing key ({len(key)} bytes, {KEY_BYTES} expected); "
            "remove it and gansearch makes a new one (experiments signed with the old one "
            "then need `gansearch run --resume --trust-state` once)"
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new random key at `path`, readable by this user only; of two processes making
    one at once, the first one's key stays (it is linked into place whole, never half)."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UsageError(
            f"{folder}: others can write this folder, so a signing key in it could be replaced; "
            f"chmod 700 {folder}, or set {KEY_FILE_ENV} to a file in a folder only you can write"
        )
    tmp = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(os.urandom(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use that one
    finally:
        tmp.unlink(missing_ok=True)


def key_id(key: bytes) -> str:
    """Which key made a set of signatures, without revealing the key."""
    return hmac.new(key, b"gansearch key id", hashlib.sha256).hexdigest()[:32]


def file_digest(key: bytes, path: Path) -> str:
    """The HMAC-SHA256 (hex) of a file's bytes under `key`."""
    mac = hmac.new(key, b"gansearch signed file\0", hashlib.sha256)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            mac.update(chunk)
    return mac.hexdigest()


@dataclass
class Signatures:
    """The signatures of one directory's files under this user's key, by relative path.

    Signatures another key made (another user's, or from before a key was replaced) are not
    kept: to this user those files are unsigned.
    """

    directory: Path
    key: bytes
    files: dict[str, list[str]] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, directory: Path, key: bytes) -> Signatures:
        """The signatures recorded in `directory` (none when the file is missing, unreadable
        or made with another key)."""
        signatures = cls(Path(directory), key)
        try:
            stored = json.loads((signatures.directory / SIGNATURES_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return signatures
        if not isinstance(stored, dict) or stored.get("key") != key_id(key):
            return signatures
        files = stored.get("files")
        if isinstance(files, dict):
            signatures.files = {
                str(name): [str(d) for d in digests]
                for name, digests in files.items()
                if isinstance(digests, list)
            }
        return signatures

    def problem(self, relpath: str) -> str | None:
        """Why the file at `relpath` must not be loaded (NOT_SIGNED or CHANGED); None when its
        bytes are ones this user signed."""
        known = self.files.get(relpath)
        if not known:
            return NOT_SIGNED
        digest = file_digest(self.key, self.directory / relpath)
        if any(hmac.compare_digest(digest, d) for d in known):
            return None
        return CHANGED

    def sign(self, relpath: str, source: Path | None = None) -> str:
        """Record the digest of the file at `relpath` (of `source` when given: the same bytes,
        about to be copied there); returns the digest."""
        digest = file_digest(self.key, self.directory / relpath if source is None else source)
        self.add(relpath, digest)
        return digest

    def add(self, relpath: str, digest: str) -> None:
        """Record a digest for `relpath`, keeping the last KEEP."""
        known = self.files.setdefault(relpath, [])
        if known and known[-1] == digest:
            return
        if digest in known:
            known.remove(digest)
        known.append(digest)
        del known[:-KEEP]
        self.changed = True

    def save(self) -> None:
        """Write the signatures file atomically, when something was signed since it was read."""
        if not self.changed:
            return
        record = {"format": FORMAT, "key": key_id(self.key), "files": self.files}
        write_text(self.directory / SIGNATURES_FILE, json.dumps(record, indent=1, sort_keys=True))
        self.changed = False
