"""Retraining time under CPU contention: a small retrain, quiet and beside a busy process.

Through the in-process app, as Label Studio drives it: 20 annotation webhooks (MIN_LABELS=20, so
the 20th starts the one run), and the clock runs from that webhook until /predict serves the new
version (training includes the 5-fold quality probes). Each case is repeated; the competing
process is started before and stopped after each case:

* quiet: nothing else running;
* busy-python: another process spinning one core in a Python loop;
* busy-torch: another process doing torch matmuls on its default threads;
* predict-traffic: /predict requests in the backend during the retrain;
* busy-python+traffic: both.

    .venv/bin/python benchmarks/contention.py [--repeats 5] [--out benchmarks/results/contention.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _wsgi import create_app  # noqa: E402
from baal_backend.settings import Settings  # noqa: E402
from tests.helpers import SENTIMENT, sentiment_events  # noqa: E402

BUSY_PYTHON = [sys.executable, "-c", "while True: pass"]
BUSY_TORCH = [sys.executable, "-c", "import torch\nx = torch.randn(512, 512)\nwhile True: x @ x"]
#: case -> (competing process, /predict traffic in the backend during the retrain)
CASES = {
    "quiet": (None, False),
    "busy-python": (BUSY_PYTHON, False),
    "busy-torch": (BUSY_TORCH, False),
    "predict-traffic": (None, True),
    "busy-python+traffic": (BUSY_PYTHON, True),
}


def retrain_seconds(n_labels: int = 20, traffic: bool = False) -> float:
    """Seconds from the last webhook to the new version; `traffic`: a thread keeps calling
    /predict meanwhile (Label Studio retrieving predictions, annotators opening tasks)."""
    with tempfile.TemporaryDirectory() as model_dir:
        app = create_app(Settings.from_env({"MODEL_DIR": model_dir, "MIN_LABELS": str(n_labels)}))
        client, engine = app.test_client(), app.config["ENGINE"]
        events = sentiment_events(1, n_labels)
        client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT,
                                      "tasks": [e["task"] for e in events]})  # embeddings cached, as in the server
        for event in events[:-1]:
            client.post("/webhook", json=event)
        engine.jobs.wait_idle("1", 60)
        stop = threading.Event()

        def predict_loop() -> None:
            other = app.test_client()
            tasks = [{"id": i, "data": {"text": f"another review number {i} {time.time()}"}} for i in range(20)]
            while not stop.is_set():
                other.post("/predict", json={"project": "1.1", "label_config": SENTIMENT, "tasks": tasks})

        loop = threading.Thread(target=predict_loop) if traffic else None
        if loop:
            loop.start()
        started = time.perf_counter()
        client.post("/webhook", json=events[-1])
        while engine.current_version("1") == "v0000":
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        stop.set()
        if loop:
            loop.join()
        engine.jobs.wait_idle("1", 60)  # the run records its outcome after publishing
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "contention.json"))
    args = parser.parse_args()
    retrain_seconds()  # warm-up: model load, first-call costs
    results = {}
    for name, (cmd, traffic) in CASES.items():
        times = []
        for _ in range(args.repeats):
            proc = subprocess.Popen(cmd) if cmd else None
            try:
                time.sleep(1.0 if proc else 0)
                times.append(retrain_seconds(traffic=traffic))
            finally:
                if proc:
                    proc.kill()
                    proc.wait()
        results[name] = {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
        print(f"{name:12s} median {results[name]['median_s']:.2f} s  runs {results[name]['runs_s']}", flush=True)
    quiet = results["quiet"]["median_s"]
    for name in results:
        results[name]["vs_quiet"] = round(results[name]["median_s"] / quiet, 2)
    summary = {"cores": os.cpu_count(), "labels": 20, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v["vs_quiet"] for k, v in results.items()}))


if __name__ == "__main__":
    main()
