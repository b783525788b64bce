"""The label-name prior at zero labels: which wording of the class names, and which scale.

For CLINC150's test set (150 intents) and BBC News (5 topics, a stratified fifth), each class
name is worded by each template, embedded by the packaged MiniLM (`Encoder`), and every text gets
the nearest name. Prints accuracy, macro-F1 and the scale (of `prior.SCALES`) that maximises the
likelihood, and writes benchmarks/results/prior_probe.json. `prior.DEFAULT_SCALE` comes from here.

    .venv/bin/python benchmarks/prior_probe.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baal_backend.data import load_bbc, load_clinc  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.prior import SCALES, describe, softmax  # noqa: E402
from baal_backend.settings import default_model_path  # noqa: E402
from baal_backend.simulation import split_test  # noqa: E402

TEMPLATES = ["{}", "about {}", "this text is about {}", "a question about {}"]


def main() -> None:
    encoder = Encoder(default_model_path())
    bbc_pool, bbc_test = split_test(load_bbc(), 0.2, 0)
    sets = {"clinc150-test": load_clinc(split="test"), "bbc-test": bbc_test}
    results = {}
    for name, data in sets.items():
        classes = sorted(set(data.labels))
        y = np.array([classes.index(v) for v in data.labels])
        emb = encoder.embed(data.texts)
        for template in TEMPLATES:
            protos = encoder.embed([template.format(describe(c)) for c in classes])
            cos = emb @ protos.T
            pred = cos.argmax(1)
            nll = {s: float(-np.log(softmax(s * cos)[np.arange(len(y)), y] + 1e-12).mean()) for s in SCALES if s > 0}
            best = min(nll, key=nll.get)
            row = {"accuracy": round(float((pred == y).mean()), 4),
                   "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
                   "best_scale": best, "nll_at_best": round(nll[best], 4), "nll": {str(k): round(v, 4) for k, v in nll.items()}}
            results.setdefault(name, {})[template] = row
            print(f"{name:14s} {template!r:28s} acc {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
                  f"best scale {best:g} (NLL {row['nll_at_best']:.3f})", flush=True)
    out = ROOT / "benchmarks" / "results" / "prior_probe.json"
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
