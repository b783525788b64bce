"""The report's data through the app and the export CLI: a 10-intent CLINC150 project, 100
labels in 5 rounds (the first 5 wrong), 300 unlabeled tasks asked for predictions."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baal_backend import insight
from tests.helpers import app_client, intent_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    models = tmp_path_factory.mktemp("report") / "models"
    client = app_client(models)
    config, truth, sent = intent_project(client, 7, flip=5)
    yield client, models, truth, sent
    client.engine.shutdown(30)


def _export(models, *args):
    env = {**os.environ, "MODEL_DIR": str(models)}
    return subprocess.run([sys.executable, "-m", "baal_backend", "export", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_version_keeps_its_report_data_and_versions_say_whether_to_stop(project):
    client, models, truth, sent = project
    body = client.get("/versions?project=7").json
    history = insight.history(client.engine.project("7"))
    # one history line per published version, also for versions pruned since (KEEP_VERSIONS)
    assert [h["version"] for h in history][-len(body["versions"]):] == body["versions"]
    assert len(history) == int(body["current"][1:5])
    assert all(len(h["stop_ids"]) == len(h["stop_pred"]) == 300 for h in history)
    assert body["stopping"]["stop"] in (True, False) and body["stopping"]["reason"]
    assert body["stopping"]["checks"] and all(0 <= c["kappa"] <= 1 for c in body["stopping"]["checks"])
    latest = insight.current(client.engine.project("7"))
    assert latest["version"] == body["current"] and len(latest["pool"]) == 300
    assert {r["task"] for r in latest["pool"]} == set(range(101, 401))  # the unlabeled tasks, none labeled
    assert body["last_run"]["seconds"] > 0


def test_the_export_cli_writes_the_pages_lists(project, tmp_path):
    client, models, truth, sent = project
    latest = insight.current(client.engine.project("7"))
    run = _export(models, "--project", "7", "--threshold", "0.3", "--out", str(tmp_path / "to_label.csv"))
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(open(tmp_path / "to_label.csv")))
    assert rows and all(not r["text"].startswith(("=", "+", "-", "@")) for r in rows)
    expected = [r for r in latest["pool"] if r["margin"] <= 0.3]
    assert len(rows) == len(expected) and all(float(r["margin"]) <= 0.3 for r in rows)
    assert [float(r["margin"]) for r in rows] == sorted(float(r["margin"]) for r in rows)
    default = _export(models, "--project", "7", "--out", str(tmp_path / "default.csv"))  # one question: margin <= 0.3
    assert default.returncode == 0 and list(csv.DictReader(open(tmp_path / "default.csv"))) == rows
    everything = _export(models, "--project", "7", "--threshold", "1", "--out", str(tmp_path / "all.json"))
    assert everything.returncode == 0 and len(json.loads((tmp_path / "all.json").read_text())) == 300
    run = _export(models, "--project", "7", "--suspicious", "--out", str(tmp_path / "suspicious.json"))
    assert run.returncode == 0, run.stderr
    flagged = json.loads((tmp_path / "suspicious.json").read_text())
    wrong = {aid for aid, y in sent.items() if y != truth[aid - 1000 + 1]}
    top = [s["annotation"] for s in flagged]
    assert len(wrong) == 5 and len(wrong & set(top[:5])) >= 4 and wrong <= set(top[:10])  # precision at 5 >= 0.8


@pytest.mark.parametrize("args, code, message", [
    (["--project", "7", "--out", "x.txt"], 2, "must end in .csv or .json"),
    (["--project", "7", "--threshold", "2", "--out", "x.csv"], 2, "between 0 and 1"),
    (["--project", "99", "--out", "x.csv"], 1, "project 99 has no version with report data"),
    (["--project", "../7", "--out", "x.csv"], 2, "not a Label Studio project id"),
])
def test_the_export_cli_names_what_is_wrong(project, tmp_path, args, code, message):
    run = _export(project[1], *[a if a not in ("x.txt", "x.csv") else str(tmp_path / a) for a in args])
    assert run.returncode == code and message in run.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_report_route(project):
    client = project[0]
    page = client.get("/report/7")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Plotly" in html and "cdn" not in html.split("<script>")[0].lower()  # the JS is inlined
    assert "<script src=" not in html and "</script><" not in json.dumps(insight.current(client.engine.project("7")))
    assert client.get("/report/12345").status_code == 404
    assert not (project[1] / "projects" / "12345").exists()  # a read creates nothing
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert client.get("/report/abc").status_code == 400
