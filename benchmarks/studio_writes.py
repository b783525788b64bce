"""How fast a real Label Studio 1.23.2 (SQLite) takes predictions: a bulk import against rewriting
in place (`PATCH /api/predictions/{id}`, one request each, sequentially and 4 at once), which the
push uses so that no prediction an annotator may hold is deleted.

    .venv/bin/python benchmarks/studio_writes.py [--tasks 1000] [--rewrites 200]

Starts its own Label Studio (installed into .venv-ls on first use, as the e2e tests do).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.conftest import LabelStudio  # noqa: E402
from tests.helpers import label_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rewrites", type=int, default=200)
    args = parser.parse_args()
    ls = LabelStudio(Path(tempfile.mkdtemp(prefix="studio-writes-")))
    try:
        pid = ls.api("POST", "/api/projects", json={"title": "writes", "label_config": label_config(["a", "b"])})["id"]
        ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": f"text {i}"} for i in range(args.tasks)])
        ids = [t["id"] for t in ls.api("GET", "/api/tasks", params={"project": pid, "page_size": args.tasks})["tasks"]]

        def result(choice):
            return [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]

        started = time.perf_counter()
        for i in range(0, len(ids), 500):
            ls.api("POST", f"/api/projects/{pid}/import/predictions", json=[
                {"task": t, "result": result("a"), "score": 0.5, "model_version": "v1"} for t in ids[i:i + 500]])
        imported = time.perf_counter() - started
        rows = ls.api("GET", "/api/predictions", params={"project": pid})

        def rewrite(row):
            ls.api("PATCH", f"/api/predictions/{row['id']}", json={"result": result("b"), "score": 0.1, "model_version": "v2"})

        n = args.rewrites
        started = time.perf_counter()
        for row in rows[:n]:
            rewrite(row)
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(rewrite, rows[n:2 * n]))
        parallel = time.perf_counter() - started
        out = {"import_per_s": round(len(ids) / imported, 1), "rewrite_per_s_sequential": round(n / sequential, 1),
               "rewrite_per_s_4_at_once": round(n / parallel, 1), "tasks": len(ids), "rewrites": n}
        print(json.dumps(out))
    finally:
        ls.stop()


if __name__ == "__main__":
    main()
