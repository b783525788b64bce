"""Memory per project: what one more loaded version adds to the process (RSS), a head version
vs a fine-tuned body version, and the plateau MAX_LOADED_MODELS gives.

Trains one `head` and one `finetune` version of a 12-label sentiment project (packaged MiniLM),
copies each into `--projects` projects, then, in a fresh process per case, loads the projects one
after another (a /predict of 100 texts each, through the engine) and records the RSS after each.

    .venv/bin/python benchmarks/memory_per_project.py [--projects 6] [--out benchmarks/results/memory_per_project.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402

from baal_backend import trainer_process  # noqa: E402
from baal_backend.engine import Engine  # noqa: E402
from baal_backend.schema import parse_label_config  # noqa: E402
from baal_backend.settings import Settings  # noqa: E402
from tests.helpers import SENTIMENT, app_client, sentiment_events  # noqa: E402

TEXTS = [f"review {i}: {'great stuff, I love it' if i % 2 else 'awful, it broke at once'} ({i})" for i in range(100)]


def train(model_dir: Path, mode: str) -> None:
    """One version of project 1 in `mode`, in `model_dir`."""
    client = app_client(model_dir, TRAIN_MODE=mode, EPOCHS=1)
    for event in sentiment_events(1, 12):
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle("1", 1800) and client.engine.current_version("1") != "v0000"


def measure(model_dir: Path, max_loaded: int) -> list:
    """RSS (MB) with the encoder loaded, then after each project's version is loaded and used."""
    engine = Engine(Settings.from_env({"MODEL_DIR": str(model_dir), "MAX_LOADED_MODELS": str(max_loaded)}))
    schema, me = parse_label_config(SENTIMENT), psutil.Process()
    engine.encoder.embed(TEXTS)  # the shared encoder, these texts in its cache
    rss = [me.memory_info().rss / 2**20]
    for path in sorted((model_dir / "projects").iterdir(), key=lambda p: int(p.name)):
        engine.predict(path.name, schema, TEXTS)
        gc.collect()
        rss.append(me.memory_info().rss / 2**20)
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL_DIR", "MAX_LOADED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # the child process of one case
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]))))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainer_process.start()
        for mode in ("head", "finetune"):
            trained = Path(tmp) / f"trained-{mode}"
            train(trained, mode)
            served = Path(tmp) / mode / "projects"
            for i in range(1, args.projects + 1):
                shutil.copytree(trained / "projects" / "1", served / str(i))
            for max_loaded in (args.projects, 2):
                out = subprocess.run([sys.executable, __file__, "--measure", str(served.parent), str(max_loaded)],
                                     check=True, capture_output=True, text=True).stdout
                rss = json.loads(out.strip().splitlines()[-1])
                steps = [b - a for a, b in zip(rss, rss[1:])]
                results[f"{mode}, MAX_LOADED_MODELS={max_loaded}"] = {
                    "rss_mb": [round(x) for x in rss], "per_project_mb": round(sum(steps[1:]) / (len(steps) - 1), 1)}
                print(f"{mode:8} MAX_LOADED_MODELS={max_loaded}: RSS MB {[round(x) for x in rss]} "
                      f"(first load +{steps[0]:.0f}, then +{results[f'{mode}, MAX_LOADED_MODELS={max_loaded}']['per_project_mb']} "
                      "per project)", flush=True)
        trainer_process.shutdown()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
