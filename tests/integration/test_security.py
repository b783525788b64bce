"""Auth, limits, no state from reads, bounded open files, masked secrets, metrics, request ids."""
import base64
import os
import resource
import subprocess
import sys
import time

import requests

from tests.helpers import SENTIMENT, label_config, sentiment_events, task
from tests.integration.test_server_process import ROOT, Server

AUTH = {"BASIC_AUTH_USER": "annotator-bot", "BASIC_AUTH_PASS": "correct horse battery staple"}


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ROUTES = [
    ("GET", "/versions?project=1", None),
    ("POST", "/versions", {"project": 1}),
    ("POST", "/setup", {"project": "1.1", "schema": SENTIMENT}),
    ("POST", "/predict", {"project": "1.1", "label_config": SENTIMENT, "tasks": [task(1, "hello")]}),
    ("POST", "/webhook", sentiment_events(1, 1)[0]),
    ("GET", "/metrics", None),
]


def test_every_route_asks_for_basic_auth_except_health(make_app):
    client = make_app(**AUTH)
    good = _basic(AUTH["BASIC_AUTH_USER"], AUTH["BASIC_AUTH_PASS"])
    wrong = [{}, _basic(AUTH["BASIC_AUTH_USER"], "wrong"), _basic("someone", AUTH["BASIC_AUTH_PASS"]),
             {"Authorization": "Basic not-base64!"}, {"Authorization": "Bearer " + AUTH["BASIC_AUTH_PASS"]}]
    for method, path, body in ROUTES:
        for headers in wrong:
            resp = client.open(path, method=method, json=body, headers=headers)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        assert client.open(path, method=method, json=body, headers=good).status_code == 200, (method, path)
    assert client.engine.project("1").store.count() == 1  # only the authorized webhook got in
    # the documented health route: anyone sees UP, only an authorized caller the details
    public = client.get("/health").json
    assert public == {"status": "UP", "model_class": "BaalTextClassifier"}
    assert "problems" in client.get("/health", headers=good).json


def test_each_limit_answers_with_its_name(make_app):
    client = make_app(MAX_REQUEST_MB="0.05", MAX_TASKS="5", MAX_CHOICES="3")
    big = client.post("/predict", json={"project": "1.1", "tasks": [task(1, "x" * 60_000)], "label_config": SENTIMENT})
    assert big.status_code == 413 and "MAX_REQUEST_MB" in big.json["error"]
    many = client.post("/predict", json={"project": "1.1", "tasks": [task(i, "hi") for i in range(6)],
                                         "label_config": SENTIMENT})
    assert many.status_code == 422 and "MAX_TASKS" in many.json["error"] and "6 tasks" in many.json["error"]
    choices = client.post("/setup", json={"project": "2.1", "schema": label_config(["a", "b", "c", "d"])})
    assert choices.status_code == 422 and "MAX_CHOICES" in choices.json["error"]
    assert not (client.engine.settings.model_dir / "projects" / "2").exists()
    for bad in ("../etc", "1e3", "-1", "0", "99999999999999999999", "١٢"):
        resp = client.get(f"/versions?project={bad}")
        assert resp.status_code == 400 and "not a Label Studio project id" in resp.json["error"], bad
    deep = client.post("/predict", data="[" * 40_000, content_type="application/json")  # under 0.05 MB
    assert deep.status_code == 413 and "JSON values" in deep.json["error"]  # refused before parsing


def test_a_huge_text_is_cut_before_tokenizing(make_app):
    """Was: one 10 MB text took 15 s and 2.2 GB (the tokenizer read all of it)."""
    client = make_app()
    huge = "the service was great and the staff were kind. " * 200_000  # ~10 MB
    t0 = time.perf_counter()
    resp = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": [task(1, huge)]})
    assert resp.status_code == 200 and resp.json["results"][0]["score"] is not None
    assert time.perf_counter() - t0 < 5
    client.post("/webhook", json={**sentiment_events(1, 1)[0], "task": {"id": 1, "data": {"text": huge}}})
    stored = client.engine.project("1").store.all()[0].text
    assert len(stored) < 100_000  # stored cut too


def test_reads_and_refusals_create_no_state(make_app):
    client = make_app()
    root = client.engine.settings.model_dir / "projects"
    assert client.get("/versions?project=77").json["versions"] == []
    client.post("/versions", json={"project": 78})
    client.post("/predict", json={"project": "79.1", "tasks": [task(1, "x")]})  # 422: no config
    client.post("/setup", json={"project": "80.1", "schema": "<View/>"})  # 422: refused
    for action in ("START_TRAINING", "TASKS_DELETED", "ANNOTATIONS_DELETED", "PROJECT_DELETED"):
        client.post("/webhook", json={"action": action, "project": {"id": 81}, "tasks": [{"id": 1}],
                                      "annotations": [{"id": 1}]})
    client.engine.jobs.wait_idle("81", 30)
    assert sorted(p.name for p in root.iterdir()) == []
    assert client.engine.current_versions() == {}


