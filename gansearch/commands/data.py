"""`gansearch data`: find (or download), verify and cache a data set, then say where it is."""

from __future__ import annotations

import argparse
import time

from gansearch.data import DATASETS, cache_dir, load_dataset, resolve_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch data`."""
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--data-dir", help="directory holding the data set")
    parser.add_argument("--fold", type=int, default=0, help="TFD fold (0..4)")
    parser.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading missing files"
    )


def run(args: argparse.Namespace) -> int:
    """Load the data set once (building the Arrow cache) and print its splits."""
    directory, origin = resolve_data_dir(args.data_dir)
    if args.dataset != "digits":
        print(f"data directory: {directory} (from {origin})")
    print(f"cache directory: {cache_dir()}")
    start = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir, fold=args.fold, download=not args.no_download)
    print(f"loaded {data.name} in {time.perf_counter() - start:.2f} s")
    for split in ("train", "valid", "test"):
        array = data.split(split)
        print(f"  {split:5s} {array.shape[0]:6d} x {array.shape[1]} float32 in [0, 1]")
    return 0
