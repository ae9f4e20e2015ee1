"""Starting or joining Ray: a local instance or a cluster's, checked before any trial starts,
with Ray's and Optuna's own messages sent to the experiment's driver.log."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from gansearch.errors import SearchError, UsageError, first_line
from gansearch.files import open_append
from gansearch.search.local_ray import LocalRay

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
RAY_ADDRESS = "RAY_ADDRESS"  # the cluster ray.init joins when given no address (Ray's setting)
# The address of the local instance ray_environment started (it is also RAY_ADDRESS, which the
# user did not set): tells it apart from a cluster the user named.
LOCAL_RAY_ADDRESS = "GANSEARCH_LOCAL_RAY_ADDRESS"


@contextlib.contextmanager
def ray_environment(local: bool) -> Iterator[None]:
    """Set the environment Ray and Tune read (where the user has not set a value) while the
    search runs, and put it back afterwards: no library call leaves the process changed.

    For a local search (no --address, and no RAY_ADDRESS set by the user) that environment
    includes the local Ray instance itself: started here in a session of its own (a signal to
    the driver's process group must not reach Ray's processes; gansearch.search.local_ray) and
    named by RAY_ADDRESS, which `start_ray` joins; it is shut down when the block ends."""
    local = local and not os.environ.get(RAY_ADDRESS)
    wanted = {**TUNE_ENVIRONMENT, **(LOCAL_RAY_ENVIRONMENT if local else {})}
    added = [key for key in wanted if key not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    instance = None
    try:
        if local and not ray.is_initialized():
            instance = _start_local_ray()
            os.environ[RAY_ADDRESS] = os.environ[LOCAL_RAY_ADDRESS] = instance.address
            added += [RAY_ADDRESS, LOCAL_RAY_ADDRESS]
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
        if instance is not None:
            instance.stop()


def _start_local_ray() -> LocalRay:
    try:
        return LocalRay.start()
    except (OSError, RuntimeError) as exc:
        raise SearchError(f"cannot start a local Ray instance: {first_line(exc)}") from exc


def is_local(address: str | None) -> bool:
    """Whether the search runs on the local Ray instance gansearch starts: no --address, and
    no RAY_ADDRESS other than the one ray_environment set for that instance."""
    named = os.environ.get(RAY_ADDRESS)
    return address is None and (not named or named == os.environ.get(LOCAL_RAY_ADDRESS))


LIBRARY_LOGGERS = ("ray", "optuna")  # their messages go to the experiment's driver.log


class _NoFollowFileHandler(logging.FileHandler):
    """A FileHandler that never opens its file through a symbolic link (files.open_append)."""

    def _open(self):  # noqa: ANN202 - logging's own signature
        return open_append(self.baseFilename)


def send_library_logs(path: Path) -> Callable[[], None]:
    """Send Ray's and Optuna's log messages to `path` instead of the terminal, where only
    gansearch's lines belong; returns the function that puts their handlers back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _NoFollowFileHandler(path, encoding="utf-8", delay=True)
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
    """Join the local Ray instance `ray_environment` started, or the cluster at --address (or
    RAY_ADDRESS), after checking that it answers; returns whether this call connected. Call it
    inside `ray_environment`, which holds the settings Ray and Tune read from the environment."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
    }
    target = cluster_address(address)
    if target is None:  # no instance to join (outside ray_environment): start one here
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise SearchError(f"cannot start a local Ray instance: {exc}") from exc
        return True
    value, source = target
    check_reachable_cluster(value, source)
    try:
        ray.init(address=address, **kwargs)  # None: Ray reads RAY_ADDRESS itself
    except Exception as exc:
        raise SearchError(_unreachable(value, source, first_line(exc))) from exc
    if ray.util.client.ray.is_connected():
        # Over Ray Client, Tune runs its controller (and our progress and MLflow callbacks) in
        # an actor on the cluster, where they cannot reach this terminal or tracking client.
        ray.shutdown()
        raise SearchError(
            f"{source} {value} is a Ray Client address: gansearch drives Ray Tune from its own "
            "process (progress, MLflow logging, results files), which Ray Client would move onto "
            "the cluster. Run the search on the head node instead: `ray job submit --address "
            "http://HEAD:8265 -- gansearch run --space FILE --address auto` (cluster/README.md)"
        )
    return True


def cluster_address(address: str | None) -> tuple[str, str] | None:
    """The address ray.init will join and where it comes from (`--address`, `RAY_ADDRESS`, or
    the local instance ray_environment started), or None when it would start a local Ray.
    Like Ray, RAY_ADDRESS counts when --address is not given or is `auto`."""
    named = os.environ.get(RAY_ADDRESS)
    if named and address in (None, "auto"):
        if named == os.environ.get(LOCAL_RAY_ADDRESS):
            return named, LOCAL_SOURCE
        return named, RAY_ADDRESS if address is None else "RAY_ADDRESS (read by --address auto)"
    return None if address is None else (address, "--address")


LOCAL_SOURCE = "local"  # cluster_address's source for the instance ray_environment started


def _unreachable(address: str, source: str, reason: str) -> str:
    """The message for a cluster that does not answer: where its address came from, and what
    to do about it."""
    if source == LOCAL_SOURCE:
        return f"the local Ray instance at {address} stopped answering: {reason}"
    remedy = (
        "leave out --address to run on this machine"
        if source == "--address"
        else "unset RAY_ADDRESS to run on this machine"
    )
    return (
        f"cannot reach the Ray cluster at {source} {address}: {reason}. Start one (see "
        f"cluster/README.md) or {remedy}"
    )


CONNECT_SECONDS = 5.0  # to open a TCP connection to a Ray cluster's address
ANSWER_SECONDS = 5.0  # for its GCS (a gRPC server) to answer the HTTP/2 handshake
# An HTTP/2 client's connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS,
# or its Ray Client server) answers with a SETTINGS frame of its own.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4  # the frame type, the fourth byte of a frame's 9-byte header


def check_reachable_cluster(address: str, source: str = "--address") -> None:
    """Fail within seconds when nothing listens at `address`, or something that is not Ray
    (ray.init would wait minutes, printing Ray's C++ warnings, and ignore Ctrl-C); `auto` and
    `local` name no host to check. `source` says where the address came from."""
    if address in ("auto", "local"):
        return
    if re.match(r"^https?://", address):
        raise UsageError(
            f"{source} {address} is a Ray dashboard address (for `ray job submit`); gansearch "
            "joins a cluster at its GCS address, HEAD:6379, or `auto` on the head node"
        )
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        raise UsageError(f"{source} {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        connection = socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_SECONDS)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SearchError(_unreachable(address, source, reason)) from None
    with connection:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return  # a TLS handshake comes first: the cleartext check below does not apply
        answer = _grpc_answer(connection)
    if answer is not None:
        raise SearchError(
            f"{source} {address} answers, but not as a Ray cluster: {answer}. Give the address "
            "of the head's GCS (HEAD:6379, as `ray start --head` prints it) or `auto`"
        )


def _grpc_answer(connection: socket.socket) -> str | None:
    """None when the server at the other end of `connection` answers as a gRPC server does;
    otherwise what it did instead."""
    received = b""
    try:
        connection.settimeout(ANSWER_SECONDS)
        connection.sendall(HTTP2_PREFACE)
        # A frame header is 9 bytes; an HTTP/1 server's answer (a status line, or a page from
        # a server that took the preface for HTTP/0.9) is text: read its first line.
        while len(received) < 9 or (_is_text(received) and b"\n" not in received[:200]):
            chunk = connection.recv(256)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        if not received:
            return f"it sent nothing within {ANSWER_SECONDS:g} s of an HTTP/2 (gRPC) handshake"
    except OSError as exc:
        return f"it broke off the connection ({exc.strerror or type(exc).__name__})"
    if _is_text(received):
        line = received.split(b"\n", 1)[0].decode(errors="replace").strip()[:80]
        return f"an HTTP/1 (or other text) server answered {line!r}"
    if len(received) >= 9 and received[3] == HTTP2_SETTINGS:
        return None
    if not received:
        return "it closed the connection without answering"
    return f"its answer is not HTTP/2 ({received[:16]!r})"


def _is_text(data: bytes) -> bool:
    """Whether `data` starts like a text protocol's answer (HTTP/1, an HTML page)."""
    return data[:1].isascii() and data[:1].isalpha() or data.startswith(b"<")


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
