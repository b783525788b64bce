import os
import shutil
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
    from tests.helpers import app_client

    def make(model_dir=None, **env):
        return app_client(model_dir or tmp_path / "models", **env)

    return make


#: Lines the reliability suite reports (counts, latencies); printed at the end of the run.
REPORT: list = []


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("reliability suite")
        for line in REPORT:
            terminalreporter.write_line(line)


# --- a real headless Chromium (the report page, Label Studio's own UI) -------------------------
# Debian's `chromium` (or CHROMIUM=path), driven by playwright's Python package through
# `executable_path` (playwright's own browser download is not needed). Without a Chromium the
# browser tests are skipped, loudly; under CI (CI=true) they fail instead, so a green CI run
# always means the pages were really rendered.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium_path():
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if not path:
        message = "no Chromium: install Debian's `chromium` (apt install chromium) or set CHROMIUM=/path/to/chrome"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
