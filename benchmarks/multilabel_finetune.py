"""Fine-tune mode on a multi-label question, measured against head mode.

The CONSTRUCTED CLINC150 multi-label set (`data.load_clinc_multilabel`), `--labels` random
training messages per repeat: head mode's fit (`multilabel.fit_multilabel`: out-of-fold
thresholds, then the sigmoid head on every label) and fine-tune mode's version from that fit
(`multilabel_finetune.train_tuned`, the server's recipe), both scored on the 386 test messages
(micro- and macro-F1 over the 50 labels, each present in the test set, so the same macro-F1 as
the server's; both under the warm fit's thresholds), with the label-name prior unless
`--no-prior`. Writes benchmarks/results/multilabel_finetune[_no_prior].json.

    .venv/bin/python benchmarks/multilabel_finetune.py --labels 100 --repeats 3 [--no-prior]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baal_backend import multilabel, multilabel_finetune  # noqa: E402
from baal_backend.data import load_clinc_multilabel  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.prior import LabelPrior  # noqa: E402
from baal_backend.settings import MODE_DEFAULTS, default_model_path  # noqa: E402
from baal_backend.training import TrainConfig  # noqa: E402

OUT = Path(__file__).parent / "results" / "multilabel_finetune.json"


def f1s(y: np.ndarray, pred: np.ndarray) -> dict:
    return {"micro_f1": round(float(f1_score(y, pred, average="micro", zero_division=0)), 4),
            "macro_f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-prior", dest="prior", action="store_false", help="without the label-name prior")
    args = parser.parse_args()
    base = default_model_path()
    train, test = load_clinc_multilabel("train"), load_clinc_multilabel("test")
    names = sorted({label for row in train.labels for label in row})
    y_pool = multilabel.label_matrix(train.labels, names)
    y_test = multilabel.label_matrix(test.labels, names).astype(bool)
    encoder = Encoder(base, max_length=128)
    prior = LabelPrior.of(encoder, names) if args.prior else None
    test_emb = encoder.embed(test.texts)
    head_cfg = TrainConfig(eval_fraction=0.0)
    tune_cfg = TrainConfig(mode="finetune", eval_fraction=0.0, **MODE_DEFAULTS["finetune"])
    rows = []
    for seed in range(args.repeats):
        picked = np.random.default_rng(seed).choice(len(train.texts), args.labels, replace=False)
        texts, y = [train.texts[i] for i in picked], y_pool[picked]
        fit = multilabel.fit_multilabel(encoder.embed(texts), y, list(range(len(picked))), head_cfg, names,
                                        prior.prototypes if prior is not None else None)
        warm = fit.classifier(encoder, names)
        row = {"seed": seed, "head": f1s(y_test, multilabel.decide(warm.proba_from_embeddings(test_emb, 20).mean(-1),
                                                                   warm.thresholds, warm.at_least_one))}
        started = time.perf_counter()
        tuned = multilabel_finetune.train_tuned(base, warm, texts, y, tune_cfg)
        row["finetune_seconds"] = round(time.perf_counter() - started, 1)
        row["finetune"] = f1s(y_test, multilabel.decide(tuned.predict_proba(test.texts, 20).mean(-1), tuned.thresholds,
                                                        tuned.at_least_one))
        rows.append(row)
        print(row, flush=True)
    mean = {mode: {k: round(float(np.mean([r[mode][k] for r in rows])), 4) for k in ("micro_f1", "macro_f1")}
            for mode in ("head", "finetune")}
    out = OUT.with_name(f"multilabel_finetune{'' if args.prior else '_no_prior'}.json")
    out.write_text(json.dumps({"labels": args.labels, "prior": args.prior, "repeats": rows, "mean": mean}, indent=1))
    print(json.dumps(mean))


if __name__ == "__main__":
    main()
