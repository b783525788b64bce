"""Time from the last annotation webhook to a published, served model version.

For each label count N: a fresh project whose N tasks were predicted first (as Label Studio does
when it retrieves predictions), N-1 annotation webhooks with MIN_LABELS=N (so nothing trains),
then the N-th webhook starts the clock; it stops when /predict serves the new version.

    .venv/bin/python benchmarks/webhook_to_version.py --labels 30 50 200 1000 --modes head
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _wsgi import create_app  # noqa: E402
from baal_backend.data import load_clinc  # noqa: E402
from baal_backend.settings import Settings  # noqa: E402
from tests.helpers import label_config  # noqa: E402


def measure(mode: str, n: int, extra_env: dict) -> dict:
    data = load_clinc()
    labels = sorted(set(data.labels))
    config = label_config(labels)
    with tempfile.TemporaryDirectory() as model_dir:
        env = {"MODEL_DIR": model_dir, "TRAIN_MODE": mode, "MIN_LABELS": str(n), **extra_env}
        app = create_app(Settings.from_env(env))
        client, engine = app.test_client(), app.config["ENGINE"]
        pick = random.Random(0).sample(range(len(data)), n)  # the train split is sorted by intent
        texts, gold = [data.texts[i] for i in pick], [data.labels[i] for i in pick]
        tasks = [{"id": i, "data": {"text": texts[i]}} for i in range(n)]
        client.post("/predict", json={"project": "1.1", "label_config": config, "tasks": tasks})

        def event(i: int) -> dict:
            return {
                "action": "ANNOTATION_CREATED",
                "project": {"id": 1, "label_config": config},
                "task": tasks[i],
                "annotation": {"id": i + 1, "result": [{"from_name": "intent", "to_name": "text", "type": "choices",
                                                         "value": {"choices": [gold[i]]}}]},
            }

        for i in range(n - 1):
            client.post("/webhook", json=event(i))
        engine.jobs.wait_idle("1", 600)
        started = time.perf_counter()
        answer = time.perf_counter()
        client.post("/webhook", json=event(n - 1))
        answer = time.perf_counter() - answer
        engine.jobs.wait_idle("1", 3600)
        served = client.post("/predict", json={"project": "1.1", "label_config": config, "tasks": tasks[:1]}).json
        elapsed = time.perf_counter() - started
        meta = engine.project("1").registry.meta(engine.current_version("1"))
        assert served["results"][0]["model_version"] == meta["version"] and meta["n_labels"] == n
        return {"mode": mode, "labels": n, "webhook_answer_s": round(answer, 4), "webhook_to_served_s": round(elapsed, 2),
                "train_s": meta["train_seconds"], "eval": meta["metrics"].get("eval"),
                "eval_accuracy": meta["metrics"].get("accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[30, 50, 200, 1000])
    parser.add_argument("--modes", nargs="+", default=["head"], choices=["head", "finetune"])
    parser.add_argument("--env", nargs="*", default=[], help="extra settings, KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    rows = []
    print(f"{'mode':9} {'labels':>6} {'webhook s':>9} {'to served s':>11} {'train s':>8} {'eval':>10} {'acc':>6}")
    for mode in args.modes:
        for n in args.labels:
            row = measure(mode, n, extra)
            rows.append(row)
            acc = "-" if row["eval_accuracy"] is None else f"{row['eval_accuracy']:.3f}"
            print(f"{mode:9} {n:6d} {row['webhook_answer_s']:9.4f} {row['webhook_to_served_s']:11.2f} "
                  f"{row['train_s']:8.2f} {str(row['eval']):>10} {acc:>6}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
