"""A real Label Studio (own venv under .venv-ls, installed on first use) and a real backend process."""
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.test_server_process import Server
from tests.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
LS_VENV = ROOT / ".venv-ls"
LS_VERSION = "1.23.2"


def _ensure_label_studio() -> Path:
    exe = LS_VENV / "bin" / "label-studio"
    stamp = LS_VENV / f".installed-{LS_VERSION}"
    if not stamp.exists():
        shutil.rmtree(LS_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(LS_VENV)], check=True)
        subprocess.run([str(LS_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"label-studio=={LS_VERSION}"], check=True)
        stamp.touch()
    return exe


class LabelStudio(ServerProcess):
    """Label Studio on loopback with a throw-away data dir, a user and a legacy API token."""

    def __init__(self, workdir: Path):
        exe = _ensure_label_studio()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(20)
        data = workdir / "lsdata"
        env = {k: v for k, v in os.environ.items() if k not in ("USERNAME", "PASSWORD", "PORT", "HOST")}
        env.update(HOME=str(workdir), LABEL_STUDIO_BASE_DATA_DIR=str(data), DJANGO_DB="sqlite", SENTRY_DSN="",
                   FRONTEND_SENTRY_DSN="", COLLECT_ANALYTICS="false", LATEST_VERSION_CHECK="false",
                   FEATURE_FLAGS_OFFLINE="true", ML_BLOCK_LOCAL_IP="false", SSRF_PROTECTION_ENABLED="false",
                   LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true")
        cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port),
               "--data-dir", str(data), "--username", "admin@example.com", "--password", secrets.token_hex(8),
               "--user-token", self.token]
        super().__init__(cmd, workdir, env, workdir / "label-studio.log", f"{self.url}/health", timeout=300,
                         is_up=lambda r: r.json().get("status") == "UP")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {self.token}"

    def api(self, method: str, path: str, **kwargs):
        resp = self.session.request(method, f"{self.url}{path}", timeout=120, **kwargs)
        assert resp.status_code < 400, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json() if resp.content else None


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    ls = LabelStudio(tmp_path_factory.mktemp("label-studio"))
    try:
        yield ls
    finally:
        ls.stop()


@pytest.fixture
def backend_factory(tmp_path, label_studio):
    """Start the backend as `make run` does, pointed at the Label Studio above."""
    started = []

    def start(port: int = 0, credentials: bool = True, **env):
        env = {"PUSH_EVERY_SECONDS": "0", **env}  # push after every version: the tests look at each
        if credentials:
            env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token, **env}
        server = Server(tmp_path / "models", tmp_path / "backend.log", port=port, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
