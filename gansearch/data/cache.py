"""A memory-mapped Arrow cache of decoded arrays.

Decoding MNIST from gzipped IDX files takes about a second; reading it back from an uncompressed
Arrow IPC file through a memory map costs almost nothing, and every process on a node that maps the
same file shares its pages (concurrent trials do not each hold a private copy).

Layout: ``<cache>/arrow/<name>-<key>/<array>.arrow``, one IPC file per array, one column named
``values`` (a fixed-size list per row for 2-D arrays). The key hashes the source files' paths,
sizes and modification times and a format version, so replacing a source file rebuilds the cache.
Nothing read back is trusted: the shapes recorded when the entry was written must match what the
files hold, floating-point arrays (pixels) must be finite and in [0, 1], and every array's bytes
must match the SHA-256 recorded with it (a pixel changed within range passes the other checks);
an entry that fails is rebuilt. The checksum costs a pass over the bytes on every load (a tenth
to a third of a second for MNIST's 220 MB, at 0.5 to 2 GB/s): SHA-256, which CPUs compute in
hardware, is the fastest of hashlib's digests here (BLAKE2b takes twice as long).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

FORMAT_VERSION = "3"  # 2: COMPLETE records every array's shape; 3: and its SHA-256


def cache_key(name: str, sources: Sequence[Path]) -> str:
    """A short key that changes whenever a source file is replaced or modified."""
    digest = hashlib.sha256(f"{name}:{FORMAT_VERSION}".encode())
    for path in sources:
        stat = path.stat()
        digest.update(f"|{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{name}-{digest.hexdigest()[:16]}"


def checksum(array: np.ndarray) -> str:
    """The SHA-256 of an array's bytes, in C order (its type and shape are checked apart)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest()


def _to_arrow(array: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(array).reshape(-1))
    if array.ndim == 1:
        return flat
    width = int(np.prod(array.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _write(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        column = _to_arrow(array)
        meta = {b"shape": ",".join(str(s) for s in array.shape).encode()}
        schema = pa.schema([pa.field("values", column.type)], metadata=meta)
        with pa.OSFile(str(directory / f"{name}.arrow"), "wb") as sink:
            with pa.ipc.new_file(sink, schema) as writer:
                writer.write_batch(pa.record_batch([column], schema=schema))


def _record(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """What COMPLETE records of each array: its shape and checksum."""
    return {
        name: {"shape": list(array.shape), "sha256": checksum(array)}
        for name, array in arrays.items()
    }


def _read(directory: Path, records: dict[str, dict], verify: bool = True) -> dict[str, np.ndarray]:
    """The cached arrays, checked against the shapes and (if `verify`) the checksums recorded
    with them (ValueError if not)."""
    arrays: dict[str, np.ndarray] = {}
    for name, record in records.items():
        recorded = tuple(record["shape"])
        source = pa.memory_map(str(directory / f"{name}.arrow"), "r")
        reader = pa.ipc.open_file(source)
        shape = tuple(int(s) for s in reader.schema.metadata[b"shape"].decode().split(","))
        if shape != recorded:
            raise ValueError(f"{name}: shape {shape} in the file, {recorded} recorded")
        table = reader.read_all()
        chunks = table.column("values").chunks
        column = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)  # one chunk: no copy
        values = column.values if pa.types.is_fixed_size_list(column.type) else column
        array = values.to_numpy(zero_copy_only=True).reshape(shape)
        if np.issubdtype(array.dtype, np.floating) and array.size:
            low, high = float(array.min()), float(array.max())  # NaN propagates into both
            if not (0.0 <= low and high <= 1.0):
                raise ValueError(f"{name}: values span [{low:g}, {high:g}], not pixels in [0, 1]")
        if verify and checksum(array) != record["sha256"]:
            raise ValueError(f"{name}: its bytes changed since the cache was written (checksum)")
        arrays[name] = array
    return arrays


def load_cached(
    name: str,
    sources: Sequence[Path],
    build: Callable[[], dict[str, np.ndarray]],
    cache_root: Path,
) -> dict[str, np.ndarray]:
    """Return the arrays that `build()` makes, from the Arrow cache when it is there.

    The returned arrays are read-only views of memory-mapped files. A missing or unreadable
    cache entry is rebuilt; a cache directory that cannot be written only costs speed.
    """
    directory = cache_root / "arrow" / cache_key(name, sources)
    marker = directory / "COMPLETE"
    if marker.is_file():
        try:
            return _read(directory, json.loads(marker.read_text()))
        except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            print(f"gansearch: rebuilding unreadable cache {directory} ({exc})", file=sys.stderr)
            shutil.rmtree(directory, ignore_errors=True)
    arrays = build()
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        _write(staging, arrays)
        records = _record(arrays)
        (staging / "COMPLETE").write_text(json.dumps(records))
        try:
            os.replace(staging, directory)  # atomic: concurrent builders never see a half cache
            ours = True  # its checksums were taken of the very arrays just written
        except OSError:  # another process finished first; use its copy
            shutil.rmtree(staging, ignore_errors=True)
            ours = False
        return _read(directory, records, verify=not ours)
    except OSError as exc:
        print(
            f"gansearch: cannot write cache under {cache_root} ({exc}); continuing without it",
            file=sys.stderr,
        )
        return arrays
