"""Fine-tune mode's warm start, measured: 10 CLINC150 intents, 100 k-means labels, 1 seed.

For the label-name prior on and off: head mode's accuracy, and fine-tuning (100 steps) from the
head with its output layer at zero (what `training.train_finetune` does) or kept as fitted.
Writes benchmarks/results/finetune_warm_start.json. About 3 minutes on 2 CPU cores (1 seed: each figure is 300 test texts, one text is 0.0033).

    .venv/bin/python benchmarks/finetune_warm_start.py
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baal_backend import simulation, training  # noqa: E402
from baal_backend.data import load_data  # noqa: E402
from baal_backend.settings import default_model_path  # noqa: E402

OUT = Path(__file__).parent / "results" / "finetune_warm_start.json"


def main() -> None:
    base = default_model_path()
    pool, test = simulation.first_classes(*load_data("clinc150"), 10)
    labels = sorted(set(pool.labels))
    rows = {}
    for prior in (True, False):
        cfg = simulation.SimulationConfig(strategies=["margin"], seed_size=100, batch_size=100, budget=100, repeats=1,
                                          mode="finetune", model=base, prior=prior)
        learner = simulation._Learner(cfg, pool, test, labels)
        seed = learner.seed_set("kmeans", np.random.default_rng(0), 0)
        texts, y = [pool.texts[i] for i in seed], learner.y_pool[seed]
        unlabeled = np.setdiff1d(np.arange(len(pool.texts)), seed)
        warm = training.train_head_on_embeddings(learner.encoder, labels, learner.pool_emb[seed], y,
                                                 training.head_config(learner.train_cfg), learner.prior,
                                                 learner.pool_emb[unlabeled])
        result = {"head": learner._metrics(warm.proba_from_embeddings(learner.test_emb, 20).mean(-1))["accuracy"]}
        for name, train in (("finetune, output layer at zero", training.train_finetune),
                            ("finetune, fitted head kept",
                             lambda *args: training.train_finetune(*args, zero_output=False))):
            started = time.perf_counter()
            clf = train(base, warm, texts, y, learner.train_cfg)
            acc = learner._metrics(clf.predict_proba(test.texts, 20).mean(-1))["accuracy"]
            result[name] = acc
            result[f"{name}: seconds"] = round(time.perf_counter() - started, 1)
        rows["prior on" if prior else "prior off"] = result
        print(rows, flush=True)
    OUT.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
