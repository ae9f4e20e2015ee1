"""The small digits training configuration the command tests train, and a writer of
configuration files."""

from __future__ import annotations

from pathlib import Path


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TINY_DIGITS = """
data: {name: digits}
generator: {noise_dim: 8, units: [32], init_range: 0.1}
discriminator: {units: [16], pieces: 5, keep_probs: [0.8, 0.5], init_range: 0.05}
optim: {batch_size: 50}
eval: {every: 2, samples: 300, n_valid: 100, final_samples: 500, final_n_valid: null,
       grid_rows: 4, grid_cols: 4}
"""
