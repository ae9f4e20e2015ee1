"""Scale-out on one machine: a simulated multi-node Ray cluster, a lost node, and an MLflow
tracking server with a PostgreSQL backend store; validation of every file in cluster/; and what
gansearch.search.cluster refuses before any trial starts (resources no node has, a cluster that
cannot be reached, an address where something other than Ray answers), and a search whose
process group gets SIGTERM (as `timeout` sends it) stopping as one whose driver gets it.

The simulated cluster is `ray.cluster_utils.Cluster`: a head with no CPUs (so no trial runs
there) and two 1-CPU worker nodes, all processes of this machine. `add_node`/`remove_node` must be
called from the main thread, so the gansearch driver runs as a subprocess with --address.
PostgreSQL is Debian's (`apt-get install postgresql`), started in a temporary directory on
127.0.0.1; outside CI a missing PostgreSQL skips with the reason, under CI=true it fails.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from gansearch.cli import main
from gansearch.errors import SearchError
from gansearch.experiment import LOCK_FILE
from gansearch.search import cluster
from gansearch.search.cluster import check_reachable_cluster
from tests.support.processes import free_port, processes_with_env
from tests.support.search_process import start_search, still_alive

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
SMALL = REPO / "tests" / "fixtures" / "small_space.yaml"
EPOCHS = 16


def _require(what: str) -> None:
    """Outside CI a missing tool skips (with the reason shown); in CI it fails."""
    message = f"{what}; CI installs it (see .ci/run)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- PostgreSQL + MLflow


def _pg_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (initdb, pg_ctl), newest version first."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


class Postgres:
    """A private PostgreSQL server in a temporary directory on 127.0.0.1 (run as the `postgres`
    user when this process is root: initdb refuses to run as root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="gs-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "gansearch"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool} failed: {done.stderr or done.stdout}"

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "mlflow")

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/mlflow"

    def query(self, sql: str) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="mlflow"
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_env() -> Iterator[dict[str, str]]:
    """A private RAY_TMPDIR (so every process this module starts can be found and stopped) and
    no token authentication, set for this process (the simulated cluster) and its children."""
    ray_tmp = tempfile.mkdtemp(prefix="gs-c-", dir="/tmp")  # short: Ray's socket paths
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
    os.environ.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled")
    try:
        yield dict(os.environ)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _kill(processes_with_env(f"RAY_TMPDIR={ray_tmp}"))
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking_server(ray_env) -> Iterator[tuple[str, Postgres]]:
    """`mlflow server` on 127.0.0.1 over a PostgreSQL backend store and a shared artifact folder."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        _require("PostgreSQL server binaries not found (apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401  (MLflow's PostgreSQL driver)
    except ImportError:
        _require("psycopg2 not installed (pip install -e '.[dev]')")
    postgres = Postgres(bin_dir)
    server = None
    try:
        postgres.start()
        port = free_port()
        artifacts = postgres.root / "artifacts"
        command = ["bash", str(CLUSTER / "mlflow-server.sh")]  # the script users run
        log = open(postgres.root / "mlflow.log", "wb")  # noqa: SIM115 (closed below)
        env = {
            **ray_env,
            "MLFLOW_BACKEND_STORE_URI": postgres.uri,
            "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
            "MLFLOW_PORT": str(port),
            "MLFLOW_WORKERS": "1",
            "PYTHON": sys.executable,
        }
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (postgres.root / "mlflow.log").read_text()[-3000:]
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            assert time.monotonic() < deadline, "the MLflow server did not start in 120 s"
            time.sleep(0.5)
        yield uri, postgres
    finally:
        if server is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()
        postgres.stop()


# --------------------------------------------------------------------------- the cluster search


def _results(experiment_dir: Path) -> dict[str, list[dict]]:
    """Every trial's reported results so far (Tune's result.json), by trial id."""
    rows: dict[str, list[dict]] = {}
    for path in experiment_dir.glob("*/result.json"):
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    rows.setdefault(row["trial_id"], []).append(row)
    return rows


@pytest.fixture(scope="module")
def cluster_search(ray_env, tracking_server, tmp_path_factory) -> dict:
    """A 4-trial search on a head (0 CPUs) and two 1-CPU workers; worker B is removed while one
    of its trials runs (after a checkpoint). Returns what the tests check."""
    from ray.cluster_utils import Cluster

    uri, postgres = tracking_server
    tmp = tmp_path_factory.mktemp("cluster")
    space = SMALL.read_text()
    space = space.replace(
        "scheduler: {type: asha, grace_period: 1, reduction_factor: 2}", "scheduler: {type: none}"
    )  # fmt: skip  (every trial runs every epoch)
    space = space.replace("discriminator: {units: [32, 32]", "discriminator: {units: [240, 240]")
    # Every trial must train all its epochs: keep them clear of divergence (a diverged trial
    # ends early by design, which is not what this test is about).
    space = space.replace("pieces: 2, init_range: 0.1}", "pieces: 2, init_range: 0.005}")
    space = space.replace("low: 0.01, high: 0.5}", "low: 0.01, high: 0.05}")
    assert "init_range: 0.005" in space and "high: 0.05}" in space
    space = space.replace("max_failures: 1", "max_failures: 2")
    (tmp / "space.yaml").write_text(space)
    started = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    driver = None
    try:
        worker_a = cluster.add_node(num_cpus=1)
        worker_b = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cluster_up = time.monotonic() - started
        command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(tmp / "space.yaml")]
        command += ["--address", cluster.address, "--results-dir", str(tmp / "runs")]
        command += ["--max-epochs", str(EPOCHS), "--report-top", "0", "--tracking-uri", uri]
        command += ["--progress-interval", "5"]
        driver = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ray_env
        )
        experiment_dir = tmp / "runs" / "small"
        victim, removed_at = None, None
        deadline = time.monotonic() + 180
        while victim is None and driver.poll() is None and time.monotonic() < deadline:
            for trial_id, rows in _results(experiment_dir).items():
                last = rows[-1]
                if last.get("node") == worker_b.node_id and 3 <= last["epoch"] <= EPOCHS - 4:
                    victim, removed_at = trial_id, int(last["epoch"])
                    cluster.remove_node(worker_b, allow_graceful=False)
                    break
            time.sleep(0.1)
        out, err = driver.communicate(timeout=240)
        return {
            "returncode": driver.returncode,
            "out": out,
            "err": err,
            "experiment_dir": experiment_dir,
            "workers": (worker_a.node_id, worker_b.node_id),
            "victim": victim,
            "removed_at": removed_at,
            "results": _results(experiment_dir),
            "uri": uri,
            "postgres": postgres,
            "cluster_up": cluster_up,
            "seconds": time.monotonic() - started,
        }
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        cluster.shutdown()


@pytest.mark.slow
def test_cluster_search_completes_and_every_trial_finishes(cluster_search):
    assert cluster_search["returncode"] == 0, cluster_search["err"][-3000:]
    table = pd.read_parquet(cluster_search["experiment_dir"] / "results.parquet")
    assert len(table) == 4 and table["trial_id"].is_unique
    assert set(table["status"]) == {"finished"}, table[["trial_id", "status", "reason"]]
    assert (table["epochs"] == EPOCHS).all()


@pytest.mark.slow
def test_trials_are_placed_on_both_worker_nodes_and_never_on_the_head(cluster_search):
    table = pd.read_parquet(cluster_search["experiment_dir"] / "results.parquet")
    used = {node for nodes in table["nodes"] for node in nodes.split(",") if node}
    assert used == set(cluster_search["workers"])  # the 0-CPU head ran nothing


@pytest.mark.slow
def test_trial_on_a_removed_node_resumes_from_its_checkpoint_on_the_survivor(cluster_search):
    victim = cluster_search["victim"]
    assert victim is not None, "no trial ran on worker B long enough to remove it"
    worker_a, worker_b = cluster_search["workers"]
    rows = cluster_search["results"][victim]
    nodes = [row["node"] for row in rows]
    assert nodes[0] == worker_b and nodes[-1] == worker_a
    first_on_a = next(row["epoch"] for row in rows if row["node"] == worker_a)
    # Resumed from a checkpoint written on B (one is written every epoch), not from scratch,
    # and no epoch was skipped.
    last_on_b = max(row["epoch"] for row in rows if row["node"] == worker_b)
    assert 1 < first_on_a <= last_on_b + 1, rows
    assert {row["epoch"] for row in rows} == set(range(1, EPOCHS + 1))
    assert rows[-1]["epoch"] == EPOCHS
    table = pd.read_parquet(cluster_search["experiment_dir"] / "results.parquet")
    assert table.set_index("trial_id").loc[victim, "nodes"] == f"{worker_b},{worker_a}"
    assert "crashed; retrying from its checkpoint" in cluster_search["err"]


@pytest.mark.slow
def test_postgres_tracking_server_holds_every_trial_with_its_full_history(cluster_search):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cluster_search["uri"])
    experiment = client.get_experiment_by_name("small")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("gansearch.role") == "trial"]
    table = pd.read_parquet(cluster_search["experiment_dir"] / "results.parquet")
    by_trial = {r.data.tags["gansearch.trial_id"]: r for r in children}
    assert sorted(by_trial) == sorted(table["trial_id"])
    for trial_id, run in by_trial.items():
        history = client.get_metric_history(run.info.run_id, "valid_ll")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), trial_id
        assert run.data.tags["gansearch.status"] == "finished"
    # The runs and their metrics live in PostgreSQL, not in a file beside the results.
    postgres = cluster_search["postgres"]
    assert postgres.query("select count(*) from runs")[0][0] == len(children) + 1
    logged = postgres.query("select count(*) from metrics where key = 'valid_ll'")[0][0]
    assert logged == 4 * EPOCHS
    assert not (cluster_search["experiment_dir"].parent / "mlflow.db").exists()


# --------------------------------------------------------------------------- the shipped files


def _ray_validate(config: dict) -> None:
    """Ray's own cluster-config validation: defaults filled in, then ray-schema.json."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_every_yaml_file_in_cluster_parses():
    files = sorted(CLUSTER.rglob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents and all(isinstance(d, dict) for d in documents), path


def test_cluster_launcher_config_passes_rays_schema_and_installs_gansearch():
    import jsonschema
    import ray

    config = yaml.safe_load((CLUSTER / "gpu-cluster.yaml").read_text())
    _ray_validate(config)
    with pytest.raises(jsonschema.ValidationError):  # the validator is live, not a no-op
        _ray_validate({**config, "max_wrokers": 3})
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}  # no trials on the head
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert len(workers) == 1 and workers[0]["max_workers"] > workers[0]["min_workers"]
    assert workers[0]["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance
    setup = " ".join(config["setup_commands"])
    assert f"ray[default,tune]=={ray.__version__}" in setup and "gansearch[cluster]" in setup
    assert "/shared" in setup and "gansearch data mnist --data-dir /shared/data" in " ".join(
        config["head_setup_commands"]
    )


def test_kuberay_rayjob_translates_to_a_valid_ray_cluster_running_a_search():
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    ray_cr = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "spec": spec["rayClusterSpec"]}
    ray_cr["metadata"] = {"name": job["metadata"]["name"], "namespace": "default"}
    config = _derive_autoscaling_config_from_ray_cr(ray_cr)  # what the KubeRay autoscaler does
    _ray_validate(config)
    head, gpu = config["available_node_types"]["headgroup"], config["available_node_types"]["gpu"]
    assert head["resources"]["CPU"] == 0
    assert gpu["resources"]["GPU"] == 1 and gpu["resources"]["CPU"] == 4
    assert gpu["max_workers"] == 16 and gpu["min_workers"] == 0
    entry = spec["entrypoint"].split()
    assert entry[:2] == ["gansearch", "run"] and "--address" in entry
    for flag, value in (("--data-dir", "/shared/data"), ("--results-dir", "/shared/runs")):
        assert entry[entry.index(flag) + 1] == value
    # The shared volume is mounted at the same path in every pod.
    templates = [spec["rayClusterSpec"]["headGroupSpec"]["template"]]
    templates += [g["template"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]]
    for template in templates:
        mounts = {m["mountPath"] for c in template["spec"]["containers"] for m in c["volumeMounts"]}
        assert "/shared" in mounts
    claim = yaml.safe_load((CLUSTER / "kuberay" / "shared-storage.yaml").read_text())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_shell_scripts_parse():
    scripts = sorted(CLUSTER.rglob("*.sh"))
    assert scripts
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script}: {done.stderr}"


