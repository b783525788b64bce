"""The real server process, started as `make run` starts it, over real HTTP."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import SENTIMENT, sentiment_events, task
from tests.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


class Server(ServerProcess):
    """The backend as `make run` serves it: `python _wsgi.py --host 127.0.0.1 --port N`."""

    def __init__(self, model_dir: Path, log: Path, port: int = 0, **env):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "MODEL_DIR": str(model_dir), "MIN_LABELS": "10", **env}
        super().__init__([sys.executable, "_wsgi.py", "--host", "127.0.0.1", "--port", str(self.port)], ROOT,
                         full_env, log, f"{self.url}/health", timeout=120)


@pytest.fixture
def server_factory(tmp_path):
    started = []

    def start(**env):
        server = Server(tmp_path / "models", tmp_path / "server.log", **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def _wait_version(url: str, n_labels: int, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = requests.get(f"{url}/versions", params={"project": 1}, timeout=5).json()
        if not body["training"] and body["details"] and body["details"][-1]["n_labels"] == n_labels:
            return body
        time.sleep(0.2)
    raise TimeoutError(f"no version with {n_labels} labels: {body}")


def test_served_process_learns_and_survives_kill(server_factory):
    server = server_factory()
    assert requests.get(f"{server.url}/health", timeout=5).json()["status"] == "UP"
    setup = requests.post(f"{server.url}/setup", json={"project": "1.1795516926", "schema": SENTIMENT,
                                                        "hostname": "http://localhost:8080", "access_token": "x"}, timeout=30)
    assert setup.json() == {"model_version": "v0000"}
    tasks = [task(i, f"review {i}: {'great' if i % 2 else 'awful'}") for i in range(50)]
    before = requests.post(f"{server.url}/predict", json={"project": "1.1795516926", "label_config": SENTIMENT, "tasks": tasks}, timeout=100).json()
    assert len(before["results"]) == 50 and all(r["model_version"] == "v0000" for r in before["results"])

    timings = []
    for event in sentiment_events(1, 30):
        t0 = time.perf_counter()
        assert requests.post(f"{server.url}/webhook", json=event, timeout=1).status_code == 200
        timings.append(time.perf_counter() - t0)
    assert max(timings) < 0.2
    body = _wait_version(server.url, 30)
    assert len(body["versions"]) <= 2
    current = body["current"]
    after = requests.post(f"{server.url}/predict", json={"project": "1.1795516926", "label_config": SENTIMENT, "tasks": tasks}, timeout=100).json()
    assert {r["model_version"] for r in after["results"]} == {current}

    # kill -9 and start again: no /setup, and Label Studio's /predict still works on the same version
    server.stop(signal.SIGKILL)
    again = server_factory()
    resp = requests.post(f"{again.url}/predict", json={"project": "1.1795516926", "tasks": tasks[:3]}, timeout=100)
    assert resp.status_code == 200 and {r["model_version"] for r in resp.json()["results"]} == {current}
    assert requests.get(f"{again.url}/versions", params={"project": 1}, timeout=5).json()["current"] == current


def test_bad_setting_stops_start_up_with_a_clear_message(tmp_path):
    proc = subprocess.run([sys.executable, "_wsgi.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HEURISTIC": "bold", "MODEL_DIR": str(tmp_path)}, timeout=120)
    assert proc.returncode != 0 and "HEURISTIC='bold' is not one of" in proc.stderr


def test_sigterm_lets_the_running_run_finish_and_exits_0(tmp_path):
    """Was: SIGTERM ended the worker with SIGABRT ("terminate called without an active exception")."""
    log = tmp_path / "server.log"
    server = Server(tmp_path / "models", log, EPOCHS="3000", MIN_LABELS="10")
    for event in sentiment_events(1, 10):
        requests.post(f"{server.url}/webhook", json=event, timeout=5)
    time.sleep(1.5)  # runs before the 10th label skip at once; the one on all 10 takes ~15 s
    assert requests.get(f"{server.url}/versions", params={"project": 1}, timeout=5).json()["training"]
    os.killpg(server.proc.pid, signal.SIGTERM)  # as a supervisor or `docker stop` would
    assert server.proc.wait(60) == 0
    text = log.read_text()
    assert "terminate called" not in text and "SIGABRT" not in text
    assert "published v0001" in text and list((tmp_path / "models" / "projects" / "1" / "versions").iterdir())
    server.stop()
