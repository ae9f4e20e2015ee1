"""`gansearch ui`: the MLflow UI over a search's tracking store, on 127.0.0.1.

Starts `mlflow server` (one worker, no job runner: ready in about 20 s instead of 50) in its own
process group, waits until it answers, prints the address, and stops the whole group on Ctrl-C or
SIGTERM. SIGINT is handled even when the UI was started with it ignored (a shell script's
`gansearch ui &`), as the search driver handles it: a SIGINT sent to it always stops it.
When the runs are on a tracking server already, it prints that server's address.

With --experiment naming an experiment directory, the page it opens is that search's MLflow
experiment, found as `gansearch report` finds it (gansearch.tracking.lookup.find_search: by the
search id stored in the directory, so a copied or renamed directory finds its search too).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from gansearch.errors import GansearchError, UsageError

HOST = "127.0.0.1"
LOG_FILE = "mlflow-ui.log"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch ui`."""
    parser.add_argument("--experiment", help="open this search's MLflow experiment")
    parser.add_argument(
        "--results-dir", default="runs", help="where the searches are (default: runs)"
    )
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store to show (default: the search's, MLFLOW_TRACKING_URI, or "
        "<results-dir>/mlflow.db)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=180.0, help="seconds to wait for the server"
    )


def port_is_free(port: int) -> bool:
    """Whether nothing listens on HOST:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def wait_until_ready(process: subprocess.Popen, base: str, timeout: float, log: Path) -> None:
    """Poll the server's /health until it answers; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            raise GansearchError(
                f"the MLflow server exited with code {process.returncode} before it was ready; "
                f"last lines of {log}:\n  " + "\n  ".join(tail)
            )
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise GansearchError(f"the MLflow server did not answer at {base} within {timeout:g} s")


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop the server and every process it started (its own process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def search_experiment_id(uri: str, experiment_dir: Path) -> str | None:
    """The id of the MLflow experiment that holds the search in `experiment_dir` (its parent
    run found by find_search, as `gansearch report` finds it), or None."""
    from gansearch.experiment import stored_search_id
    from gansearch.tracking import TrackingStore, find_search

    store = TrackingStore.open(uri, experiment_dir.parent)
    found = find_search(store, experiment_dir, stored_search_id(experiment_dir))
    return None if found is None else found.experiment_id


def _experiment_url(base: str, name: str | None, experiment_id: str | None = None) -> str:
    """The page to open: the experiment `experiment_id`, else the one named `name`, else the
    list of experiments."""
    if experiment_id is not None:
        return f"{base}/#/experiments/{experiment_id}/runs"
    if name is None:
        return base
    query = urllib.parse.urlencode({"experiment_name": name})
    try:
        found = _get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError(
                f"--experiment {name}: no such MLflow experiment in this store"
            ) from None
        raise
    return f"{base}/#/experiments/{found['experiment']['experiment_id']}/runs"


def run(args: argparse.Namespace) -> int:
    """Start the MLflow UI and keep it running until interrupted."""
    from gansearch.experiment import META_FILE, experiment_path, stored_tracking_uri
    from gansearch.tracking import DB_FILE, is_remote, resolve_tracking_uri

    results_dir = Path(args.results_dir).expanduser().resolve()
    stored, experiment_dir = None, None
    if args.experiment is not None:
        path = experiment_path(results_dir, args.experiment, "--experiment")
        if (path / META_FILE).exists():  # the search's own store; else the MLflow name alone
            stored, experiment_dir = stored_tracking_uri(path), path
    uri = resolve_tracking_uri(args.tracking_uri, results_dir, stored)
    if is_remote(uri):
        print(f"the runs are on the MLflow tracking server {uri}: open it in a browser")
        return 0
    if urllib.parse.urlparse(uri).scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.exists():
            raise UsageError(
                f"no MLflow store at {path}: run a search first (gansearch run), or give "
                f"--results-dir / --tracking-uri (looked for {DB_FILE} in {results_dir})"
            )
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if not port_is_free(args.port):
        raise UsageError(f"--port {args.port}: something already listens on {HOST}:{args.port}")
    experiment_id = None
    if experiment_dir is not None:
        experiment_id = search_experiment_id(uri, experiment_dir)

    log = results_dir / LOG_FILE
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--artifacts-destination",
        str(results_dir / "mlartifacts"),
        "--host",
        HOST,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    base = f"http://{HOST}:{args.port}"
    print(f"starting the MLflow UI over {uri} (log: {log}) ...", file=sys.stderr, flush=True)
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in stops}
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=results_dir,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    try:
        for signum in stops:
            signal.signal(signum, _raise_interrupt)
        wait_until_ready(process, base, args.start_timeout, log)
        print(f"MLflow UI: {_experiment_url(base, args.experiment, experiment_id)}", flush=True)
        print("press Ctrl-C to stop it", file=sys.stderr, flush=True)
        code = process.wait()
        raise GansearchError(f"the MLflow server stopped (exit code {code}); see {log}")
    except KeyboardInterrupt:
        print("stopping the MLflow UI", file=sys.stderr, flush=True)
        return 0
    finally:
        stop(process)
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
