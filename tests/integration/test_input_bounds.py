"""What one request may cost is bounded before its body is parsed, a webhook's id lists are
bounded, and nothing a request carries can forge a log line."""
import base64
import io
import json
import logging
import sqlite3
import tracemalloc

import pytest

from _wsgi import MAX_WEBHOOK_ITEMS
from baal_backend import logs
from tests.helpers import SENTIMENT, task

# Shaped like Label Studio 1.23's /predict tasks (TaskSimpleSerializer, with the annotations and
# predictions it nests): what the limits must keep accepting.


def _prediction(pid: int, task_id: int, version: str) -> dict:
    return {"id": pid, "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
            "value": {"choices": ["Positive"]}, "score": 0.8731}], "model_version": version,
            "created_ago": "2 hours, 3 minutes", "score": 0.1234, "cluster": None, "neighbors": None,
            "mislabeling": 0.0, "created_at": "2025-06-01T12:00:00.123456Z", "updated_at": "2025-06-01T12:00:00.123456Z",
            "model": None, "model_run": None, "task": task_id, "project": 1}


def _annotation(aid: int, task_id: int) -> dict:
    return {"id": aid, "result": [{"id": "abc123", "type": "choices", "value": {"choices": ["Positive"]},
            "origin": "manual", "to_name": "text", "from_name": "sentiment"}], "created_username": " user@example.com, 1",
            "created_ago": "0 minutes", "completed_by": 1, "was_cancelled": False, "ground_truth": False,
            "created_at": "2025-06-01T12:00:00.123456Z", "updated_at": "2025-06-01T12:00:00.123456Z",
            "draft_created_at": None, "lead_time": 3.2, "import_id": None, "last_action": None, "bulk_created": False,
            "task": task_id, "project": 1, "updated_by": 1, "parent_prediction": None, "parent_annotation": None,
            "last_created_by": None, "unique_id": "0b7c9a4e-1f3c-4d1a-9f1e-2a3b4c5d6e7f", "prediction": {},
            "result_count": 1}


def studio_task(task_id: int, text: str, predictions: int, annotations: int) -> dict:
    return {"id": task_id, "data": {"text": text}, "meta": {}, "created_at": "2025-06-01T12:00:00.123456Z",
            "updated_at": "2025-06-01T12:00:00.123456Z", "is_labeled": False, "overlap": 1, "inner_id": task_id,
            "total_annotations": annotations, "cancelled_annotations": 0, "total_predictions": predictions,
            "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": 1,
            "updated_by": None, "file_upload": 3, "comment_authors": [],
            "annotations": [_annotation(10**6 + task_id * 10 + k, task_id) for k in range(annotations)],
            "predictions": [_prediction(10**7 + task_id * 10 + k, task_id, f"v{k:04d}") for k in range(predictions)]}


def _post_measured(client, path: str, raw: bytes):
    """(response, peak bytes Python allocated while serving it)."""
    tracemalloc.start()
    try:
        resp = client.post(path, data=raw, content_type="application/json")
        return resp, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_dense_body_is_refused_before_it_is_parsed(make_app):
    client = make_app(MAX_REQUEST_MB="4", MAX_TASKS="100000")
    dense = b'{"project": "1.1", "tasks": [' + b"{}," * 1_000_000 + b"{}]}"  # 3 MB: 75 MB once parsed
    resp, peak = _post_measured(client, "/predict", dense)
    assert resp.status_code == 413, resp.json
    assert "2,000,004 JSON values" in resp.json["error"] and "at most 524,288" in resp.json["error"]
    assert peak < 5 * len(dense)  # the raw body and its copies; parsing it cost 25 times its size


def test_label_studio_tasks_fit_the_limits(make_app):
    """Its /predict bodies hold a value per 18-25 bytes: well under the value limit at the byte limit."""
    client = make_app(MAX_REQUEST_MB="0.5", MAX_TASKS="1000")
    for predictions, annotations, n in ((5, 1, 125), (20, 2, 45)):
        tasks = [studio_task(i, f"I love this product, truly (#{i})", predictions, annotations) for i in range(1, n + 1)]
        raw = json.dumps({"project": "1.1", "label_config": SENTIMENT, "tasks": tasks}).encode()
        assert 0.4 * 2**20 < len(raw) < 0.5 * 2**20
        resp = client.post("/predict", data=raw, content_type="application/json")
        assert resp.status_code == 200 and len(resp.json["results"]) == n


