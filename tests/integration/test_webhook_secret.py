"""The webhook's own secret: Label Studio shows a webhook's headers to every member of the
organisation, so the header it carries opens `POST /webhook` and nothing else.

Was: the webhook carried `Authorization: Basic <user:password>`, which opened every route."""
import base64
import os
import subprocess
import sys

from baal_backend.auth import webhook_token
from tests.helpers import SENTIMENT, sentiment_events, task
from tests.integration.test_server_process import ROOT

AUTH = {"BASIC_AUTH_USER": "ls-model", "BASIC_AUTH_PASS": "a long random pass"}
TOKEN = {"Authorization": "Bearer " + webhook_token(AUTH["BASIC_AUTH_USER"], AUTH["BASIC_AUTH_PASS"])}
BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"{AUTH['BASIC_AUTH_USER']}:{AUTH['BASIC_AUTH_PASS']}".encode()).decode()}


def test_the_webhook_token_opens_post_webhook_only(make_app):
    client = make_app(**AUTH)
    event = sentiment_events(1, 1)[0]
    assert client.post("/webhook", json=event, headers=TOKEN).status_code == 200
    assert client.engine.project("1").store.count() == 1
    for method, path, body in [
        ("POST", "/predict", {"project": "1.1", "label_config": SENTIMENT, "tasks": [task(1, "hello")]}),
        ("GET", "/versions?project=1", None), ("POST", "/versions", {"project": 1}),
        ("POST", "/setup", {"project": "1.1", "schema": SENTIMENT}), ("GET", "/report/1", None),
        ("GET", "/metrics", None), ("GET", "/webhook", None),
    ]:
        resp = client.open(path, method=method, json=body, headers=TOKEN)
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert client.open(path, method=method, json=body, headers=BASIC).status_code != 401, (method, path)
    assert "problems" not in client.get("/health", headers=TOKEN).json  # no details either


def test_a_wrong_token_or_another_password_s_token_is_refused(make_app):
    client = make_app(**AUTH)
    event = sentiment_events(1, 1)[0]
    for header in ["Bearer " + webhook_token(AUTH["BASIC_AUTH_USER"], "another pass"),
                   "Bearer " + webhook_token("someone", AUTH["BASIC_AUTH_PASS"]),
                   "Bearer " + AUTH["BASIC_AUTH_PASS"], "Bearer ", TOKEN["Authorization"].replace("Bearer", "Basic")]:
        assert client.post("/webhook", json=event, headers={"Authorization": header}).status_code == 401, header
    # a webhook that still carries the Basic header (set by an older backend) keeps working
    assert client.post("/webhook", json=event, headers=BASIC).status_code == 200


def test_without_basic_auth_the_webhook_needs_no_token(make_app):
    client = make_app()
    assert client.post("/webhook", json=sentiment_events(1, 1)[0]).status_code == 200
    assert client.post("/webhook", json=sentiment_events(1, 1)[0], headers={"Authorization": "Bearer "}).status_code == 200


def test_the_printed_header_is_the_one_accepted(make_app, tmp_path):
    """The README's manual step (no LABEL_STUDIO_API_KEY): `python _wsgi.py --webhook-token`."""
    proc = subprocess.run([sys.executable, "_wsgi.py", "--webhook-token"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **AUTH, "MODEL_DIR": str(tmp_path / "models")}, timeout=120)
    header = proc.stdout.strip()
    assert proc.returncode == 0 and header.startswith("Bearer "), proc.stderr[-2000:]
    client = make_app(**AUTH)
    assert client.post("/webhook", json=sentiment_events(1, 1)[0], headers={"Authorization": header}).status_code == 200
    assert client.get("/versions?project=1", headers={"Authorization": header}).status_code == 401
