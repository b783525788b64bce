import os
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Nothing may download weights or data sets at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def training_process():
    """The child that trains heads, started once from the main thread, as a server does at boot."""
    from baal_backend import trainer_process

    trainer_process.start()
    yield
    trainer_process.shutdown()


@pytest.fixture
def make_app(tmp_path) -> Callable:
    """make_app(**env) -> Flask test client over a fresh MODEL_DIR (reused on a second call)."""
    from _wsgi import create_app
    from baal_backend.settings import Settings

    def make(model_dir=None, **env):
        values = {"MODEL_DIR": str(model_dir or tmp_path / "models"), "MIN_LABELS": "10"}
        values.update({k: str(v) for k, v in env.items()})
        app = create_app(Settings.from_env(values))
        client = app.test_client()
        client.engine = app.config["ENGINE"]
        return client

    return make


#: Lines the reliability suite reports (counts, latencies); printed at the end of the run.
REPORT: list = []


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("reliability suite")
        for line in REPORT:
            terminalreporter.write_line(line)
