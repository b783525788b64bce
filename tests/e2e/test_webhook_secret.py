"""The webhook's own token on a real Label Studio webhook. Label Studio shows a webhook's headers
to every member of the organisation: the header there must open `/webhook` and nothing else.

Was: the backend put `Authorization: Basic <user:password>` on the webhook."""
import base64
import hashlib
import json

import requests

from baal_backend.auth import webhook_token
from tests.e2e.test_label_studio_loop import CONFIG, _wait

AUTH = {"BASIC_AUTH_USER": "ls-model", "BASIC_AUTH_PASS": "s3cret-pass"}


def test_an_old_clear_basic_header_is_replaced_by_the_webhook_token(label_studio, backend_factory, tmp_path):
    ls = label_studio
    backend = backend_factory(**AUTH)
    token = "Bearer " + webhook_token(AUTH["BASIC_AUTH_USER"], AUTH["BASIC_AUTH_PASS"])
    project = ls.api("POST", "/api/projects", json={"title": "webhook token", "label_config": CONFIG})["id"]
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal", "auth_method": "BASIC_AUTH",
                                    "basic_auth_user": AUTH["BASIC_AUTH_USER"], "basic_auth_pass": AUTH["BASIC_AUTH_PASS"]})

    def ours():
        return {h["id"]: (h.get("headers") or {}).get("Authorization")
                for h in ls.api("GET", "/api/webhooks", params={"project": project}) if h["url"] == f"{backend.url}/webhook"}

    hook = _wait(lambda: next((i for i, header in ours().items() if header == token), None), 60, "the token on the webhook")

    # as an older backend left it: the clear Basic header, and its digest in the project's state
    backend.stop()
    secret = f"{AUTH['BASIC_AUTH_USER']}:{AUTH['BASIC_AUTH_PASS']}".encode()
    ls.api("PATCH", f"/api/webhooks/{hook}", json={"headers": {"Authorization": "Basic " + base64.b64encode(secret).decode()}})
    state = tmp_path / "models" / "projects" / str(project) / "studio.json"
    state.write_text(json.dumps({**json.loads(state.read_text()),
                                 "webhook_auth": hashlib.sha256(b"webhook-auth\0" + secret).hexdigest()[:16]}))
    backend = backend_factory(port=backend.port, **AUTH)
    ls.api("GET", "/api/ml", params={"project": project})  # Label Studio calls /setup again
    _wait(lambda: ours()[hook] == token, 60, "the Basic header replaced by the token")

    # what a member reads on the webhook opens /webhook, and nothing else
    as_member = {"Authorization": token}
    ignored = {"action": "SOMETHING_IGNORED", "project": {"id": project}}
    assert requests.post(f"{backend.url}/webhook", json=ignored, headers=as_member, timeout=5).status_code == 200
    for path in ("/versions", "/report/" + str(project)):
        assert requests.get(f"{backend.url}{path}", params={"project": project}, headers=as_member, timeout=5).status_code == 401
