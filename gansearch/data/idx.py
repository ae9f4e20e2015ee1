"""MNIST-format (IDX) data sets: find the files, check them, decode them, download them.

MNIST and Fashion-MNIST share the format and the file names; each file is checked against the
standard uncompressed size and md5 when it is decoded, so a truncated download or a corrupt file is
reported by name instead of surfacing as a strange array later.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gansearch.errors import DataError

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class IdxFile:
    """One standard IDX file: its name (without .gz), uncompressed size and md5."""

    name: str
    size: int
    md5: str


@dataclass(frozen=True)
class IdxSource:
    """An IDX data set: where its files may sit inside a data directory and where to fetch them."""

    name: str
    files: dict[str, IdxFile]
    subdirs: tuple[str, ...]
    mirrors: tuple[str, ...]
    extra_dirs: tuple[str, ...] = ()


MNIST = IdxSource(
    name="mnist",
    files={
        "train_images": IdxFile(
            "train-images-idx3-ubyte", 47040016, "6bbc9ace898e44ae57da46a324031adb"
        ),
        "train_labels": IdxFile(
            "train-labels-idx1-ubyte", 60008, "a25bea736e30d166cdddb491f175f624"
        ),
        "test_images": IdxFile(
            "t10k-images-idx3-ubyte", 7840016, "2646ac647ad5339dbf082846283269ea"
        ),
        "test_labels": IdxFile("t10k-labels-idx1-ubyte", 10008, "27ae3e4e09519cfbb04c329615203637"),
    },
    # the directory itself, a `mnist/` folder, and torchvision's `MNIST/raw/` layout
    subdirs=("", "mnist", "MNIST/raw", "MNIST"),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = IdxSource(
    name="fashion_mnist",
    files={
        "train_images": IdxFile(
            "train-images-idx3-ubyte", 47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"
        ),
        "train_labels": IdxFile(
            "train-labels-idx1-ubyte", 60008, "9018921c3c673c538a1fc5bad174d6f9"
        ),
        "test_images": IdxFile(
            "t10k-images-idx3-ubyte", 7840016, "8181f5470baa50b63fa0f6fddb340f0a"
        ),
        "test_labels": IdxFile("t10k-labels-idx1-ubyte", 10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    # same file names as MNIST, so only sub-folders: ours, torchvision's, and the directory itself
    subdirs=("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST", ""),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # Debian's dataset-fashion-mnist package
    extra_dirs=("/usr/share/datasets/fashion-mnist",),
)


def _candidate(directory: Path, spec: IdxFile) -> Path | None:
    for name in (spec.name, spec.name + ".gz"):
        path = directory / name
        if path.is_file():
            return path
    return None


def find_files(source: IdxSource, data_dir: Path) -> dict[str, Path] | None:
    """Return the paths of all four files in the first layout under `data_dir` that has them."""
    directories = [data_dir / sub if sub else data_dir for sub in source.subdirs]
    directories += [Path(extra) for extra in source.extra_dirs]
    for directory in directories:
        found = {role: _candidate(directory, spec) for role, spec in source.files.items()}
        if all(found.values()):
            return {role: path for role, path in found.items() if path is not None}
    return None


def _read_bytes(path: Path, limit: int) -> bytes:
    """Read a file, gunzipping it when it starts with the gzip magic number; more than `limit`
    bytes (the standard file's size) is refused before it is all read or inflated."""
    with path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        opener = gzip.open if gzipped else Path.open
        with opener(path, "rb") as f:
            content = f.read(limit + 1)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({exc}); delete it and download it again"
        ) from exc
    if len(content) > limit:
        raise DataError(
            f"{path}: {'inflates to' if gzipped else 'holds'} more than the {limit:,} bytes of "
            "the standard file: not the standard file; delete it and download it again"
        )
    return content


def verify(path: Path, spec: IdxFile, content: bytes) -> None:
    """Check uncompressed size and md5 against the standard file; raise DataError naming `path`."""
    if len(content) != spec.size:
        raise DataError(
            f"{path}: {len(content)} bytes uncompressed, expected {spec.size} for {spec.name}: "
            "the file is truncated or is not the standard one; delete it and download it again"
        )
    digest = hashlib.md5(content).hexdigest()
    if digest != spec.md5:
        raise DataError(
            f"{path}: md5 {digest} does not match the standard {spec.md5} of {spec.name}: "
            "the file is corrupt; delete it and download it again"
        )


def decode_idx(path: Path, content: bytes) -> np.ndarray:
    """Decode an unsigned-byte IDX file (images or labels) into a uint8 array."""
    if len(content) < 4 or content[0:2] != b"\x00\x00" or content[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = content[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", content[4:header])
    expected = header + int(np.prod(shape))
    if len(content) != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes, file has {len(content)}")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def read_source(source: IdxSource, paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Verify and decode the four files of `source` into uint8 arrays keyed by role."""
    arrays: dict[str, np.ndarray] = {}
    for role, spec in source.files.items():
        content = _read_bytes(paths[role], spec.size)
        verify(paths[role], spec, content)
        arrays[role] = decode_idx(paths[role], content)
    return arrays


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Stream `url` into `target`, printing progress to stderr."""
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done, last_report = 0, -1
        while chunk := response.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if total:
                percent = 100 * done // total
                if percent // 10 != last_report:
                    last_report = percent // 10
                    print(f"  {target.name}: {percent}% of {total / 1e6:.1f} MB", file=sys.stderr)


def download(
    source: IdxSource,
    target_dir: Path,
    *,
    mirrors: tuple[str, ...] | None = None,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """Download the gzipped files of `source` into `target_dir`, verifying each checksum.

    A file is moved into place only after its size and md5 check out, so an interrupted or
    corrupt download never leaves a file that looks valid.
    """
    mirrors = mirrors if mirrors is not None else source.mirrors
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data directory {target_dir}: {exc}") from exc
    paths: dict[str, Path] = {}
    for role, spec in source.files.items():
        existing = _candidate(target_dir, spec)
        if existing is not None:
            paths[role] = existing
            continue
        final = target_dir / (spec.name + ".gz")
        partial = final.with_suffix(".gz.part")
        errors: list[str] = []
        for mirror in mirrors:
            url = mirror + spec.name + ".gz"
            print(f"gansearch: downloading {url}", file=sys.stderr)
            try:
                _fetch(url, partial, timeout)
                verify(partial, spec, _read_bytes(partial, spec.size))
            except (urllib.error.URLError, OSError, TimeoutError, DataError) as exc:
                errors.append(f"{url}: {exc}")
                partial.unlink(missing_ok=True)
                continue
            shutil.move(partial, final)
            paths[role] = final
            break
        else:
            names = ", ".join(f"{f.name}[.gz]" for f in source.files.values())
            raise DataError(
                f"could not download {source.name} ({'; '.join(errors) or 'no mirror'}). "
                f"Put the files {names} into {target_dir} (or point --data-dir or "
                f"GANSEARCH_DATA_DIR at a directory that holds them)"
            )
    return paths
