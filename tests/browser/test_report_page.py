"""The report page in a real headless Chromium, served by a real server process over HTTP with
basic auth, for a 10-intent project with 100 labels (5 of them wrong) and 300 unlabeled tasks; and
the page of a project with two questions, one multi-label. Screenshots go to test-output/browser/
in the repository (gitignored)."""
import os
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import app_client, intent_project
from tests.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output" / "browser"
USER, PASSWORD = "team", "s3cret-pass"
HOSTILE = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> what is my apr'
FORMULA = '=HYPERLINK("http://example.com", "click") what is my balance'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, project data): the project built through the app, then served by `_wsgi.py`."""
    models = tmp_path_factory.mktemp("report") / "models"
    client = app_client(models)
    built = intent_project(client, 7, flip=5, extra=[HOSTILE, FORMULA])
    client.engine.shutdown(30)
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(models), "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = ServerProcess([sys.executable, "_wsgi.py", "--host", "127.0.0.1", "--port", str(port)], ROOT, env,
                           models.parent / "server.log", f"http://127.0.0.1:{port}/health", timeout=120)
    yield f"http://127.0.0.1:{port}", built
    server.stop()


def test_the_report_page_renders_every_plot_and_the_threshold_filters_the_table(served, browser):
    url, (config, truth, sent) = served
    assert requests.get(f"{url}/report/7", timeout=30).status_code == 401  # behind the API's auth
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                  http_credentials={"username": USER, "password": PASSWORD})
    page = context.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    external = []
    page.on("request", lambda req: external.append(req.url) if not req.url.startswith(url) else None)
    assert page.goto(f"{url}/report/7").status == 200
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 5")
    assert errors == [] and [u for u in external if not u.startswith(("data:", "blob:"))] == []
    # every plot has data
    points = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(
        el => [el.id, el.data.reduce((n, trace) => n + (trace.x ? trace.x.length : 0), 0)]))""")
    assert points["labels-time"] == 100 and points["labels-class"] == 10
    assert points["curve"] >= 2 * 2  # accuracy and macro-F1 of at least two versions
    assert points["uncertainty"] == 302 and points["scatter"] == 302
    # a task's text is shown as text: nothing in it runs
    assert page.evaluate("window.pwned === undefined")
    # the threshold control changes the table and the shaded band
    def shown():
        return page.eval_on_selector_all("#next tbody tr", "rows => rows.length")
    at_default = shown()
    page.fill("#threshold", "1")
    assert shown() == 302
    assert HOSTILE in page.inner_text("#next")
    page.fill("#threshold", "0.05")
    assert shown() < at_default <= 302
    band = page.evaluate("document.getElementById('scatter').layout.shapes[0].path")
    assert band.startswith("M 0.05,0")
    page.fill("#threshold", "0.3")
    assert shown() == at_default
    # the CSV export holds the table's rows
    with page.expect_download() as download:
        page.click("#csv")
    csv_lines = Path(download.value.path()).read_text().strip().splitlines()
    assert csv_lines[0].startswith("task,text,top") and len(csv_lines) == at_default + 1
    page.fill("#threshold", "1")
    with page.expect_download() as download:
        page.click("#csv")
    every = Path(download.value.path()).read_text()
    assert ",=HYPERLINK" not in every and ',"=HYPERLINK' not in every and "'=HYPERLINK" in every  # no formula
    page.fill("#threshold", "0.3")
    # the five wrong labels head the suspicious table
    suspects = page.eval_on_selector_all("#suspicious tbody tr td:first-child", "cells => cells.map(c => +c.textContent)")
    wrong = {aid - 1000 + 1 for aid, y in sent.items() if y != truth[aid - 1000 + 1]}
    assert len(wrong) == 5 and len(wrong & set(suspects[:5])) >= 4 and wrong <= set(suspects[:10])
    assert "Stop signal" in page.text_content("#stopping") and "Last run: published" in page.text_content("#status")
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "report.png"), full_page=True)
    print(f"screenshot: {OUT / 'report.png'}")
    context.close()


def test_a_multi_question_project_gets_a_section_per_question(browser, make_app):
    """The page of the two-question project of tests/integration/test_questions.py (a multi-label
    topic and a single-choice mood), as the app serves it, under its Content-Security-Policy."""
    from tests.integration.test_questions import WRONG, build_project

    client = make_app(MIN_LABELS="10")
    build_project(client)
    resp = client.get("/report/1")
    assert resp.status_code == 200
    url = "http://backend.test/report/1"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(url, lambda route: route.fulfill(status=200, body=resp.get_data(as_text=True), headers=dict(resp.headers)))
    assert page.goto(url).status == 200
    deadline = time.time() + 30  # polled: wait_for_function evaluates a string, which the policy forbids
    while page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") < 5:
        assert time.time() < deadline, errors
        time.sleep(0.1)
    assert errors == []
    # one section per question, each with its labels per choice, quality, stopping check and suspicious labels
    titles = page.eval_on_selector_all("#questions section h2", "els => els.map(e => e.textContent)")
    assert len(titles) == 2 and "topic" in titles[0] and "mood" in titles[1]
    bars = page.evaluate("() => [0, 1].map(i => document.getElementById(`question-${i}-labels`).data[0].x.length)")
    assert bars == [3, 2]
    for i in (0, 1):
        assert page.text_content(f"#question-{i} .stopping").startswith("Stop signal")
        assert "macro-F1" in page.text_content(f"#question-{i} .quality")
    assert "Labels per text" in page.text_content("#question-0 .quality")  # multi-label: label cardinality
    assert page.eval_on_selector_all("#question-0 table.per-label tbody tr", "rows => rows.length") == 3
    suspects = page.eval_on_selector_all("#question-0 table.suspicious tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert [str(WRONG[0]), WRONG[1], "billing", "extra (ticked)"] in [r[:4] for r in suspects[:3]]
    # the one-question charts give way; the to-label table names each task's least certain question
    assert page.evaluate("() => ['scatter-section', 'suspicious-section'].map(id => document.getElementById(id).hidden)") == [True, True]
    assert page.evaluate("() => document.getElementById('labels-class').parentElement.hidden")
    # by default the 100 texts with the lowest rank scores: all 60 here, of both questions
    cells = page.eval_on_selector_all("#next tbody tr", "rows => rows.map(r => r.cells[2].textContent)")
    assert len(cells) == 60 and set(cells) == {"topic", "mood"}
    page.fill("#threshold", "1")
    assert page.eval_on_selector_all("#next tbody tr", "rows => rows.length") == 60
    assert page.text_content("#next thead").startswith("tasktextleast certain question")
    with page.expect_download() as download:
        page.click("#csv")
    assert Path(download.value.path()).read_text().startswith("task,text,question,answer,p_answer,rank,score\n")
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "report-questions.png"), full_page=True)
    context.close()
