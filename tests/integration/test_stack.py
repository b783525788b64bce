"""The maintained web stack, with label-studio-ml's base class and CLI still in service."""
import os
import signal
import sys
from importlib.metadata import version
from pathlib import Path

import requests
from label_studio_ml.model import LabelStudioMLBase

from label_studio_baal_hf import BaalTextClassifier
from tests.helpers import SENTIMENT, version_of
from tests.integration.test_server_process import ROOT
from tests.processes import ServerProcess, free_port


def _release(name):
    return tuple(int(part) for part in version(name).split(".")[:3])


def test_flask_and_werkzeug_are_maintained_releases():
    """label-studio-ml 1.0.9 pins Flask 1.1.2 / Werkzeug 2.0.2 (CVE-2023-25577, CVE-2023-46136,
    CVE-2024-34069, CVE-2023-30861, ...); it is installed without its pins."""
    assert _release("flask") >= (3, 1, 3) and _release("werkzeug") >= (3, 1, 9)
    assert version("label-studio-ml") == "1.0.9"
    assert issubclass(BaalTextClassifier, LabelStudioMLBase)


def test_label_studio_ml_start_serves_the_app(tmp_path):
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path / "models"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cli = Path(sys.executable).parent / "label-studio-ml"
    server = ServerProcess([str(cli), "start", ".", "--host", "127.0.0.1", "--port", str(port)], ROOT, env,
                           tmp_path / "cli.log", f"http://127.0.0.1:{port}/health", timeout=120)
    try:
        setup = requests.post(f"http://127.0.0.1:{port}/setup", json={"project": "1.1", "schema": SENTIMENT}, timeout=30)
        assert setup.status_code == 200 and version_of(setup.json()["model_version"]) == "v0000"
        assert "gunicorn" in (tmp_path / "cli.log").read_text().lower()  # not Werkzeug's dev server
    finally:
        server.stop(signal.SIGTERM)
