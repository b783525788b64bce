"""Multi-label active learning: which acquisition labels a multi-label set fastest?

Pool-based simulation with an oracle on the CONSTRUCTED CLINC150 multi-label set
(`data.load_clinc_multilabel`: 50 intents, skewed, messages of 1-3 real requests; no PyPI or
Debian package ships a usable multi-label text set). Each repeat: a k-means seed set (the
server's cold start), then batches picked by each strategy; every round trains the server's
multi-label fit (`multilabel.fit_multilabel`: out-of-fold thresholds, then the head on every
label) and measures test micro-/macro-F1. The texts are embedded once with the project's
`Encoder` and kept in memory. AULC: the mean of a metric over the budgets.

The same round also measures, on the same head, what the decision rule is worth: test F1 with a
fixed 0.5 threshold and without the "at least one label" fallback. `--balance` trains with
another positive weighting (the guard against skewed labels); `collapses` counts a label's test
F1 falling from >= 0.5 to <= 0.1 between two budgets (the collapse baal issue #175 reports).
Every head learns on top of the label names' prior (`prior.MultiLabelPrior`), as the server's
with `LABEL_PRIOR` on; `--no-prior` trains without it. Each round seeds torch's global generator
(the MC-Dropout draws), so a run repeats exactly and two runs compare on the same draws.

    .venv/bin/python benchmarks/multilabel_sim.py                      # every strategy, sqrt balance
    .venv/bin/python benchmarks/multilabel_sim.py --strategies random bald --balance none
    .venv/bin/python benchmarks/multilabel_sim.py --strategies cardinality --no-prior

Writes benchmarks/results/multilabel_<balance>[_noprior].json (and prints the table).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from baal_backend import cold_start, multilabel, multilabel_acquisition  # noqa: E402
from baal_backend.data import load_clinc_multilabel  # noqa: E402
from baal_backend.encoder import Encoder  # noqa: E402
from baal_backend.prior import LabelPrior  # noqa: E402
from baal_backend.settings import default_model_path  # noqa: E402
from baal_backend.training import TrainConfig  # noqa: E402

DRAWS = 20


class Learner:
    """The pool, the test set and one round of the server's multi-label fit on cached embeddings."""

    def __init__(self, balance: str, prior: bool):
        pool, test = load_clinc_multilabel("train"), load_clinc_multilabel("test")
        self.labels = sorted({label for chosen in pool.labels + test.labels for label in chosen})
        self.y_pool = multilabel.label_matrix(pool.labels, self.labels)
        self.y_test = multilabel.label_matrix(test.labels, self.labels)
        self.encoder = Encoder(default_model_path())
        self.pool_emb, self.test_emb = self.encoder.embed(pool.texts), self.encoder.embed(test.texts)
        self.balance = balance
        self.prototypes = LabelPrior.of(self.encoder, self.labels).prototypes if prior else None
        self.dataset = {"name": pool.name.rsplit("-", 1)[0], "pool": len(pool), "test": len(test),
                        "labels": len(self.labels), "pool_cardinality": float(self.y_pool.sum(1).mean()),
                        "pool_label_counts": {"max": int(self.y_pool.sum(0).max()), "min": int(self.y_pool.sum(0).min())}}

    def round(self, labeled: np.ndarray, unlabeled: np.ndarray, seed: int):
        """(test metrics, MC probabilities of the unlabeled pool, thresholds)."""
        cfg = replace(TrainConfig(seed=seed), eval_fraction=0.0, num_draws=DRAWS)  # quality plan off; OOF still fits thresholds
        torch.manual_seed(seed)
        fit = multilabel.fit_multilabel(self.pool_emb[labeled], self.y_pool[labeled], labeled, cfg, self.labels,
                                        self.prototypes, self.balance)
        clf = fit.classifier(self.encoder, self.labels)
        test_mean = clf.proba_from_embeddings(self.test_emb, DRAWS).mean(-1)
        pred = multilabel.decide(test_mean, fit.thresholds, fit.at_least_one)
        metrics = {**multilabel.scores(self.y_test, pred, self.labels), "label_f1": label_f1(self.y_test, pred),
                   "labeled_cardinality": float(self.y_pool[labeled].sum(1).mean())}
        for name, cut, fallback in (("fixed_0.5", np.full(len(self.labels), 0.5), fit.at_least_one),
                                    ("no_fallback", fit.thresholds, False)):
            other_pred = multilabel.decide(test_mean, cut, fallback)
            other = multilabel.scores(self.y_test, other_pred, self.labels)
            metrics[name] = {**{k: other[k] for k in ("micro_f1", "macro_f1", "cardinality")},
                             "label_f1": label_f1(self.y_test, other_pred)}
        return metrics, clf.proba_from_embeddings(self.pool_emb[unlabeled], DRAWS), fit.thresholds


def label_f1(y: np.ndarray, pred: np.ndarray) -> List[float]:
    return f1_score(y, pred, average=None, zero_division=0).round(4).tolist()


def collapses(curve: List[Dict]) -> int:
    """Label-steps whose test F1 fell from >= 0.5 to <= 0.1 between two consecutive budgets."""
    f1 = np.array([m["label_f1"] for m in curve])
    return int(((f1[:-1] >= 0.5) & (f1[1:] <= 0.1)).sum())


