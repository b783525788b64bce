"""Storm: 200 annotation webhooks in about 10 s across 3 projects (3, 20 and 150 classes) while 4
clients call /predict, against the real server process over HTTP.

Expect: no 5xx, every sent label stored, one training run at a time per project, and each
project's final version trained on all its labels.
"""
import random
import re
import threading
import time
from collections import defaultdict

import numpy as np
import requests

from baal_backend.data import load_clinc
from tests.conftest import REPORT
from tests.helpers import label_config
from tests.integration.test_server_process import Server

N_WEBHOOKS = 200
SECONDS = 10.0
PREDICT_CLIENTS = 4


def _projects():
    data = load_clinc()
    intents = sorted(set(data.labels))
    by_intent = defaultdict(list)
    for text, label in zip(data.texts, data.labels):
        by_intent[label].append(text)
    rng = random.Random(0)
    projects = {}
    for pid, n in ((1, 3), (2, 20), (3, 150)):
        classes = rng.sample(intents, n)
        projects[pid] = {"classes": classes, "config": label_config(classes),
                         "pool": [(t, c) for c in classes for t in by_intent[c]]}
    return projects


def _pct(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def test_storm_of_webhooks_while_predicting(tmp_path):
    server = Server(tmp_path / "models", tmp_path / "server.log", MIN_LABELS="10")
    try:
        projects = _projects()
        for pid, p in projects.items():
            assert requests.post(f"{server.url}/setup", json={"project": f"{pid}.1", "schema": p["config"]},
                                 timeout=30).status_code == 200
        rng = random.Random(1)
        events, sent = [], defaultdict(set)
        for k in range(N_WEBHOOKS):
            pid = rng.choice([1, 2, 3])
            text, label = rng.choice(projects[pid]["pool"])
            aid = 10_000 * pid + k
            sent[pid].add(aid)
            events.append({
                "action": "ANNOTATION_CREATED",
                "project": {"id": pid, "label_config": projects[pid]["config"]},
                "task": {"id": aid, "data": {"text": text}, "project": pid},
                "annotation": {"id": aid, "task": aid, "result": [
                    {"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]},
            })

        statuses, webhook_latency, predict_latency = defaultdict(int), [], []
        stop = threading.Event()
        lock = threading.Lock()

        def predict_client(seed):
            crng = random.Random(seed)
            session = requests.Session()
            while not stop.is_set():
                pid = crng.choice([1, 2, 3])
                tasks = [{"id": i, "data": {"text": crng.choice(projects[pid]["pool"])[0]}} for i in range(20)]
                t0 = time.perf_counter()
                resp = session.post(f"{server.url}/predict", json={"project": f"{pid}.1", "tasks": tasks,
                                                                   "label_config": projects[pid]["config"]}, timeout=100)
                with lock:
                    predict_latency.append(time.perf_counter() - t0)
                    statuses[resp.status_code] += 1
                assert len(resp.json()["results"]) == 20

        clients = [threading.Thread(target=predict_client, args=(i,)) for i in range(PREDICT_CLIENTS)]
        for c in clients:
            c.start()
        session = requests.Session()
        started = time.perf_counter()
        for k, event in enumerate(events):
            # pace the webhooks over SECONDS, as annotators submitting would
            time.sleep(max(0.0, started + k * SECONDS / N_WEBHOOKS - time.perf_counter()))
            t0 = time.perf_counter()
            resp = session.post(f"{server.url}/webhook", json=event, timeout=10)
            with lock:
                webhook_latency.append(time.perf_counter() - t0)
                statuses[resp.status_code] += 1
        send_seconds = time.perf_counter() - started

        def settled():
            for pid in projects:
                body = requests.get(f"{server.url}/versions", params={"project": pid}, timeout=10).json()
                if body["training"] or not body["details"] or body["details"][-1]["n_labels"] != len(sent[pid]):
                    return None
            return True

        deadline = time.time() + 300
        while not settled():
            assert time.time() < deadline, "projects did not settle on versions with all their labels"
            time.sleep(1)
        stop.set()
        for c in clients:
            c.join(120)

        assert not [code for code in statuses if code >= 500], dict(statuses)
        runs = {}
        for pid in projects:
            body = requests.get(f"{server.url}/versions", params={"project": pid}, timeout=10).json()
            assert body["labels"] == len(sent[pid])  # labels stored = labels sent
            meta_ids = set(_meta(tmp_path, pid, body["current"])["annotation_ids"])
            assert meta_ids == sent[pid]  # the final version learned every label
            runs[pid] = len(body["versions"])
        overlaps = _overlapping_runs((tmp_path / "server.log").read_text())
        assert overlaps == {}, f"two runs at once: {overlaps}"
        REPORT.append(
            f"storm: {N_WEBHOOKS} webhooks in {send_seconds:.1f} s across 3 projects (3/20/150 classes) "
            f"+ {PREDICT_CLIENTS} predict clients: {sum(statuses.values())} requests, "
            f"5xx {sum(v for k, v in statuses.items() if k >= 500)}, labels stored = sent "
            f"{[len(sent[p]) for p in projects]}, versions {list(runs.values())}, overlapping runs 0; "
            f"webhook p50 {_pct(webhook_latency, 50):.0f} ms p99 {_pct(webhook_latency, 99):.0f} ms; "
            f"predict(20 tasks) p50 {_pct(predict_latency, 50):.0f} ms p99 {_pct(predict_latency, 99):.0f} ms"
        )
    finally:
        server.stop()


def _meta(tmp_path, pid, version):
    import json

    return json.loads((tmp_path / "models" / "projects" / str(pid) / "versions" / version / "meta.json").read_text())


def _overlapping_runs(log: str) -> dict:
    """Projects whose training runs overlapped, from the server's "run started/ended" lines."""
    open_runs, overlaps = defaultdict(int), defaultdict(int)
    for match in re.finditer(r"project (\d+): training run (started|ended)", log):
        pid, what = match.groups()
        if what == "started":
            open_runs[pid] += 1
            if open_runs[pid] > 1:
                overlaps[pid] += 1
        else:
            open_runs[pid] -= 1
    return dict(overlaps)
