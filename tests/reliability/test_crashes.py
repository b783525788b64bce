"""kill -9 during training and during label writes; an unwritable MODEL_DIR. Real server processes."""
import signal
import sqlite3
import threading
import time

import requests

from tests.conftest import REPORT
from tests.helpers import SENTIMENT, sentiment_events, task, version_of
from tests.integration.test_server_process import Server

# One slow fit (8,000 steps, no held-out probes): a run lasts seconds, long enough to kill it.
SLOW = {"EPOCHS": "8000", "EVAL_FRACTION": "0", "MIN_LABELS": "10"}


def _versions(server, project=1):
    return requests.get(f"{server.url}/versions", params={"project": project}, timeout=10).json()


def _wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError(what)


def _store_ids(model_dir, project=1):
    db = sqlite3.connect(str(model_dir / "projects" / str(project) / "labels.sqlite3"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in db.execute("SELECT annotation_id FROM labels")}
    finally:
        db.close()


def test_kill_during_training_keeps_the_last_good_version_and_resumes(tmp_path):
    models, log = tmp_path / "models", tmp_path / "server.log"
    server = Server(models, log, **SLOW)
    try:
        for event in sentiment_events(1, 12):
            requests.post(f"{server.url}/webhook", json=event, timeout=10)
        good = _wait(lambda: (b := _versions(server)) and not b["training"] and b["details"]
                     and b["details"][-1]["n_labels"] == 12 and b["current"], 120, "a first version")
        for event in sentiment_events(1, 8, start_id=100):
            requests.post(f"{server.url}/webhook", json=event, timeout=10)
        _wait(lambda: log.read_text().count("training run started") > log.read_text().count("training run ended"),
              30, "the second run to start")
        time.sleep(1.0)
        assert _versions(server)["training"]
        server.stop(signal.SIGKILL)  # mid-run
    finally:
        server.stop(signal.SIGKILL)

    restarted = Server(models, log, **SLOW)
    try:
        # the last good version serves at once; the lost run is resumed by itself
        resp = requests.post(f"{restarted.url}/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]},
                             timeout=60).json()
        assert version_of(resp["results"][0]["model_version"]) == good
        assert _store_ids(models) == set(range(1, 13)) | set(range(100, 108))
        body = _wait(lambda: (b := _versions(restarted)) and not b["training"] and b["details"][-1]["n_labels"] == 20
                     and b, 180, "the resumed run to publish a version with all 20 labels")
        assert body["current"] != good
        REPORT.append(f"kill -9 during training: {good} kept serving, store intact (20 labels), "
                      f"resumed run published {body['current']} on 20 labels")
    finally:
        restarted.stop(signal.SIGKILL)


def test_kill_during_label_writes_loses_no_acknowledged_label(tmp_path):
    models, log = tmp_path / "models", tmp_path / "server.log"
    server = Server(models, log, MIN_LABELS="10")
    acknowledged, stop = [], threading.Event()

    def annotate():
        session = requests.Session()
        for event in sentiment_events(1, 2000):
            if stop.is_set():
                return
            try:
                if session.post(f"{server.url}/webhook", json=event, timeout=5).status_code == 200:
                    acknowledged.append(event["annotation"]["id"])
            except requests.RequestException:
                return  # the server died under us: this one was not acknowledged

    sender = threading.Thread(target=annotate)
    sender.start()
    try:
        _wait(lambda: len(acknowledged) >= 150, 60, "150 acknowledged webhooks")
        server.stop(signal.SIGKILL)  # while labels are being written
    finally:
        stop.set()
        sender.join(30)
        server.stop(signal.SIGKILL)
    stored = _store_ids(models)
    assert set(acknowledged) <= stored, f"lost {len(set(acknowledged) - stored)} acknowledged labels"

    restarted = Server(models, log, MIN_LABELS="10")
    try:
        body = _wait(lambda: (b := _versions(restarted)) and not b["training"] and b["details"]
                     and b["details"][-1]["n_labels"] == len(stored) and b, 180, "a version on every stored label")
        REPORT.append(f"kill -9 during label writes: {len(acknowledged)} acknowledged, {len(stored)} stored, "
                      f"0 lost, integrity ok; resumed run published {body['current']} on {len(stored)} labels")
    finally:
        restarted.stop(signal.SIGKILL)


def test_unwritable_model_dir_is_reported_and_serving_continues(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where MODEL_DIR's parent should be: nothing can be created below it")
    server = Server(blocker / "models", tmp_path / "server.log", MIN_LABELS="10")
    try:
        health = requests.get(f"{server.url}/health", timeout=10).json()
        assert health["status"] == "UP" and any("MODEL_DIR is not writable" in p for p in health["problems"])
        assert "MODEL_DIR is not writable" in (tmp_path / "server.log").read_text()
        assert requests.post(f"{server.url}/setup", json={"project": "1.1", "schema": SENTIMENT}, timeout=30).status_code == 200
        tasks = [task(i, f"text {i}") for i in range(15)]
        resp = requests.post(f"{server.url}/predict", json={"project": "1.1", "tasks": tasks, "label_config": SENTIMENT},
                             timeout=60)
        assert resp.status_code == 200 and all(r["score"] is not None for r in resp.json()["results"])
        hook = requests.post(f"{server.url}/webhook", json=sentiment_events(1, 1)[0], timeout=10)
        assert hook.status_code == 503 and "is MODEL_DIR writable?" in hook.json()["error"]
        assert str(tmp_path) not in hook.text  # the reason, not the server's paths
        REPORT.append("unwritable MODEL_DIR: /health lists the problem, /setup and /predict 200, /webhook 503 with the reason")
    finally:
        server.stop(signal.SIGKILL)