def test_mlflow_server_script_refuses_to_start_without_a_backend_store():
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_BACKEND_STORE_URI"}
    done = subprocess.run(
        ["bash", str(CLUSTER / "mlflow-server.sh")], capture_output=True, text=True, env=env
    )
    assert done.returncode != 0 and "set MLFLOW_BACKEND_STORE_URI" in done.stderr


# --------------------------------------------------------------------------- before any trial


@pytest.mark.slow
def test_resources_no_node_has_are_reported_before_trials(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text(SMALL.read_text().replace("resources: {cpus: 1,", "resources: {cpus: 512,"))
    assert main(["run", "--space", str(path), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "resources: a trial asks for 512.0 CPU and 0.0 GPU, but no node has that much" in err
    assert not list(tmp_path.glob("small/train_trial_*"))


@pytest.mark.slow
def test_unreachable_cluster_is_reported_before_trials(tmp_path, capsys):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
    assert main([*args, "--address", "ray://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at --address ray://127.0.0.1:1" in err
    assert "Traceback" not in err
    assert os.environ.get("RAY_ADDRESS") is None


def test_an_unreachable_cluster_address_fails_within_seconds(tmp_path, capsys):
    started = time.monotonic()
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path), "--address"]
    assert main([*args, "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - started < 60
    assert "cannot reach the Ray cluster at --address 127.0.0.1:1" in err and "Traceback" not in err
    assert main([*args, "nonsense"]) == 2
    assert "expected auto, HOST:PORT or ray://HOST:PORT" in capsys.readouterr().err


@contextlib.contextmanager
def _server(answer: bytes | None) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that sends `answer` to every connection (None: nothing, ever);
    yields its address."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                held.append(connection)
                if answer is not None:
                    connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_an_address_where_a_grpc_server_answers_passes_the_check():
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # an empty HTTP/2 SETTINGS frame
    with _server(settings) as address:
        check_reachable_cluster(address)  # no error
    with _server(b"SSH-2.0-OpenSSH_9.6\r\n") as address, pytest.raises(SearchError) as caught:
        check_reachable_cluster(address)
    assert "answers, but not as a Ray cluster" in str(caught.value)


def test_ctrl_c_interrupts_the_wait_for_an_address_that_says_nothing():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _server(None) as address:
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                check_reachable_cluster(address)
            assert time.monotonic() - started < 3  # not the 5 s the check would wait
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_silent_address_is_refused_within_seconds(monkeypatch):
    monkeypatch.setattr(cluster, "ANSWER_SECONDS", 1.0)  # 5 s by default
    with _server(None) as address, pytest.raises(SearchError) as caught:
        started = time.monotonic()
        check_reachable_cluster(address)
    assert time.monotonic() - started < 3
    assert f"--address {address} answers, but not as a Ray cluster: it sent nothing" in str(
        caught.value
    )


@pytest.mark.slow
def test_an_http_server_address_and_an_unreachable_ray_address_are_refused_within_seconds(
    tmp_path, capsys, monkeypatch
):
    args = ["run", "--space", str(SMALL), "--results-dir", str(tmp_path)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        started = time.monotonic()
        assert main([*args, "--address", address]) == 2
        seconds = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert seconds < 15, seconds
    assert f"--address {address} answers, but not as a Ray cluster: an HTTP/1" in err, err
    assert "Traceback" not in err

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    started = time.monotonic()
    assert main(args) == 2
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert seconds < 15, seconds
    assert "cannot reach the Ray cluster at RAY_ADDRESS 127.0.0.1:1: Connection refused" in err
    assert "unset RAY_ADDRESS" in err
    assert len(err.strip().splitlines()) <= 2, err  # not a page of Ray's C++ warnings
    assert not list(tmp_path.glob("small/train_trial_*"))


@pytest.mark.slow
def test_sigterm_to_the_process_group_stops_the_search_as_sigterm_to_the_driver_does(tmp_path):
    driver, results = start_search(tmp_path, new_session=True)  # its group: the driver's PID
    spawned = psutil.Process(driver.pid).children(recursive=True)
    assert spawned, "the search started no process (no local Ray?)"
    # Ray runs in a session of its own: the group's signal reaches the driver alone.
    assert all(os.getpgid(p.pid) != driver.pid for p in spawned if p.is_running())
    os.killpg(driver.pid, signal.SIGTERM)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 143, err
    assert "Traceback" not in err and "continue it with: " in err
    experiment = results / "small"
    assert len(pd.read_parquet(experiment / "results.parquet")) >= 2
    assert not (experiment / LOCK_FILE).exists()
    assert not still_alive(spawned), "processes of the search outlived it"

    space = tmp_path / "small.yaml"
    command = [sys.executable, "-m", "gansearch.cli", "run", "--space", str(space), "--resume"]
    command += ["--results-dir", str(results), "--report-top", "0", "--progress-interval", "100"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_parquet(experiment / "results.parquet")
    assert len(table) == 4 and table["status"].isin(["finished", "stopped early"]).all()


def test_a_local_ray_that_cannot_start_is_reported_and_leaves_the_environment_as_it_was(
    monkeypatch,
):
    from gansearch.search import local_ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(local_ray, "KEEPER", "import sys; sys.exit('no Ray here: exit 3')")
    before = dict(os.environ)
    with pytest.raises(SearchError, match="cannot start a local Ray instance: no Ray here"):
        with cluster.ray_environment(local=True):
            pass
    assert dict(os.environ) == before


def test_the_driver_log_is_never_written_through_a_link(tmp_path: Path) -> None:
    import logging

    from gansearch.errors import UsageError
    from gansearch.search.cluster import send_library_logs

    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "driver.log").symlink_to(target)
    restore = send_library_logs(tmp_path / "driver.log")
    try:
        with pytest.raises(UsageError, match="driver.log is a symbolic link"):
            logging.getLogger("ray").warning("a message for the driver log")
    finally:
        restore()
    assert target.read_text() == "keep"
