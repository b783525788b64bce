"""Scoring speed: the tutorial's MC-Dropout path against this backend's, on the same model and texts.

(a) tutorial: whole network dropout-patched, `BaalTransformersTrainer.predict_on_dataset(ds, 20)`
    (every text 20 times through the whole network), then BALD;
(b) backend: `POST /predict` on a trained first version (one body pass, 20 draws of the head,
    the default heuristic's score), through the app in process and over HTTP to a real server;
(c) floor: one plain deterministic forward pass of the same body, no draws.

Each measurement runs in its own child process, so its peak RSS is its own.

    .venv/bin/python benchmarks/scoring.py                 # the README's table
    .venv/bin/python benchmarks/scoring.py --quick         # a smoke run
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.helpers import label_config  # noqa: E402

DRAWS = 20
LABELS = [f"intent_{i}" for i in range(150)]


def make_texts(n: int, length: str) -> list:
    """Unique texts (no cache hits): CLINC utterances (short), or several joined (medium, long)."""
    from baal_backend.data import load_clinc

    base = load_clinc(split="train").texts + load_clinc(split="test").texts
    join = {"short": 1, "medium": 6, "long": 16}[length]
    return [" ".join(base[(i * join + j) % len(base)] for j in range(join)) + f" #{i}" for i in range(n)]


def _tree_peak_rss_mb(pid: int) -> float:
    """The largest peak RSS among a process and its children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    peaks = []
    for p in [pid, *map(int, children)]:
        status = Path(f"/proc/{p}/status").read_text()
        peaks.append(int(status.split("VmHWM:")[1].split()[0]) / 1024)
    return max(peaks)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_tutorial(texts: list, max_length: int) -> dict:
    import numpy as np
    import torch
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import patch_module
    from baal.transformers_trainer_wrapper import BaalTransformersTrainer
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    from baal_backend.hf import load_classifier, load_tokenizer
    from baal_backend.settings import default_model_path

    path = default_model_path()
    tok = load_tokenizer(path)
    model = patch_module(load_classifier(path, LABELS))
    ds = Dataset.from_dict({"text": texts}).map(lambda b: tok(b["text"], truncation=True, max_length=max_length),
                                                 batched=True, remove_columns=["text"])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_eval_batch_size=16, report_to=[], disable_tqdm=True,
                                 use_cpu=not torch.cuda.is_available())
        trainer = BaalTransformersTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tok))
        start = time.perf_counter()
        logits = trainer.predict_on_dataset(ds, DRAWS)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        BALD().get_uncertainties(probs)
        elapsed = time.perf_counter() - start
    assert probs.shape == (len(texts), len(LABELS), DRAWS) and np.isfinite(probs).all()
    return {"seconds": elapsed}


def _first_version(post) -> None:
    """Ten annotations, so /predict serves a trained version's MC-Dropout BALD scores (v0000 uses
    the cold-start rule instead). `post(path, json)` returns the decoded JSON reply."""
    config = label_config(LABELS)
    for i in range(10):
        post("/webhook", {
            "action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": config},
            "task": {"id": 10_000 + i, "data": {"text": f"label {i}"}},
            "annotation": {"id": i + 1, "result": [{"from_name": "intent", "to_name": "text", "type": "choices",
                                                    "value": {"choices": [LABELS[i % 2]]}}]}})
    deadline = time.time() + 120
    while not post("/versions", {"project": 1})["versions"]:
        assert time.time() < deadline, "no version trained"
        time.sleep(0.2)


def _predict_all(post, texts: list) -> float:
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)]
    start = time.perf_counter()
    body = post("/predict", {"project": "1.1", "label_config": label_config(LABELS), "tasks": tasks})
    elapsed = time.perf_counter() - start
    assert len(body["results"]) == len(texts) and body["results"][0]["model_version"].startswith("v0001")
    return elapsed


