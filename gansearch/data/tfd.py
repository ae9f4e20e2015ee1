"""The Toronto Face Database (TFD), from the `TFD_48x48.mat` file users bring.

TFD is not publicly downloadable. The file holds `images` (N x 48 x 48, uint8) and `folds`
(N x 5: per fold, 0 = unlabeled, 1 = train, 2 = valid, 3 = test), plus optional labels
(`labs_ex`, expressions). As in the paper's pylearn2 set-up, a fold's training set is its
unlabeled and train examples together ("full_train").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from gansearch.errors import DataError

FILE_NAME = "TFD_48x48.mat"
N_FOLDS = 5
UNLABELED, TRAIN, VALID, TEST = 0, 1, 2, 3


def find_file(data_dir: Path) -> Path | None:
    """Return the TFD .mat file in `data_dir` or its `tfd/` or `TFD/` folder."""
    for sub in ("", "tfd", "TFD"):
        path = (data_dir / sub / FILE_NAME) if sub else data_dir / FILE_NAME
        if path.is_file():
            return path
    return None


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """Read and check the .mat file: float32 images in [0, 1] flattened to 2304, folds, labels."""
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise DataError(
            f"{path}: MATLAB v7.3 files are not supported; save it as v7 ({exc})"
        ) from exc
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .mat file ({exc})") from exc
    for key in ("images", "folds"):
        if key not in mat:
            raise DataError(f"{path}: missing the variable {key!r} (found {sorted(mat)})")
    images, folds = np.asarray(mat["images"]), np.asarray(mat["folds"])
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise DataError(f"{path}: 'images' has shape {images.shape}, expected (N, 48, 48)")
    if folds.shape != (images.shape[0], N_FOLDS):
        raise DataError(f"{path}: 'folds' has shape {folds.shape}, expected ({len(images)}, 5)")
    if not np.isin(folds, (UNLABELED, TRAIN, VALID, TEST)).all():
        raise DataError(f"{path}: 'folds' holds values other than 0, 1, 2 and 3")
    if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise DataError(f"{path}: 'images' holds values that are not finite numbers")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 255.0:
        raise DataError(
            f"{path}: 'images' spans [{low:g}, {high:g}]; expected pixels in [0, 255] or [0, 1]"
        )
    scale = 255.0 if images.dtype == np.uint8 or high > 1.0 else 1.0
    arrays = {
        "images": (images.reshape(len(images), -1) / scale).astype(np.float32),
        "folds": folds.astype(np.int8),
    }
    if "labs_ex" in mat:
        arrays["labels"] = np.asarray(mat["labs_ex"]).reshape(-1).astype(np.int64)
    return arrays


def fold_indices(folds: np.ndarray, fold: int) -> dict[str, np.ndarray]:
    """Row indices of the train (unlabeled + train), valid and test splits of one fold."""
    if not 0 <= fold < N_FOLDS:
        raise DataError(f"TFD fold must be 0..{N_FOLDS - 1}, got {fold}")
    column = folds[:, fold]
    return {
        "train": np.flatnonzero((column == UNLABELED) | (column == TRAIN)),
        "valid": np.flatnonzero(column == VALID),
        "test": np.flatnonzero(column == TEST),
    }
