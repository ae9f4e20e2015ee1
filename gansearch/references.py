"""Reference rows for a calibrated Table 1: real data and k-means centroids, scored like a GAN.

    rows = reference_rows(mnist, load_scorer(mnist))   # [real, kmeans], computed once, then cached

A Parzen-window number means little on its own: it rewards blur. Two reference "generators" put it
on a scale, each measured with exactly the paper's protocol (sigma cross-validated on the first
1,000 validation images, mean test log-likelihood with its standard error) and with the quality
metrics of gansearch.quality (FID, classes covered and class KL, confidence) on the same samples:
- "real": the first `n_samples` (10,000) training images, used as samples: what a perfect
  generator would draw.
- "kmeans": the centroids of k-means with `n_clusters` (10,000) clusters fitted on the training
  split (scikit-learn KMeans, init="random" (a random sample of training images), n_init=1,
  seed 0, at most 30 Lloyd iterations; centroids clipped to [0, 1]): blurry averages of a few
  training images each. k-means++ initialisation with 10,000 clusters takes far longer than the
  whole fit, hence the random initialisation.
Small data sets are capped: at most all training images as real samples, and at most one cluster
per `TRAIN_PER_CLUSTER` (5) training images (MNIST's ratio: 10,000 clusters on 50,000 images).

The rows are cached as JSON under the user cache directory (`cache_dir() / "references"`), keyed
by a checksum of the data, the classifier (its data fingerprint, settings and weights), the sizes,
the seed, the k-means limits and the Parzen protocol; the k-means centroids are cached beside them
(keyed by the data, the sizes, the seed and the limits), so a report pays for k-means once.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from gansearch.data.base import Dataset, array_digest
from gansearch.errors import GansearchError, UsageError
from gansearch.files import write_bytes, write_text
from gansearch.parzen import ParzenConfig, evaluate
from gansearch.quality import QualityScorer, data_fingerprint

REFERENCES_FORMAT = "gansearch.references/1"
REFERENCES_DIR = "references"
N_SAMPLES = 10_000
N_CLUSTERS = 10_000
TRAIN_PER_CLUSTER = 5  # small data sets: at most one cluster per this many training images
KMEANS_MAX_ITER = 30
KMEANS_TOL = 1e-4  # scikit-learn's: relative to the mean variance of the pixels
PROGRESS_SECONDS = 10.0  # at most one k-means progress line this often
KINDS = ("real", "kmeans")


@dataclass(frozen=True)
class ReferenceRow:
    """One reference "generator" scored as a trial's final samples are."""

    kind: str  # "real" or "kmeans"
    label: str  # for Table 1
    dataset: str
    n: int  # samples (real images or centroids)
    test_mean: float  # Parzen test log-likelihood, mean and standard error
    test_se: float
    sigma: float  # cross-validated on the validation set
    valid_mean: float
    valid_se: float
    fid: float | None  # quality metrics; None without a classifier (TFD)
    classes_covered: int | None
    n_classes: int | None
    class_kl: float | None
    confidence: float | None
    seconds: float  # computing the row; for k-means including the fit
    note: str

    def metrics(self) -> dict[str, float]:
        """The row's numbers that are set, by name (Parzen and quality)."""
        names = ("test_mean", "test_se", "sigma", "valid_mean", "fid", "classes_covered")
        names += ("class_kl", "confidence")
        return {k: float(getattr(self, k)) for k in names if getattr(self, k) is not None}


@dataclass(frozen=True)
class KMeansResult:
    """Centroids of a k-means fit and what the fit took."""

    centroids: np.ndarray  # (n_clusters, d) float32 in [0, 1]
    n_iter: int
    converged: bool
    seconds: float


