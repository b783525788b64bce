"""The prediction push against a real Label Studio with 10,000 tasks: seconds per version, and
prediction rows after 5 versions.

A real Label Studio 1.23.2 (its own venv, `.venv-ls`, installed by the e2e tests or on first
use here), a real backend process with credentials and PUSH_EVERY_SECONDS=0 (push after every
version). 10,000 CLINC150 texts of 10 intents; connecting pushes v0000; then 5 times: annotate 20
more tasks through the API, wait for the version, time its push and the deletion of the older
versions' predictions (from the backend's log line).

    .venv/bin/python benchmarks/push.py [--tasks 10000] [--versions 5] [--out benchmarks/results/push.json]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baal_backend.data import load_clinc  # noqa: E402
from tests.e2e.conftest import LabelStudio  # noqa: E402
from tests.helpers import label_config  # noqa: E402
from tests.integration.test_server_process import Server  # noqa: E402

PUSHED = re.compile(r"pushed (\d+) predictions of (\S+) to Label Studio in ([\d.]+) s "
                    r"\(older versions' predictions deleted in ([\d.]+) s\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "push.json"))
    args = parser.parse_args()

    data = load_clinc()
    intents = sorted(set(data.labels))[:10]
    pool = [(t, y) for t, y in zip(data.texts, data.labels) if y in intents]
    extra = load_clinc(split="test")
    pool += [(t, y) for t, y in zip(extra.texts, extra.labels) if y in intents]
    rng = random.Random(0)
    rows = [pool[i % len(pool)] for i in range(args.tasks)]
    rows = [(f"{t} ({i})" if i >= len(pool) else t, y) for i, (t, y) in enumerate(rows)]  # unique texts
    rng.shuffle(rows)
    truth = dict(rows)

    work = Path(tempfile.mkdtemp(prefix="push-bench-"))
    ls = LabelStudio(work)
    backend = None
    try:
        log = work / "backend.log"
        backend = Server(work / "models", log, LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.token,
                         PUSH_EVERY_SECONDS="0", MIN_LABELS="10")
        project = ls.api("POST", "/api/projects", json={"title": "push bench", "label_config": label_config(intents)})["id"]
        for start in range(0, len(rows), 2000):
            ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows[start:start + 2000]])
        tasks, page = [], 1
        while True:
            resp = ls.session.get(f"{ls.url}/api/tasks", params={"project": project, "page": page, "page_size": 1000},
                                  timeout=120)
            if resp.status_code == 404:
                break
            batch = resp.json()["tasks"]
            tasks += batch
            if len(batch) < 1000:
                break
            page += 1
        assert len(tasks) == args.tasks, len(tasks)
        ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
        pushes = _wait_pushes(log, 1)  # v0000 on connect
        order = iter(tasks)
        for _ in range(args.versions):
            for task in [next(order) for _ in range(20)]:
                ls.api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": [
                    {"from_name": "intent", "to_name": "text", "type": "choices",
                     "value": {"choices": [truth[task["data"]["text"]]]}}]})
            pushes = _wait_pushes(log, len(pushes) + 1, since_version=pushes[-1]["version"])
        versions = ls.api("GET", f"/api/projects/{project}/model-versions")
        total = sum(versions.values())
        result = {
            "tasks": args.tasks,
            "label_studio": "1.23.2 (SQLite)",
            "pushes": pushes,
            "predictions_after": {"versions_pushed": len(pushes), "rows": total, "rows_per_task": round(total / args.tasks, 4),
                                  "by_version": versions},
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        for push in pushes:
            print(f"{push['version']:28s} {push['predictions']:6d} predictions pushed in {push['seconds']:6.1f} s, "
                  f"older versions' deleted in {push['delete_older_seconds']:5.1f} s")
        print(f"prediction rows after {len(pushes)} pushes: {total} for {args.tasks} tasks "
              f"({total / args.tasks:.3f} per task): {versions}")
    finally:
        if backend:
            backend.stop()
        ls.stop()


def _wait_pushes(log: Path, n: int, since_version: str = "", timeout: float = 1800) -> list:
    """The first `n` distinct pushes in the backend's log (the last one of a version other than
    `since_version`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [{"predictions": int(m.group(1)), "version": m.group(2), "seconds": float(m.group(3)),
                  "delete_older_seconds": float(m.group(4))}
                 for m in PUSHED.finditer(log.read_text())]
        if len(found) >= n and found[-1]["version"] != since_version:
            return found
        time.sleep(1)
    raise TimeoutError(f"{n} pushes: {log.read_text()[-2000:]}")


if __name__ == "__main__":
    main()
