"""`gansearch sample`: samples from a search's reported generator, read back from MLflow.

The generator is the one `gansearch report` logged on the trial's MLflow run (MLflow's PyTorch
flavour); its noise distribution travels in the model's metadata, and the noise is drawn exactly
as the report drew it, so the same seed gives the report's samples.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

SUFFIXES = (".npy", ".png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch sample`."""
    parser.add_argument("--experiment", help="the search's name (default: the only one)")
    parser.add_argument(
        "--results-dir", default="runs", help="where the searches are (default: runs)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--rank", type=int, default=1, help="the report's configuration of this rank (default 1)"
    )
    which.add_argument("--run-id", help="the MLflow run that holds the generator")
    parser.add_argument("-n", type=int, default=100, help="how many samples (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    parser.add_argument(
        "--out", required=True, type=Path, help="FILE.npy (pixels in [0, 1]) or FILE.png (a grid)"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the one the search used)"
    )


def run(args: argparse.Namespace) -> int:
    """Find the generator, draw the samples, write them."""
    import numpy as np
    import torch

    from gansearch.errors import UsageError
    from gansearch.experiment import (
        find_experiment,
        stored_search_id,
        stored_tracking_uri,
    )
    from gansearch.files import atomic_path
    from gansearch.models import NoiseSpec, generate
    from gansearch.tracking import (
        TrackingStore,
        has_generator,
        load_generator,
        reported_generators,
        resolve_tracking_uri,
    )

    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if args.out.suffix not in SUFFIXES:
        raise UsageError(f"--out {args.out}: write .npy (the samples) or .png (a grid of them)")
    experiment_dir = find_experiment(Path(args.results_dir), args.experiment)
    uri = resolve_tracking_uri(
        args.tracking_uri, experiment_dir.parent, stored_tracking_uri(experiment_dir)
    )
    store = TrackingStore.open(uri, experiment_dir.parent)

    def reported() -> dict[int, str]:
        """Report rank -> run of every logged generator of the search."""
        return reported_generators(store, experiment_dir, stored_search_id(experiment_dir))

    def listed(found: dict[int, str]) -> str:
        return ", ".join(f"rank {r}: run {i}" for r, i in found.items()) or "none"

    if args.run_id is not None:  # the search's generators are listed only if it is not one
        if not has_generator(store, args.run_id):
            raise UsageError(
                f"--run-id {args.run_id}: that run holds no generator; generators of "
                f"{experiment_dir.name}: {listed(reported())}"
            )
        run_id = args.run_id
    else:
        found = reported()
        if not found:
            raise UsageError(
                f"{experiment_dir.name}: no generator in MLflow ({uri}): run `gansearch report "
                f"--results-dir {experiment_dir.parent} --experiment {experiment_dir.name}` first"
            )
        if args.rank not in found:
            raise UsageError(f"--rank {args.rank}: no such configuration; {listed(found)}")
        run_id = found[args.rank]

    model, meta = load_generator(store, run_id)
    noise = NoiseSpec(**meta["noise"])
    shape = tuple(int(x) for x in meta["image_shape"])
    samples = generate(model, noise, args.n, torch.Generator().manual_seed(args.seed)).numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".npy":
        with atomic_path(args.out) as tmp, tmp.open("wb") as f:
            np.save(f, samples.reshape(args.n, *shape))
    else:
        from gansearch.figures import sample_grid

        cols = math.ceil(math.sqrt(args.n))
        rows = math.ceil(args.n / cols)
        padded = np.concatenate([samples, np.zeros((rows * cols - args.n, samples.shape[1]))])
        sample_grid(padded, shape, None, rows, cols, args.out)
    print(
        f"wrote {args.n} samples of {experiment_dir.name}'s generator (run {run_id}, "
        f"{meta.get('trial_id', '?')}, seed {args.seed}) to {args.out}"
    )
    return 0
