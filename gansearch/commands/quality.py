"""`gansearch quality`: FID, mode coverage and confidence of samples, or the reference rows."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from gansearch.commands.classifier import require_labels, say
from gansearch.data import DATASETS
from gansearch.references import N_CLUSTERS, N_SAMPLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch quality`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--samples",
        type=Path,
        metavar="FILE.npy",
        help="generated samples, (n, d) or (n, H, W), pixels in [0, 1]",
    )
    what.add_argument(
        "--references",
        action="store_true",
        help="the reference rows of Table 1 instead: real training images and k-means "
        "centroids, scored the same way (computed once, then cached)",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-dir", help="directory holding the data set (see README)")
    parser.add_argument(
        "--parzen",
        action="store_true",
        help="also the paper's Parzen protocol (sigma cross-validated on the first 1,000 "
        "validation images, test log-likelihood)",
    )
    parser.add_argument(
        "--n-samples",
        type=int,
        help=f"--references: real training images used as samples (default {N_SAMPLES})",
    )
    parser.add_argument(
        "--n-clusters", type=int, help=f"--references: k-means clusters (default {N_CLUSTERS})"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Score the samples (or compute the reference rows) and print the numbers."""
    from gansearch.errors import UsageError

    require_labels(args.dataset)
    if args.samples is not None:
        if args.n_samples is not None or args.n_clusters is not None:
            raise UsageError("--n-samples and --n-clusters go with --references")
        return _samples(args)
    if args.parzen:
        raise UsageError("--parzen goes with --samples (the reference rows always have it)")
    return _references(args)


def _samples(args: argparse.Namespace) -> int:
    from gansearch.commands.parzen import load_samples, print_result
    from gansearch.data import load_dataset
    from gansearch.parzen import ParzenConfig, check_samples, evaluate
    from gansearch.quality import load_scorer

    raw = load_samples(args.samples)
    data = load_dataset(args.dataset, args.data_dir)
    samples = check_samples(raw, data.image_shape, str(args.samples))
    scorer = load_scorer(data, say=say)
    started = time.perf_counter()
    result = scorer.score(samples, str(args.samples))
    say(f"scored {len(samples)} samples in {time.perf_counter() - started:.1f} s")
    parzen = config = None
    if args.parzen:
        config = ParzenConfig()
        say(f"Parzen protocol: {len(data.test)} test examples under {len(samples)} samples")
        parzen = evaluate(samples, data.valid, data.test, config)
    if args.json:
        summary = {
            "dataset": data.name,
            "samples": str(args.samples),
            "classifier": {"path": str(scorer.path), "test_accuracy": scorer.test_accuracy},
            "quality": asdict(result),
        }
        if parzen is not None:
            summary["parzen"] = asdict(parzen)
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{result.n_samples} samples of {data.name}, seen by its classifier (test accuracy "
        f"{scorer.test_accuracy:.2%}):"
    )
    print(f"FID: {result.fid:.2f} (against the {len(data.test)} test images; lower is better)")
    print(
        f"classes covered: {result.classes_covered} of {result.n_classes} "
        f"(KL {result.class_kl:.4f} nats from the test set's class shares)"
    )
    print(f"confidence: {result.confidence:.4f} (mean top class probability)")
    shares = ", ".join(f"{c}: {share:.1%}" for c, share in enumerate(result.histogram))
    print(f"class histogram: {shares}")
    if parzen is not None:
        print_result("Parzen ", parzen, config)
    return 0


def _references(args: argparse.Namespace) -> int:
    from gansearch.data import load_dataset
    from gansearch.quality import load_scorer
    from gansearch.references import reference_rows, references_dir

    data = load_dataset(args.dataset, args.data_dir)
    scorer = load_scorer(data, say=say)
    rows = reference_rows(
        data,
        scorer,
        n_samples=N_SAMPLES if args.n_samples is None else args.n_samples,
        n_clusters=N_CLUSTERS if args.n_clusters is None else args.n_clusters,
        say=say,
    )
    if args.json:
        print(json.dumps({"dataset": data.name, "rows": [asdict(r) for r in rows]}, indent=2))
        return 0
    print(f"Reference rows for {data.name} (Parzen: the paper's protocol; quality: its classifier)")
    print()
    print("| Reference | Parzen test LL | sigma | FID | classes covered (KL) | confidence |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.label} | {r.test_mean:.2f} ± {r.test_se:.2f} | {r.sigma:.4f} | {r.fid:.2f} | "
            f"{r.classes_covered}/{r.n_classes} ({r.class_kl:.3f}) | {r.confidence:.3f} |"
        )
    print()
    for r in rows:
        print(f"{r.kind}: {r.note}; {r.seconds:.0f} s")
    print(f"cached in {references_dir()}")
    return 0
