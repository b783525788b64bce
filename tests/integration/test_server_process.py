"""The real server process, started as `make run` starts it, over real HTTP."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import SENTIMENT, sentiment_events, task, version_of
from tests.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


class Server(ServerProcess):
    """The backend as `make run` serves it: `python _wsgi.py --host 127.0.0.1 --port N`."""

    def __init__(self, model_dir: Path, log: Path, port: int = 0, host: str = "127.0.0.1", preexec_fn=None, **env):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "MODEL_DIR": str(model_dir), "MIN_LABELS": "10", **env}
        super().__init__([sys.executable, "_wsgi.py", "--host", host, "--port", str(self.port)], ROOT,
                         full_env, log, f"{self.url}/health", timeout=120, preexec_fn=preexec_fn)

    def worker_pid(self) -> int:
        """gunicorn's worker process (the arbiter's child that serves)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])


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
    assert version_of(setup.json()["model_version"]) == "v0000"
    tasks = [task(i, f"review {i}: {'great' if i % 2 else 'awful'}") for i in range(50)]
    before = requests.post(f"{server.url}/predict", json={"project": "1.1795516926", "label_config": SENTIMENT, "tasks": tasks}, timeout=100).json()
    assert len(before["results"]) == 50 and all(version_of(r["model_version"]) == "v0000" for r in before["results"])

    for event in sentiment_events(1, 30):  # within Label Studio's 1 s; the latency itself: benchmarks/webhook_to_version.py
        assert requests.post(f"{server.url}/webhook", json=event, timeout=1).status_code == 200
    body = _wait_version(server.url, 30)
    assert len(body["versions"]) <= 2
    current = body["current"]
    after = requests.post(f"{server.url}/predict", json={"project": "1.1795516926", "label_config": SENTIMENT, "tasks": tasks}, timeout=100).json()
    assert {version_of(r["model_version"]) for r in after["results"]} == {current}

    # kill -9 and start again: no /setup, and Label Studio's /predict still works on the same version
    server.stop(signal.SIGKILL)
    again = server_factory()
    resp = requests.post(f"{again.url}/predict", json={"project": "1.1795516926", "tasks": tasks[:3]}, timeout=100)
    assert resp.status_code == 200 and {version_of(r["model_version"]) for r in resp.json()["results"]} == {current}
    assert requests.get(f"{again.url}/versions", params={"project": 1}, timeout=5).json()["current"] == current


def test_bad_setting_stops_start_up_with_a_clear_message(tmp_path):
    proc = subprocess.run([sys.executable, "_wsgi.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HEURISTIC": "bold", "MODEL_DIR": str(tmp_path)}, timeout=120)
    assert proc.returncode != 0 and "HEURISTIC='bold' is not one of" in proc.stderr


def test_sigterm_lets_the_running_run_finish_and_exits_0(tmp_path):
    """Was: SIGTERM ended the worker with SIGABRT ("terminate called without an active exception")."""
    log = tmp_path / "server.log"
    # one slow fit (no quality probes): about 6 s, well inside the 20 s grace period
    server = Server(tmp_path / "models", log, EPOCHS="6000", EVAL_FRACTION="0", MIN_LABELS="10")
    for event in sentiment_events(1, 10):
        requests.post(f"{server.url}/webhook", json=event, timeout=5)
    time.sleep(1.5)  # runs before the 10th label skip at once; the one on all 10 takes ~6 s
    assert requests.get(f"{server.url}/versions", params={"project": 1}, timeout=5).json()["training"]
    os.killpg(server.proc.pid, signal.SIGTERM)  # as a supervisor or `docker stop` would
    assert server.proc.wait(60) == 0
    text = log.read_text()
    assert "terminate called" not in text and "SIGABRT" not in text
    assert "published v0001" in text and list((tmp_path / "models" / "projects" / "1" / "versions").iterdir())
    server.stop()


def test_a_worker_that_cannot_boot_stops_gunicorn(tmp_path):
    """`gunicorn _wsgi:app` with a bad setting stops with gunicorn's boot error (3), instead of
    restarting the worker forever."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.run([str(gunicorn), "-b", f"127.0.0.1:{free_port()}", "_wsgi:app"], cwd=ROOT, timeout=120,
                          capture_output=True, text=True,
                          env={**os.environ, "HEURISTIC": "bold", "MODEL_DIR": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "HEURISTIC='bold' is not one of" in proc.stderr


def test_start_up_line_says_what_is_on_and_never_the_token(tmp_path):
    secret = "s3cr3t-token-0123456789abcdef"
    server = Server(tmp_path / "models", tmp_path / "server.log", LABEL_STUDIO_URL=f"http://127.0.0.1:{free_port()}",
                    LABEL_STUDIO_API_KEY=secret)
    server.stop()
    text = (tmp_path / "server.log").read_text()
    assert "Label Studio sync/push: on (http://127.0.0.1:" in text and "sampling switch on" in text
    assert secret not in text
