"""Figures (gansearch.figures): a sample grid with the nearest training examples beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gansearch.figures import HIGHLIGHT, nearest_rows, sample_grid


def test_sample_grid_png_with_nearest_training_examples(tmp_path: Path) -> None:
    r = np.random.default_rng(0)
    train = r.random((30, 16)).astype(np.float32)
    samples = train[[3, 7, 11, 5, 2, 9]] + 0.01  # nearest neighbours are known
    assert nearest_rows(samples, train, block=7).tolist() == [3, 7, 11, 5, 2, 9]
    path = sample_grid(samples, (4, 4), train, rows=2, cols=3, path=tmp_path / "g.png", scale=1)
    image = np.asarray(Image.open(path))
    # 2 rows of 8-px cells; 3 sample columns + a gap of 4 + a neighbour column.
    assert image.shape == (2 * 8, 4 * 8 + 4, 3)
    assert (image == np.array(HIGHLIGHT, dtype=np.uint8)).all(axis=2).sum() > 0
    assert not (image[:, : 3 * 8] == np.array(HIGHLIGHT, dtype=np.uint8)).all(axis=2).any()