def summarise(curves: Dict[str, List[List[Dict]]], budgets: List[int]) -> Dict:
    out = {}
    for name, runs in curves.items():
        stats: Dict[str, object] = {"budgets": budgets}
        for key in ("micro_f1", "macro_f1", "cardinality"):
            values = np.array([[m[key]["predicted"] if key == "cardinality" else m[key] for m in run] for run in runs])
            stats[f"{key}_mean"] = values.mean(0).round(4).tolist()
            stats[f"{key}_std"] = values.std(0).round(4).tolist()
        for key in ("micro_f1", "macro_f1"):
            stats[f"aulc_{key}"] = round(float(np.mean(stats[f"{key}_mean"])), 4)
            per_run = [float(np.mean([m[key] for m in run])) for run in runs]
            stats[f"aulc_{key}_runs"] = [round(v, 4) for v in per_run]
            for variant in ("fixed_0.5", "no_fallback"):
                stats[f"aulc_{key}_{variant}"] = round(float(np.mean([[m[variant][key] for m in run] for run in runs])), 4)
        stats["collapses"] = [collapses(run) for run in runs]
        stats["collapses_fixed_0.5"] = [collapses([m["fixed_0.5"] for m in run]) for run in runs]
        stats["labeled_cardinality_mean"] = np.mean([[m["labeled_cardinality"] for m in run] for run in runs], 0).round(3).tolist()
        stats["macro_f1_drops"] = [int((np.diff([m["macro_f1"] for m in run]) < -0.02).sum()) for run in runs]
        out[name] = stats
    return out


def table(results: Dict) -> str:
    strategies = results["strategies"]
    budgets = results["budgets"]
    shown = sorted({budgets[0], budgets[min(1, len(budgets) - 1)], budgets[len(budgets) // 2], budgets[-1]})
    head = (["strategy", "AULC micro-F1", "AULC macro-F1"] + [f"micro@{b}" for b in shown] + [f"macro@{b}" for b in shown]
            + ["collapses", "macro drops", "labeled cardinality"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in sorted(strategies.items(), key=lambda kv: -kv[1]["aulc_macro_f1"]):
        cells = [name, f"{s['aulc_micro_f1']:.4f}", f"{s['aulc_macro_f1']:.4f}"]
        for key in ("micro_f1", "macro_f1"):
            for b in shown:
                i = budgets.index(b)
                cells.append(f"{s[key + '_mean'][i]:.3f} ± {s[key + '_std'][i]:.3f}")
        cells += [str(sum(s["collapses"])), str(sum(s["macro_f1_drops"])), f"{s['labeled_cardinality_mean'][-1]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", nargs="+", default=["random", "bald", "entropy", "margin", "cvirs", "cardinality", "power_bald"],
                        choices=multilabel_acquisition.HEURISTICS)
    parser.add_argument("--balance", default=multilabel.DEFAULT_BALANCE, choices=multilabel.BALANCES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--no-prior", action="store_true", help="train without the label names' prior")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    # 2 shared cores: a 500-step head took 21 s on 2 contended threads, 1.1 s on one
    torch.set_num_threads(1)
    started = time.perf_counter()
    learner = Learner(args.balance, not args.no_prior)
    budgets = list(range(args.seed_size, args.budget + 1, args.batch_size))
    everything = np.arange(len(learner.pool_emb))
    curves: Dict[str, List[List[Dict]]] = {s: [] for s in args.strategies}
    for rep in range(args.repeats):
        seed_set = cold_start.representatives(learner.pool_emb, args.seed_size, rep)
        first = learner.round(seed_set, np.setdiff1d(everything, seed_set), rep)
        for k, strategy in enumerate(args.strategies):
            rng = np.random.default_rng([rep, k])
            labeled = np.asarray(seed_set, dtype=np.int64)
            unlabeled = np.setdiff1d(everything, labeled)
            metrics, probs, thresholds = first
            curve = [metrics]
            for budget in budgets[1:]:
                picked = multilabel_acquisition.select(probs, strategy, budget - len(labeled), thresholds, learner.y_pool[labeled], rng)
                labeled = np.concatenate([labeled, unlabeled[picked]])
                unlabeled = np.setdiff1d(everything, labeled)
                metrics, probs, thresholds = learner.round(labeled, unlabeled, rep)
                curve.append(metrics)
            curves[strategy].append(curve)
            print(f"repeat {rep + 1} {strategy:12s} micro " + " ".join(f"{m['micro_f1']:.3f}" for m in curve)
                  + " | macro " + " ".join(f"{m['macro_f1']:.3f}" for m in curve), flush=True)
    results = {"dataset": learner.dataset, "balance": args.balance, "prior": not args.no_prior, "budgets": budgets, "repeats": args.repeats,
               "seed_set": "k-means representatives", "draws": DRAWS,
               "command": "python benchmarks/multilabel_sim.py " + " ".join(sys.argv[1:]),
               "seconds": round(time.perf_counter() - started), "strategies": summarise(curves, budgets)}
    out = args.out or ROOT / "benchmarks" / "results" / f"multilabel_{args.balance}{'_noprior' if args.no_prior else ''}.json"
    out.write_text(json.dumps(results, indent=1))
    print(table(results))
    print(f"wrote {out} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
