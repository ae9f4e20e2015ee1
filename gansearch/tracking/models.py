"""Generators as MLflow models: how a reported trial's generator is logged on its run (MLflow's
PyTorch flavour, exported with torch.export) and registered, and how `gansearch sample` finds and
loads it back. Writing and reading the format side by side keeps them in step; loading needs
torch and MLflow, not gansearch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gansearch.tracking.lookup import find_search
from gansearch.tracking.store import TAG_REPORT_RANK, TrackingStore, _failure, _quote

if TYPE_CHECKING:
    from gansearch.models import NoiseSpec

GENERATOR_ARTIFACT = "generator"  # a reported trial's generator, MLflow's PyTorch flavour
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def model_name(experiment_name: str) -> str:
    """The registered-model name of a search's best generator."""
    return f"{experiment_name}-generator"


def log_generator(
    store: TrackingStore,
    run_id: str,
    generator: Any,
    noise: NoiseSpec,
    metadata: Mapping[str, Any],
) -> str:
    """Log `generator` (a torch module) on a trial's run with MLflow's PyTorch flavour,
    exported with torch.export (loading it needs torch and MLflow, not gansearch), with a
    signature for its noise input and `noise` and `metadata` in the model's metadata.
    Returns the model's URI."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    example = noise.draw(2, torch.Generator().manual_seed(0)).numpy()
    generator = generator.eval()
    with torch.no_grad():
        output = generator(torch.from_numpy(example)).numpy()
    meta = {"noise": noise.as_dict(), **metadata}
    try:
        with tempfile.TemporaryDirectory(prefix="gansearch-model-") as directory:
            local = Path(directory) / GENERATOR_ARTIFACT
            mlflow.pytorch.save_model(
                generator,
                str(local),
                signature=infer_signature(example, output),
                input_example=example,
                metadata=meta,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            store.client.log_artifacts(run_id, str(local), GENERATOR_ARTIFACT)
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    return f"runs:/{run_id}/{GENERATOR_ARTIFACT}"


def register_generator(store: TrackingStore, name: str, run_id: str) -> str:
    """Register the generator logged on `run_id` as a new version of model `name`; returns
    the version."""
    client = store.client
    try:
        if not client.search_registered_models(f"name = '{_quote(name)}'"):
            client.create_registered_model(
                name, description="The best generator of a gansearch search (gansearch report)"
            )
        version = client.create_model_version(
            name, f"runs:/{run_id}/{GENERATOR_ARTIFACT}", run_id=run_id
        )
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    return str(version.version)


def reported_generators(
    store: TrackingStore, experiment_dir: Path, search_id: str | None
) -> dict[int, str]:
    """Report rank -> run id of the trial runs of this search that hold a logged generator."""
    search = find_search(store, experiment_dir, search_id)
    if search is None:
        return {}
    found: dict[int, str] = {}
    for run in store.trial_runs(search.experiment_id, search.run_id).values():
        rank = run.data.tags.get(TAG_REPORT_RANK)
        if rank and rank.isdigit() and has_generator(store, run.info.run_id):
            found[int(rank)] = run.info.run_id
    return dict(sorted(found.items()))


def has_generator(store: TrackingStore, run_id: str) -> bool:
    """Whether the run holds a logged generator."""
    try:
        names = {Path(a.path).name for a in store.client.list_artifacts(run_id)}
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    return GENERATOR_ARTIFACT in names


def load_generator(store: TrackingStore, run_id: str) -> tuple[Any, dict[str, Any]]:
    """The generator logged on `run_id` (a torch module; torch.export's, no gansearch class)
    and its metadata (noise, image shape, ...)."""
    import mlflow.artifacts
    import mlflow.pytorch
    from mlflow.models import Model

    quiet = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"  # seven small files: no progress bar
    try:
        with tempfile.TemporaryDirectory(prefix="gansearch-model-") as directory:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=GENERATOR_ARTIFACT,
                dst_path=directory,
                tracking_uri=store.uri,
            )
            model = mlflow.pytorch.load_model(local)
            metadata = Model.load(local).metadata or {}
    except Exception as exc:
        raise _failure(store.uri, exc) from None
    finally:
        if quiet is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = quiet
    return model, dict(metadata)