def test_the_predict_body_limit_follows_max_tasks(make_app):
    client = make_app(MAX_TASKS="2")  # 2 x 128 KB, under MAX_REQUEST_MB's 100 MB
    resp = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": [task(1, "x" * 300_000)]})
    assert resp.status_code == 413
    assert resp.json["error"] == "the request body is larger than 0.25 MB, the limit for /predict (MAX_TASKS=2 x 128 KB a task)"
    ok = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": [task(1, "x" * 100_000)]})
    assert ok.status_code == 200


def test_setup_takes_a_small_body(make_app):
    client = make_app()
    resp = client.post("/setup", json={"project": "1.1", "schema": SENTIMENT, "extra_params": "x" * 3 * 2**20})
    assert resp.status_code == 413 and "limit for /setup (a request without tasks)" in resp.json["error"]
    assert client.post("/setup", json={"project": "1.1", "schema": SENTIMENT}).status_code == 200


def test_deep_nesting_under_the_limits_is_a_400(make_app):
    client = make_app()
    deep = client.post("/predict", data="[" * 200_000, content_type="application/json")
    assert deep.status_code == 400 and "nested too deeply" in deep.json["error"]


def _tombstones(client, project: str) -> int:
    path = client.engine.settings.model_dir / "projects" / project / "labels.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM tombstones").fetchone()[0]


@pytest.mark.parametrize("action, key", [("ANNOTATIONS_DELETED", "annotations"), ("TASKS_DELETED", "tasks")])
def test_a_webhook_lists_at_most_max_webhook_items_ids(make_app, action, key):
    client = make_app()
    over = {"action": action, "project": {"id": 1}, key: [{"id": i} for i in range(1, MAX_WEBHOOK_ITEMS + 2)]}
    resp = client.post("/webhook", json=over)
    assert resp.status_code == 422
    assert resp.json["error"] == (f"the webhook's '{key}' lists {MAX_WEBHOOK_ITEMS + 1} items; the limit is "
                                  f"{MAX_WEBHOOK_ITEMS} per webhook: keep Label Studio's WEBHOOK_BATCH_SIZE "
                                  "(5000 by default) at or below it")
    assert _tombstones(client, "1") == 0
    # Label Studio's own batch (WEBHOOK_BATCH_SIZE, 5000 by default) passes
    batch = {"action": action, "project": {"id": 1}, key: [{"id": i} for i in range(1, 5001)]}
    assert client.post("/webhook", json=batch).status_code == 200


# --- log lines -------------------------------------------------------------------------------
@pytest.fixture
def log_lines():
    """The root log as `logs.configure` sets it up, written to a buffer: call it for the lines."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("INFO")
    buffer = io.StringIO()
    for handler in root.handlers:
        handler.setStream(buffer)
    yield lambda: buffer.getvalue().splitlines()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_nothing_from_a_request_forges_a_log_line(make_app, log_lines):
    user, password = "bot", "pass-word"
    client = make_app(BASIC_AUTH_USER=user, BASIC_AUTH_PASS=password)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    assert client.get("/x%0D%0A[ERROR] FAKE PATH").status_code == 401
    assert client.post("/webhook", json={"action": "X\nFAKE LINE\x1b[2J", "project": {"id": 1}}, headers=auth).status_code == 200
    tasks = [{"id": "7\n[ERROR] FAKE TASK", "data": {}}, task(8, "fine")]
    assert client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": tasks}, headers=auth).status_code == 200
    lines = log_lines()
    assert [line for line in lines if "FAKE" in line] == [
        next(line for line in lines if line.endswith(r"GET /x\r\n[ERROR] FAKE PATH: 401 (no or wrong basic auth credentials)")),
        next(line for line in lines if r"webhook X\nFAKE LINE\x1b[2J, project 1: ignored" in line),
        next(line for line in lines if r"task 7\n[ERROR] FAKE TASK: no prediction" in line),
    ]
    assert all(line.startswith("[") for line in lines) and "\x1b" not in "".join(lines)


def test_a_traceback_keeps_its_lines_while_its_message_is_escaped(log_lines):
    log = logging.getLogger("baal_backend.test")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("request to %s failed", "/a\nb")
    lines = log_lines()
    assert lines[0].endswith(r"request to /a\nb failed")
    assert lines[1] == "Traceback (most recent call last):" and lines[-1] == "ValueError: boom"
