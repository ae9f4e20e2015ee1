"""Starting or joining Ray: a local instance or a cluster's, checked before any trial starts,
with Ray's and Optuna's own messages sent to the experiment's driver.log."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from gansearch.errors import SearchError, UsageError, first_line

if TYPE_CHECKING:
    from gansearch.space import SearchSpace


# Settings Ray and Ray Tune read from the environment, for the search only (ray_environment).
TUNE_ENVIRONMENT = {
    # Every evaluation is checkpointed; Tune warns about the experiment snapshots this forces on
    # short epochs, which says nothing actionable to a gansearch user.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # gansearch's progress lines replace Tune's tables
    # A diverged trial's last report has no valid_ll (the Optuna searcher marks it FAIL).
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
}
LOCAL_RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled"}  # a private, local instance: no token


@contextlib.contextmanager
def ray_environment(local: bool) -> Iterator[None]:
    """Set the environment Ray and Tune read (where the user has not set a value) while the
    search runs, and put it back afterwards: no library call leaves the process changed."""
    wanted = {**TUNE_ENVIRONMENT, **(LOCAL_RAY_ENVIRONMENT if local else {})}
    added = [key for key in wanted if key not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


LIBRARY_LOGGERS = ("ray", "optuna")  # their messages go to the experiment's driver.log


def send_library_logs(path: Path) -> Callable[[], None]:
    """Send Ray's and Optuna's log messages to `path` instead of the terminal, where only
    gansearch's lines belong; returns the function that puts their handlers back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False

    def restore() -> None:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()

    return restore


def start_ray(address: str | None) -> bool:
    """Start a local Ray or connect to a cluster; returns whether we started it. Call it inside
    `ray_environment`, which holds the settings Ray and Tune read from the environment."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    if address is None:
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise SearchError(f"cannot start a local Ray instance: {exc}") from exc
        return True
    check_reachable_cluster(address)
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        first = first_line(exc)
        raise SearchError(
            f"cannot reach the Ray cluster at --address {address}: {first}. Start one (see "
            "cluster/README.md) or leave out --address to run on this machine"
        ) from exc
    if ray.util.client.ray.is_connected():
        # Over Ray Client, Tune runs its controller (and our progress and MLflow callbacks) in
        # an actor on the cluster, where they cannot reach this terminal or tracking client.
        ray.shutdown()
        raise SearchError(
            f"--address {address} is a Ray Client address: gansearch drives Ray Tune from its own "
            "process (progress, MLflow logging, results files), which Ray Client would move onto "
            "the cluster. Run the search on the head node instead: `ray job submit --address "
            "http://HEAD:8265 -- gansearch run --space FILE --address auto` (cluster/README.md)"
        )
    return True


CONNECT_SECONDS = 5.0  # to open a TCP connection to a Ray cluster's address


def check_reachable_cluster(address: str) -> None:
    """Fail within seconds when nothing listens at `address` (ray.init would wait minutes and
    ignore Ctrl-C); `auto` and `local` name no host to check."""
    if address in ("auto", "local"):
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SearchError(
            f"cannot reach the Ray cluster at --address {address}: {reason}. Start one (see "
            "cluster/README.md) or leave out --address to run on this machine"
        ) from None


def fit_resources(space: SearchSpace, local: bool) -> SearchSpace:
    """Fail before any trial starts when no node can host a trial; drop GPUs on a laptop."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    per_node = [n.get("Resources", {}) for n in nodes]
    want_cpu, want_gpu = space.resources.cpus, space.resources.gpus
    total_gpus = sum(r.get("GPU", 0.0) for r in per_node)
    if want_gpu > 0 and total_gpus == 0:
        if not local:
            raise SearchError(
                f"{space.source}: resources.gpus: each trial asks for {want_gpu} GPU but the "
                "cluster has none; set resources.gpus: 0 to train on CPUs"
            )
        print(
            f"gansearch: no GPU on this machine: trials run on CPU ({space.source} asks for "
            f"{want_gpu} GPU per trial)",
            file=sys.stderr,
        )
        space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, gpus=0.0))
        want_gpu = 0.0
    fits = [r for r in per_node if r.get("CPU", 0.0) >= want_cpu and r.get("GPU", 0.0) >= want_gpu]
    if not fits:
        biggest = max((r.get("CPU", 0.0) for r in per_node), default=0.0)
        raise SearchError(
            f"{space.source}: resources: a trial asks for {want_cpu} CPU and {want_gpu} GPU, "
            f"but no node has that much (the largest has {biggest:g} CPUs)"
        )
    return space
