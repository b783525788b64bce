"""Which learner makes the most of few labels? The head on the names' prior, the head on the
prior refined by the labels and the unlabeled pool (the server's), the refined prototypes alone,
and the head without a prior, at fixed label counts (k-means labels up to 150, random above).

CLINC150 at 150 / 600 / 1,500 / 3,000 labels; BBC News and BBC News with code names at 10 / 50 /
200; 3 seeds each. Writes benchmarks/results/prior_refinement.json.

    .venv/bin/python benchmarks/prior_refinement.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baal_backend import cold_start  # noqa: E402
from baal_backend.data import load_bbc, load_clinc  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.prior import LabelPrior  # noqa: E402
from baal_backend.settings import default_model_path  # noqa: E402
from baal_backend.simulation import cryptic, split_test  # noqa: E402
from baal_backend.model import HeadClassifier  # noqa: E402
from baal_backend.training import TrainConfig, train_head_on_embeddings, train_mc_head  # noqa: E402


def run(encoder: Encoder, name: str, pool, test, budgets) -> dict:
    labels = sorted(set(pool.labels) | set(test.labels))
    index = {label: i for i, label in enumerate(labels)}
    y_pool = np.array([index[v] for v in pool.labels])
    y_test = np.array([index[v] for v in test.labels])
    pool_emb, test_emb = encoder.embed(pool.texts), encoder.embed(test.texts)
    names = LabelPrior.of(encoder, labels)
    out = {}
    for budget in budgets:
        scores: dict = {}
        for seed in (0, 1, 2):
            rows = (cold_start.representatives(pool_emb, budget, seed) if budget <= 150
                    else np.random.default_rng(seed).choice(len(pool_emb), budget, replace=False))
            rest = np.setdiff1d(np.arange(len(pool_emb)), rows)
            emb, y, cfg = pool_emb[rows], y_pool[rows], TrainConfig(seed=seed)

            def accuracy(clf) -> float:
                return float((clf.proba_from_embeddings(test_emb, 20).mean(-1).argmax(1) == y_test).mean())

            names_only = names.fit_scale(emb, y)
            scores.setdefault("head on the names' prior", []).append(
                accuracy(HeadClassifier(encoder, train_mc_head(emb, y, len(labels), cfg, names_only), labels, names_only)))
            refined = names.refined(emb, y, pool_emb[rest])
            scores.setdefault("refined prototypes alone", []).append(float((refined.logits(test_emb).argmax(1) == y_test).mean()))
            scores.setdefault("head on the refined prior (server)", []).append(
                accuracy(train_head_on_embeddings(encoder, labels, emb, y, cfg, names, pool_emb[rest])))
            scores.setdefault("head without a prior", []).append(accuracy(train_head_on_embeddings(encoder, labels, emb, y, cfg)))
        out[str(budget)] = {k: [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)] for k, v in scores.items()}
        print(name, budget, "  ".join(f"{k}: {m:.4f} ± {sd:.4f}" for k, (m, sd) in out[str(budget)].items()), flush=True)
    return out


def main() -> None:
    encoder = Encoder(default_model_path())
    bbc_pool, bbc_test = split_test(load_bbc(), 0.2, 0)
    results = {
        "clinc150": run(encoder, "clinc150", load_clinc(split="train"), load_clinc(split="test"), [150, 600, 1500, 3000]),
        "bbc": run(encoder, "bbc", bbc_pool, bbc_test, [10, 50, 200]),
        "bbc-cryptic": run(encoder, "bbc-cryptic", *cryptic(bbc_pool, bbc_test), [10, 50, 200]),
    }
    (ROOT / "benchmarks" / "results" / "prior_refinement.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
