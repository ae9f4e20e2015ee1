"""`gansearch ui` (gansearch.commands.ui): the MLflow UI over a search's store, loaded in headless
Chromium.

The store is written by the tracker directly (no Ray); the UI server runs as a subprocess and
every process the test starts is stopped by PID. The screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from gansearch.commands.ui import LOG_FILE
from gansearch.tracking import SearchTracker, TrackingStore, default_tracking_uri
from tests.support.processes import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
NAME = "ui-demo"
TRIALS = ("aaaa0001", "bbbb0002")
BEST = "gansearch.best_trial"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    message = "Chromium not found (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def _descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _browser(chromium: str, profile: Path, *args: str, timeout: float = 90) -> str:
    """Run headless Chromium once; its whole process tree is killed if it overruns."""
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            _kill(_descendants(process.pid) | {process.pid})
            process.wait()
    return out


def _wait_or_explain(ui: subprocess.Popen, errors: list[str], store_dir: Path) -> int:
    """The UI's exit code; if it has not exited within a minute, fail with its stderr, the
    stack of each of its threads (SIGABRT under -X faulthandler) and the server log's tail."""
    try:
        return ui.wait(timeout=60)
    except subprocess.TimeoutExpired:
        left = sorted(_descendants(ui.pid))
        ui.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            ui.wait(timeout=10)
        time.sleep(0.5)
        log = store_dir / LOG_FILE
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        pytest.fail(
            f"gansearch ui did not exit within 60 s of Ctrl-C; processes below it: {left}\n"
            f"stderr and stacks:\n{''.join(errors)}\nserver log tail:\n{tail}"
        )


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory whose embedded store holds one search with two trials."""
    root = tmp_path_factory.mktemp("ui")
    store = TrackingStore.open(default_tracking_uri(root), root)
    tracker = SearchTracker.start(store, NAME, root / NAME, {"trials": 2}, resume=False)
    for i, trial_id in enumerate(TRIALS):
        tracker.trial_started(trial_id, {"optim.lr_d": 0.1 * (i + 1)})
        for epoch in (1, 2):
            tracker.trial_result(trial_id, {"epoch": epoch, "valid_ll": 100.0 + epoch + i})
        tracker.trial_ended(trial_id, "finished", "")
    tracker.finish(interrupted=False, summary={"best_valid_ll": 103.0}, tags={BEST: TRIALS[1]})
    assert not tracker.errors
    return root


def test_ui_serves_the_search_and_chromium_renders_it(store_dir):
    chromium = _chromium()
    port = free_port()
    # -X faulthandler: a SIGABRT makes a UI that will not stop print every thread's stack.
    command = [sys.executable, "-X", "faulthandler", "-m", "gansearch.cli", "ui"]
    command += ["--results-dir", str(store_dir), "--experiment", NAME, "--port", str(port)]
    # Started as a shell starts `gansearch ui &` in a script: with SIGINT ignored. Ctrl-C (a
    # SIGINT to its PID) must stop it all the same, whatever this test's own parent ignores.
    ui = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []  # stderr is drained too, so a full pipe never blocks the UI
    threading.Thread(target=lambda: [lines.put(x) for x in ui.stdout], daemon=True).start()
    threading.Thread(target=lambda: errors.extend(ui.stderr), daemon=True).start()
    started: set[int] = set()
    try:
        address = None
        deadline = time.monotonic() + 180
        while address is None and time.monotonic() < deadline and ui.poll() is None:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=1)
                if line.startswith("MLflow UI: "):
                    address = line.split(": ", 1)[1].strip()
        assert address, f"no address printed; stderr: {''.join(errors)}"
        assert address.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        started = _descendants(ui.pid)
        assert started, "the UI command started no server process"
        base = f"http://127.0.0.1:{port}"

        # The REST API: one parent run and one child per trial, nested.
        experiment_id = address.split("/experiments/")[1].split("/")[0]
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            runs = json.loads(response.read())["runs"]
        names = sorted(r["info"]["run_name"] for r in runs)
        assert names == sorted([NAME, *TRIALS])
        parent = next(r for r in runs if r["info"]["run_name"] == NAME)  # what the search found
        assert {"key": "best_valid_ll", "value": 103.0} in [
            {"key": m["key"], "value": m["value"]} for m in parent["data"]["metrics"]
        ]
        assert {"key": BEST, "value": TRIALS[1]} in parent["data"]["tags"]

        # The rendered page (a React app: text exists only after its scripts ran).
        profile = store_dir / "chromium-profile"
        dom = _browser(
            chromium, profile / "dom", "--virtual-time-budget=20000", "--dump-dom", address
        )
        text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))
        assert NAME in text, text[-2000:]
        assert "3 matching runs" in text, text[-2000:]
        # A model-training experiment: MLflow 3 opens it in its training view ("Training runs"),
        # not its GenAI view, where the search's runs were "Evaluation runs".
        assert "Training runs" in text, text[-2000:]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "mlflow-ui.png"
        shot.unlink(missing_ok=True)
        _browser(
            chromium,
            profile / "shot",
            "--window-size=1400,900",
            "--virtual-time-budget=20000",
            f"--screenshot={shot}",
            address,
        )
        assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one

        # Ctrl-C stops the UI and the server with all its workers.
        ui.send_signal(signal.SIGINT)
        assert _wait_or_explain(ui, errors, store_dir) == 0
        time.sleep(0.5)
        assert not [pid for pid in started if _alive(pid)]
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
        _kill({pid for pid in started if _alive(pid)})


def test_ui_without_a_store_says_so(tmp_path, capsys):
    from gansearch.cli import main

    assert main(["ui", "--results-dir", str(tmp_path), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in err and "Traceback" not in err


def test_ui_refuses_a_port_in_use(store_dir, capsys):
    from gansearch.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["ui", "--results-dir", str(store_dir), "--port", str(port)]) == 2
    assert f"--port {port}: something already listens" in capsys.readouterr().err


def test_ui_finds_the_search_of_a_copied_experiment_by_its_search_id(tmp_path):
    """`cp -r runs/a runs/b`: b keeps a's search id, not its name; the UI opens a's runs."""
    from gansearch.commands.ui import _experiment_url, search_experiment_id
    from gansearch.experiment import META_FILE

    uri = default_tracking_uri(tmp_path)
    store = TrackingStore.open(uri, tmp_path)
    original = tmp_path / "a"
    original.mkdir()
    meta = {"budget": {}, "tracking_uri": None, "search_id": "5ea7c41d" * 4}
    (original / META_FILE).write_text(json.dumps(meta))
    tracker = SearchTracker.start(
        store, "a", original, {}, resume=False, search_id=meta["search_id"]
    )
    tracker.finish(interrupted=False)
    assert not tracker.errors
    shutil.copytree(original, tmp_path / "b")
    expected = store.client.get_experiment_by_name("a").experiment_id
    assert search_experiment_id(uri, tmp_path / "b") == expected
    assert search_experiment_id(uri, original) == expected
    assert _experiment_url("http://h", "b", expected) == f"http://h/#/experiments/{expected}/runs"
    # Another search of its own: neither its name nor its id is in the store.
    (tmp_path / "c").mkdir()
    other = {**meta, "search_id": "0" * 32}
    (tmp_path / "c" / META_FILE).write_text(json.dumps(other))
    assert search_experiment_id(uri, tmp_path / "c") is None
    assert store.client.get_experiment_by_name("b") is None  # looking created nothing