def run_backend(texts: list, max_length: int) -> dict:
    from _wsgi import create_app
    from baal_backend.settings import Settings

    with tempfile.TemporaryDirectory() as model_dir:
        client = create_app(Settings.from_env({"MODEL_DIR": model_dir, "MAX_LENGTH": str(max_length)})).test_client()
        _first_version(lambda path, body: client.post(path, json=body).json)
        return {"seconds": _predict_all(lambda path, body: client.post(path, json=body).json, texts)}


def run_floor(texts: list, max_length: int) -> dict:
    from baal_backend.encoder import Encoder
    from baal_backend.settings import default_model_path

    enc = Encoder(default_model_path(), max_length=max_length)
    enc.embed(["warm up"])
    start = time.perf_counter()
    enc._forward(texts)
    return {"seconds": time.perf_counter() - start}


def run_http(texts: list, max_length: int) -> dict:
    import requests

    from tests.integration.test_server_process import Server

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "models", Path(tmp) / "server.log", MAX_LENGTH=str(max_length))
        try:
            def post(path, body):
                return requests.post(f"{server.url}{path}", json=body, timeout=600).json()

            _first_version(post)
            elapsed = _predict_all(post, texts)
            rss = _tree_peak_rss_mb(server.proc.pid)  # gunicorn's worker is a child of the master
        finally:
            server.stop()
    return {"seconds": elapsed, "server_peak_rss_mb": rss}


PATHS = {"tutorial": run_tutorial, "backend": run_backend, "http": run_http, "floor": run_floor}


def _child(path: str, n: int, length: str, max_length: int, queue) -> None:
    try:
        texts = make_texts(n, length)
        result = PATHS[path](texts, max_length)
        result["peak_rss_mb"] = result.pop("server_peak_rss_mb", None) or _peak_mb()
    except BaseException:
        import traceback

        result = {"error": traceback.format_exc()}
    queue.put(result)


def measure(path: str, n: int, length: str, max_length: int = 128) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(path, n, length, max_length, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{path} {n} {length} failed:\n{result['error']}")
    return {"path": path, "texts": n, "length": length, **result, "texts_per_s": n / result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="scoring speed benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scoring.json")
    args = parser.parse_args()
    plan = [("tutorial", 100, "short"), ("backend", 200, "short"), ("http", 200, "short"), ("floor", 200, "short")] if args.quick else [
        ("tutorial", 1000, "short"), ("backend", 1000, "short"), ("http", 1000, "short"), ("floor", 1000, "short"),
        ("http", 500, "short"),
        ("backend", 10_000, "short"), ("floor", 10_000, "short"),
        ("backend", 100_000, "short"), ("floor", 100_000, "short"),
        ("tutorial", 200, "medium"), ("backend", 1000, "medium"), ("floor", 1000, "medium"),
        ("tutorial", 100, "long"), ("backend", 1000, "long"), ("floor", 1000, "long"),
    ]
    rows = []
    print(f"{'path':9} {'texts':>7} {'length':>7} {'seconds':>8} {'texts/s':>9} {'peak RSS MB':>11}", flush=True)
    for path, n, length in plan:
        row = measure(path, n, length)
        rows.append(row)
        print(f"{path:9} {n:7d} {length:>7} {row['seconds']:8.2f} {row['texts_per_s']:9.1f} {row['peak_rss_mb']:11.0f}",
              flush=True)
    speed = {(r["path"], r["texts"], r["length"]): r["texts_per_s"] for r in rows}
    for length in ("short", "medium", "long"):
        tut = [v for (p, n, ln), v in speed.items() if p == "tutorial" and ln == length]
        back = [v for (p, n, ln), v in speed.items() if p == "backend" and ln == length and n == 1000]
        floor = [v for (p, n, ln), v in speed.items() if p == "floor" and ln == length and n == 1000]
        if tut and back and floor:
            print(f"{length}: backend/tutorial = {back[0] / tut[0]:.1f}x faster; floor/backend = {floor[0] / back[0]:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
