"""The report page in headless Chromium under its own Content-Security-Policy: no eval and no
inline script but its own two, every chart still drawn; names and texts from the project never
become links; the CSV export keeps each field in its row and cell."""
import csv
import io
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from baal_backend import report
from tests.helpers import label_config

EVIL = '<a href="https://evil.example">x</a>'
URL = "http://backend.test/report/1"
#: What the page reported as blocked (the listener runs before the page's own scripts).
WATCH_CSP = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI))")


def open_page(browser, html: str, headers: dict):
    """A page at URL answered with `html` and `headers`; (page, console errors)."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(WATCH_CSP)
    page.route(URL, lambda route: route.fulfill(status=200, body=html, headers=headers))
    assert page.goto(URL).status == 200
    # polled from here: wait_for_function would evaluate a string, which the policy forbids
    deadline = time.time() + 30
    while page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") < 5:
        assert time.time() < deadline, errors
        time.sleep(0.1)
    return page, errors


def drawn(page) -> dict:
    """Per plot: its SVG elements drawn by plotly (a chart that failed has none)."""
    return page.evaluate("() => Object.fromEntries([...document.querySelectorAll('.plot')].map("
                         "el => [el.id, el.querySelectorAll('svg.main-svg').length]))")


def links(page) -> list:
    """The targets of the page's links, HTML or SVG (plotly draws `<a href>` of its labels as SVG links)."""
    return page.evaluate("""() => [...document.querySelectorAll('a')].map(
        a => a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href')).filter(h => h)""")


def test_the_served_page_runs_under_its_policy_and_a_class_name_stays_text(browser, make_app):
    client = make_app()
    assert client.post("/setup", json={"project": "1.1", "schema": label_config([escape(EVIL, {'"': "&quot;"}), "Negative"])}).status_code == 200
    resp = client.get("/report/1")
    assert resp.status_code == 200
    policy = resp.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page, errors = open_page(browser, resp.get_data(as_text=True), dict(resp.headers))
    assert page.evaluate("window.__csp") == [] and errors == []
    assert all(n > 0 for n in drawn(page).values()), drawn(page)
    assert links(page) == []
    assert EVIL in page.text_content("#labels-class")  # shown as the text it is
    page.context.close()


def _row(task: int, text: str, margin: float) -> dict:
    return {"task": task, "text": text, "top": [EVIL, 0.55], "second": ["Negative", 0.45], "margin": margin, "score": 0.1}


TEXTS = ['plain', 'a "quoted", text', "line\nbreak", "bare\rCR then =1+1", "=HYPERLINK(\"http://x\")",
         "\r=cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "+1", "\tTAB", '<a href="https://evil.example/2">hover me</a>']


def synthetic() -> dict:
    """`report.collect`'s shape for a two-class project whose pool holds hostile texts."""
    pool = [_row(i, text, 0.01 * i) for i, text in enumerate(TEXTS, start=1)]
    return {"project": "1", "classes": [EVIL, "Negative"], "generated_at": 0,
            "labels_over_time": [[1.7e9 + k, k + 1] for k in range(12)], "labels_per_class": {EVIL: 6, "Negative": 6},
            "versions": [{"version": "v0001", "n_labels": 10, "accuracy": 0.6, "macro_f1": 0.5},
                         {"version": "v0002", "n_labels": 12, "accuracy": 0.7, "macro_f1": 0.6}],
            "current": "v0002", "stopping": {"stop": False, "reason": "not yet", "checks": []},
            "pool_version": "v0002", "pool": pool, "suspicious": [], "suspicious_reason": None,
            "training": {"running": False, "last_run": {}}, "threshold": 1.0}


def test_csv_export_keeps_rows_and_no_hover_or_label_becomes_a_link(browser):
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": report.csp()}
    page, errors = open_page(browser, report.render(synthetic()), headers)
    assert page.evaluate("window.__csp") == [] and errors == []
    assert all(n > 0 for n in drawn(page).values()) and page.evaluate(
        "document.querySelectorAll('#scatter .point').length") == len(TEXTS)
    # the hover label of the hostile text, and the axis titles naming the classes, as text
    page.evaluate("(i) => Plotly.Fx.hover('scatter', [{curveNumber: 0, pointNumber: i}])", len(TEXTS) - 1)
    assert page.text_content("#scatter .hoverlayer") == f"task {len(TEXTS)}: {TEXTS[-1]}"
    assert f"p({EVIL})" in page.text_content("#scatter .xtitle")
    assert links(page) == []
    # CSV: a field with , " CR or LF is quoted; one that a spreadsheet would run is prefixed with '
    assert page.evaluate("quote('bare\\rCR')") == '"bare\rCR"'
    with page.expect_download() as download:
        page.click("#csv")
    raw = Path(download.value.path()).read_bytes().decode()
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows[0][:2] == ["task", "text"] and len(rows) == len(TEXTS) + 1
    assert all(len(r) == 8 for r in rows)
    formula = tuple("=+-@\t\r")
    assert [r[1] for r in rows[1:]] == [("'" + t) if t.startswith(formula) else t for t in TEXTS]
    assert [r[2] for r in rows[1:]] == [EVIL] * len(TEXTS)
    page.context.close()


@pytest.fixture(autouse=True)
def _plotly_loaded():
    """Reading plotly.js (5 MB) once, outside the timed waits."""
    report.csp()
