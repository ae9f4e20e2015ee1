"""Data sets split as the paper split them, decoded once and shared through an Arrow cache.

`load_dataset(name)` returns a :class:`Dataset` of float32 pixels in [0, 1]:
- mnist / fashion_mnist: train = training images 0..49,999, valid = 50,000..59,999, test = the
  10,000 test images;
- tfd: per fold, train = unlabeled + train, valid, test (from the user's TFD_48x48.mat);
- digits: scikit-learn's bundled 8x8 digits (offline, tiny): 1,197 / 300 / 300 in file order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gansearch.data import idx, tfd
from gansearch.data.base import Dataset
from gansearch.data.cache import load_cached
from gansearch.data.locate import cache_dir, resolve_data_dir
from gansearch.errors import DataError

DATASETS = ("mnist", "fashion_mnist", "digits", "tfd")
LABELLED_DATASETS = ("mnist", "fashion_mnist", "digits")  # class labels; TFD has none
N_TRAIN_MNIST = 50_000
IDX_SOURCES = {"mnist": idx.MNIST, "fashion_mnist": idx.FASHION_MNIST}

__all__ = [
    "DATASETS",
    "LABELLED_DATASETS",
    "Dataset",
    "load_dataset",
    "resolve_data_dir",
    "cache_dir",
]


def _canonical(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def _idx_arrays(source: idx.IdxSource, paths: dict[str, Path]) -> dict[str, np.ndarray]:
    raw = idx.read_source(source, paths)
    return {
        "train_images": (raw["train_images"].reshape(len(raw["train_images"]), -1) / 255.0).astype(
            np.float32
        ),
        "train_labels": raw["train_labels"].astype(np.int64),
        "test_images": (raw["test_images"].reshape(len(raw["test_images"]), -1) / 255.0).astype(
            np.float32
        ),
        "test_labels": raw["test_labels"].astype(np.int64),
    }


def _load_idx(name: str, data_dir: Path, origin: str, download: bool) -> Dataset:
    source = IDX_SOURCES[name]
    paths = idx.find_files(source, data_dir)
    if paths is None:
        if not download:
            raise DataError(
                f"{name} files not found in {data_dir} (chosen by {origin}); expected "
                f"{', '.join(f.name + '[.gz]' for f in source.files.values())} there or in "
                f"one of its folders {', '.join(s for s in source.subdirs if s)}"
            )
        target = data_dir / source.subdirs[0] if source.subdirs[0] else data_dir
        paths = idx.download(source, target)
    arrays = load_cached(
        name, [paths[r] for r in idx.ROLES], lambda: _idx_arrays(source, paths), cache_dir()
    )
    images, labels = arrays["train_images"], arrays["train_labels"]
    return Dataset(
        name=name,
        train=images[:N_TRAIN_MNIST],
        valid=images[N_TRAIN_MNIST:],
        test=arrays["test_images"],
        image_shape=(28, 28),
        train_labels=labels[:N_TRAIN_MNIST],
        valid_labels=labels[N_TRAIN_MNIST:],
        test_labels=arrays["test_labels"],
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.data / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    return Dataset(
        name="digits",
        train=images[:1197],
        valid=images[1197:1497],
        test=images[1497:],
        image_shape=(8, 8),
        train_labels=labels[:1197],
        valid_labels=labels[1197:1497],
        test_labels=labels[1497:],
    )


def _load_tfd(data_dir: Path, origin: str, fold: int) -> Dataset:
    path = tfd.find_file(data_dir)
    if path is None:
        raise DataError(
            f"{tfd.FILE_NAME} not found in {data_dir} (chosen by {origin}) or its tfd/ folder. "
            "TFD is not publicly downloadable: put your copy of the file there, or point "
            "--data-dir or GANSEARCH_DATA_DIR at the directory that holds it"
        )
    arrays = load_cached("tfd", [path], lambda: tfd.read_mat(path), cache_dir())
    rows = tfd.fold_indices(arrays["folds"], fold)
    labels = arrays.get("labels")
    return Dataset(
        name=f"tfd-fold{fold}",
        train=arrays["images"][rows["train"]],
        valid=arrays["images"][rows["valid"]],
        test=arrays["images"][rows["test"]],
        image_shape=(48, 48),
        train_labels=None if labels is None else labels[rows["train"]],
        valid_labels=None if labels is None else labels[rows["valid"]],
        test_labels=None if labels is None else labels[rows["test"]],
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    fold: int = 0,
    download: bool = True,
) -> Dataset:
    """Load a data set split as the paper split it.

    The data directory is `data_dir`, else GANSEARCH_DATA_DIR, else the per-user cache; MNIST
    and Fashion-MNIST missing there are downloaded into it (checksums verified) when
    `download` is true. `fold` selects the TFD fold (0..4).
    """
    key = _canonical(name)
    if key == "digits":
        return _load_digits()
    directory, origin = resolve_data_dir(data_dir)
    if key == "tfd":
        return _load_tfd(directory, origin, fold)
    return _load_idx(key, directory, origin, download)