def test_metrics_and_request_ids(make_app, caplog):
    client = make_app(MIN_LABELS=10)
    for event in sentiment_events(1, 12):
        client.post("/webhook", json=event)
    client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}})
    assert client.engine.jobs.wait_idle("1", 120)
    resp = client.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it"), task(2, "bad")]},
                       headers={"X-Request-ID": "abc123"})
    assert resp.headers["X-Request-ID"] == "abc123"
    assert client.get("/health").headers["X-Request-ID"]  # one is made up when the caller sends none
    forged = client.get("/health", headers={"X-Request-ID": "x [ERROR] forged line"}).headers["X-Request-ID"]
    assert forged != "x [ERROR] forged line" and forged.isalnum()  # never raw text into the log
    text = client.get("/metrics").get_data(as_text=True)
    assert 'baal_webhooks_total{action="ANNOTATION_CREATED",status="200"} 12.0' in text
    assert 'baal_webhooks_total{action="OTHER",status="200"} 1.0' in text
    assert "baal_predict_seconds_count 1.0" in text and "baal_texts_scored_total 2.0" in text
    assert 'baal_training_runs_total{outcome="published"}' in text and "baal_training_run_seconds_count" in text
    assert "baal_training_queue 0.0" in text
    version = client.engine.current_version("1")
    assert f'baal_current_version{{project="1"}} {float(int(version[1:5]))}' in text


def test_check_masks_every_secret(tmp_path):
    secrets = {"LABEL_STUDIO_API_KEY": "tok-0123456789secret", "BASIC_AUTH_PASS": "pass-secret-987",
               "REDIS_URL": "redis://:redis-secret-555@localhost:6379/0"}
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "LABEL_STUDIO_URL": "http://ls:8080", "BASIC_AUTH_USER": "u",
           **secrets}
    proc = subprocess.run([sys.executable, "_wsgi.py", "--check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "settings OK" in proc.stdout
    for word in ("tok-0123456789secret", "pass-secret-987", "redis-secret-555"):
        assert word not in proc.stdout + proc.stderr
    assert "label_studio_api_key=***" in proc.stdout and "redis://:***@localhost:6379/0" in proc.stdout


def test_errors_shown_never_carry_credentials_or_paths():
    """Was: an HTTPError's text (with the Label Studio URL's user:password) went into the log and
    /versions; an OSError's text named the server path; a password holding '#' or '/' was shown."""
    import requests

    from baal_backend.logs import public_error
    from baal_backend.settings import mask_url

    url = "http://admin:S3cret#pw/x@127.0.0.1:8080/api/projects/1/model-versions"
    shown = public_error(requests.HTTPError(f"500 Server Error: Internal Server Error for url: {url}"))
    assert "S3cret" not in shown and "admin:***@127.0.0.1:8080" in shown
    assert mask_url("redis://:p#ss/w0rd@redis:6379/0") == "redis://:***@redis:6379/0"
    shown = public_error(PermissionError(13, "Permission denied", "/data/models/projects/1/versions/.tmp-x"))
    assert shown == "PermissionError: Permission denied"


def test_open_files_stay_bounded_with_many_projects(tmp_path):
    """Was: every project kept an SQLite connection: at `ulimit -n 256`, 84 projects made every
    request answer 500 ("Too many open files")."""
    limit = 256

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    server = Server(tmp_path / "models", tmp_path / "server.log", preexec_fn=low_limit, MIN_LABELS="1000")
    try:
        session = requests.Session()
        for pid in range(1, 201):
            event = sentiment_events(pid, 1, start_id=pid * 10)[0]
            assert session.post(f"{server.url}/webhook", json=event, timeout=10).status_code == 200, pid
        for pid in (1, 100, 200):  # every project still answers, with its label
            assert session.get(f"{server.url}/versions", params={"project": pid}, timeout=10).json()["labels"] == 1
        fds = len(os.listdir(f"/proc/{server.worker_pid()}/fd"))
        assert fds < limit - 50, fds
    finally:
        server.stop()


def test_no_authentication_on_an_open_address_warns_once(tmp_path):
    server = Server(tmp_path / "models", tmp_path / "server.log", host="0.0.0.0")
    server.stop()
    assert (tmp_path / "server.log").read_text().count("NO AUTHENTICATION") == 1
    quiet = Server(tmp_path / "models", tmp_path / "quiet.log", host="0.0.0.0", **AUTH)
    quiet.stop()
    assert "NO AUTHENTICATION" not in (tmp_path / "quiet.log").read_text()
