"""The in-memory form every data set takes: float32 pixels in [0, 1], one row per image."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def array_digest(arrays: Iterable[tuple[str | None, np.ndarray]], header: str = "") -> str:
    """A checksum of arrays' types, shapes and bytes (each optionally labelled), for cache keys."""
    digest = hashlib.blake2b(digest_size=16)
    if header:
        digest.update(header.encode())
    for label, array in arrays:
        array = np.ascontiguousarray(array)
        tag = f"{array.dtype}:{array.shape}"
        digest.update((tag if label is None else f"{label}:{tag}").encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """A data set split as the paper split it.

    Arrays are float32, shape (n, d) with d = prod(image_shape), values in [0, 1]. They may be
    read-only views of a memory-mapped Arrow cache (shared between processes on one node): copy
    before writing into them. Labels are int64 or None where the data set has none.
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, ...]
    train_labels: np.ndarray | None = None
    valid_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Number of pixels per example (784 for MNIST)."""
        return int(np.prod(self.image_shape))

    def split(self, name: str) -> np.ndarray:
        """Return the split called `train`, `valid` or `test`."""
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}: expected train, valid or test")
        return getattr(self, name)