def reference_sizes(n_train: int, n_samples: int, n_clusters: int) -> tuple[int, int]:
    """(real samples, clusters) for a training split of `n_train` images (small ones are capped)."""
    if n_samples < 2 or n_clusters < 2:
        raise UsageError(
            f"reference sizes must be at least 2 (FID needs 2 samples), got n_samples="
            f"{n_samples}, n_clusters={n_clusters}"
        )
    return min(n_samples, n_train), min(n_clusters, max(2, n_train // TRAIN_PER_CLUSTER))


# ----------------------------------------------------------------------------- k-means


class _KMeansProgress(io.TextIOBase):
    """Turns scikit-learn's verbose k-means output into progress lines, one per ~10 s."""

    _ITERATION = re.compile(r"Iteration (\d+), inertia ([0-9.eE+-]+)")

    def __init__(self, say: Callable[[str], None], prefix: str, max_iter: int) -> None:
        super().__init__()
        self.stdout = sys.stdout  # where `say` may print: the stdout before the redirection
        self.say, self.prefix, self.max_iter = say, prefix, max_iter
        self.started = self.last = time.perf_counter()
        self._pending, self.iterations, self.converged = "", 0, False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def _line(self, line: str) -> None:
        now = time.perf_counter()
        line = line.rstrip(".")
        match = self._ITERATION.match(line)
        if match:
            self.iterations = int(match[1]) + 1
            if self.iterations > 1 and now - self.last < PROGRESS_SECONDS:
                return
            line = f"iteration {self.iterations}/{self.max_iter}, inertia {float(match[2]):.6g}"
        elif line.startswith("Converged"):  # the final summary line says so
            self.converged = True
            return
        elif not line or line.startswith("Initialization complete"):
            return
        self.last = now
        with redirect_stdout(self.stdout):
            self.say(f"{self.prefix}: {line} ({now - self.started:.0f} s)")


def kmeans_centroids(
    train: np.ndarray,
    n_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = KMEANS_MAX_ITER,
    tol: float = KMEANS_TOL,
    say: Callable[[str], None] | None = None,
) -> KMeansResult:
    """k-means (Lloyd, scikit-learn) on `train`: random training images as initial centres."""
    from sklearn.cluster import KMeans

    say = say or (lambda text: None)
    x = np.array(train, dtype=np.float32)  # a private copy: the data may be read-only
    if n_clusters > len(x):
        raise UsageError(f"k-means: {n_clusters} clusters but only {len(x)} training images")
    prefix = f"k-means ({n_clusters} clusters, {len(x)} images)"
    say(f"{prefix}: at most {max_iter} iterations")
    model = KMeans(
        n_clusters, init="random", n_init=1, max_iter=max_iter, tol=tol, random_state=seed
    )
    model.set_params(verbose=1)  # its per-iteration lines go to stdout: turned into progress
    progress = _KMeansProgress(say, prefix, max_iter)
    with redirect_stdout(progress):
        model.fit(x)
    seconds = time.perf_counter() - progress.started
    converged = progress.converged or model.n_iter_ < max_iter
    say(
        f"{prefix}: {model.n_iter_} iterations, "
        f"{'converged' if converged else 'stopped at the limit'}, in {seconds:.0f} s"
    )
    centroids = np.clip(model.cluster_centers_, 0.0, 1.0).astype(np.float32)
    return KMeansResult(centroids, int(model.n_iter_), bool(converged), seconds)


# ----------------------------------------------------------------------------- the rows


def reference_rows(
    dataset: Dataset,
    scorer: QualityScorer | None = None,
    *,
    n_samples: int = N_SAMPLES,
    n_clusters: int = N_CLUSTERS,
    seed: int = 0,
    parzen: ParzenConfig | None = None,
    max_iter: int = KMEANS_MAX_ITER,
    cache: Path | None = None,
    recompute: bool = False,
    say: Callable[[str], None] | None = None,
) -> list[ReferenceRow]:
    """The real-data and k-means rows for `dataset`, from the cache or computed and cached.

    Without a `scorer` (data sets without labels) the quality fields are None. `parzen` is the
    protocol (default: the paper's, ParzenConfig()); its device does not change the numbers.
    """
    say = say or (lambda text: None)
    parzen = parzen or ParzenConfig()
    n_real, k = reference_sizes(len(dataset.train), n_samples, n_clusters)
    inputs = _inputs(dataset, scorer, n_real, k, seed, max_iter, parzen)
    kmeans_inputs = inputs["kmeans"]
    folder = references_dir(cache)
    key = _digest_json(inputs)
    path = folder / f"{dataset.name}-{key}.json"
    if not recompute:
        rows = _read_rows(path, key, say)
        if rows is not None:
            say(f"references for {dataset.name}: cached in {path}")
            return rows
    say(
        f"references for {dataset.name}: {n_real} real training images and k-means with {k} "
        f"clusters, scored with the Parzen protocol{' and the classifier' if scorer else ''}"
    )
    started = time.perf_counter()
    real = _row(
        "real",
        f"Real data: {n_real:,} training images",
        np.array(dataset.train[:n_real]),
        dataset,
        scorer,
        parzen,
        f"the first {n_real:,} training images used as samples: what a perfect generator draws",
    )
    real = _with_seconds(real, time.perf_counter() - started)
    say(f"references: real data: {_summary(real)}")

    kmeans_path = folder / f"{dataset.name}-kmeans-{_digest_json(kmeans_inputs)}.npz"
    fit = _kmeans(dataset, k, seed, max_iter, kmeans_path, recompute, say)
    started = time.perf_counter()
    capped = f" (capped at one per {TRAIN_PER_CLUSTER} training images)" if k < n_clusters else ""
    kmeans = _row(
        "kmeans",
        f"k-means: {k:,} centroids",
        fit.centroids,
        dataset,
        scorer,
        parzen,
        f"centroids of k-means with {k:,} clusters{capped} on the {len(dataset.train):,} "
        f"training images (scikit-learn, random init, seed {seed}, {fit.n_iter} iterations, "
        f"{'converged' if fit.converged else 'not converged'}, {fit.seconds:.0f} s), clipped "
        "to [0, 1]",
    )
    kmeans = _with_seconds(kmeans, fit.seconds + time.perf_counter() - started)
    say(f"references: k-means: {_summary(kmeans)}")
    rows = [real, kmeans]
    state = {"format": REFERENCES_FORMAT, "key": key, "inputs": inputs}
    _write_json(path, {**state, "rows": [asdict(r) for r in rows]})
    say(f"references for {dataset.name}: cached in {path}")
    return rows


def _inputs(
    dataset: Dataset,
    scorer: QualityScorer | None,
    n_real: int,
    k: int,
    seed: int,
    max_iter: int,
    parzen: ParzenConfig,
) -> dict[str, Any]:
    """Everything the reference rows depend on, as the cache key hashes it."""
    kmeans = {
        "data": _data_key(dataset, scorer),
        "n_clusters": k,
        "seed": seed,
        "max_iter": max_iter,
        "tol": KMEANS_TOL,
    }
    return {
        "format": REFERENCES_FORMAT,
        "dataset": dataset.name,
        "kmeans": kmeans,
        "n_samples": n_real,
        "classifier": None if scorer is None else _classifier_key(scorer),
        "parzen": {
            "sigmas": [float(s) for s in parzen.sigmas],
            "n_valid": parzen.n_valid,
            "precision": parzen.precision,
        },
    }


def references_dir(cache: Path | None = None) -> Path:
    """Where reference rows and k-means centroids are cached."""
    from gansearch.data.locate import cache_dir

    return Path(cache or cache_dir()) / REFERENCES_DIR


def _row(
    kind: str,
    label: str,
    samples: np.ndarray,
    dataset: Dataset,
    scorer: QualityScorer | None,
    parzen: ParzenConfig,
    note: str,
) -> ReferenceRow:
    result = evaluate(samples, dataset.valid, dataset.test, config=parzen)
    quality = scorer.score(samples, kind) if scorer is not None else None
    return ReferenceRow(
        kind=kind,
        label=label,
        dataset=dataset.name,
        n=len(samples),
        test_mean=float(result.test_mean),
        test_se=float(result.test_se),
        sigma=float(result.sigma),
        valid_mean=float(result.valid_mean),
        valid_se=float(result.valid_se),
        fid=quality.fid if quality else None,
        classes_covered=quality.classes_covered if quality else None,
        n_classes=quality.n_classes if quality else None,
        class_kl=quality.class_kl if quality else None,
        confidence=quality.confidence if quality else None,
        seconds=0.0,
        note=note,
    )


def _with_seconds(row: ReferenceRow, seconds: float) -> ReferenceRow:
    from dataclasses import replace

    return replace(row, seconds=float(seconds))


def _summary(row: ReferenceRow) -> str:
    text = f"Parzen {row.test_mean:.2f} ± {row.test_se:.2f} (sigma {row.sigma:.4f})"
    if row.fid is not None:
        text += (
            f", FID {row.fid:.2f}, {row.classes_covered} of {row.n_classes} classes "
            f"(KL {row.class_kl:.3f}), confidence {row.confidence:.3f}"
        )
    return f"{text} in {row.seconds:.1f} s"


def _kmeans(
    dataset: Dataset,
    n_clusters: int,
    seed: int,
    max_iter: int,
    path: Path,
    recompute: bool,
    say: Callable[[str], None],
) -> KMeansResult:
    """The centroids from their cache, or fitted and cached."""
    if path.exists() and not recompute:
        try:
            with np.load(path, allow_pickle=False) as saved:
                fit = KMeansResult(
                    saved["centroids"].astype(np.float32),
                    int(saved["n_iter"]),
                    bool(saved["converged"]),
                    float(saved["seconds"]),
                )
            if fit.centroids.shape != (n_clusters, dataset.dim):
                raise ValueError(f"centroids of shape {fit.centroids.shape}")
        except Exception as exc:
            say(f"{path}: cannot read cached k-means centroids ({exc}); fitting again")
        else:
            say(f"k-means: {n_clusters} centroids cached in {path}")
            return fit
    fit = kmeans_centroids(dataset.train, n_clusters, seed=seed, max_iter=max_iter, say=say)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        centroids=fit.centroids,
        n_iter=fit.n_iter,
        converged=fit.converged,
        seconds=fit.seconds,
    )
    write_bytes(path, buffer.getvalue())
    return fit


# ----------------------------------------------------------------------------- the cache


def _digest(*arrays: np.ndarray) -> str:
    return array_digest((None, array) for array in arrays)


def _digest_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _data_key(dataset: Dataset, scorer: QualityScorer | None) -> str:
    """A checksum of every split the rows depend on (train, valid, test and their labels)."""
    if dataset.train_labels is not None and dataset.test_labels is not None:
        base = data_fingerprint(dataset)
    else:
        base = _digest(dataset.train, dataset.test)
    if scorer is not None and (scorer.dataset != dataset.name or scorer.fingerprint != base):
        raise GansearchError(
            f"the classifier for {scorer.dataset} was trained on other data than this "
            f"{dataset.name}: load it with quality.load_scorer(dataset)"
        )
    return f"{dataset.name}:{base}:{_digest(dataset.valid)}"


def _classifier_key(scorer: QualityScorer) -> dict[str, Any]:
    weights = [t.detach().cpu().numpy() for t in scorer.model.state_dict().values()]
    config = asdict(scorer.config)
    config["channels"] = list(config["channels"])
    return {"fingerprint": scorer.fingerprint, "config": config, "weights": _digest(*weights)}


def _read_rows(path: Path, key: str, say: Callable[[str], None]) -> list[ReferenceRow] | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != REFERENCES_FORMAT or state.get("key") != key:
            raise ValueError("written for other inputs")
        names = {f.name for f in fields(ReferenceRow)}
        rows = [ReferenceRow(**{k: raw[k] for k in names}) for raw in state["rows"]]
        if [r.kind for r in rows] != list(KINDS):
            raise ValueError(f"rows {[r.kind for r in rows]}")
    except Exception as exc:
        say(f"{path}: cannot read cached reference rows ({exc}); computing them again")
        return None
    return rows


def _write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")  # concurrent reports never read half
