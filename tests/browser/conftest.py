"""A real headless Chromium for the pages people look at: Debian's `chromium` (or CHROMIUM=path),
driven by playwright's Python package through `executable_path` (playwright's own browser
download is not needed). Without a Chromium the browser tests are skipped, loudly; under CI
(CI=true) they fail instead, so a green CI run always means the pages were really rendered."""
import os
import shutil

import pytest

ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
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
        browser = pw.chromium.launch(executable_path=path, args=ARGS, headless=True)
        yield browser
        browser.close()
