"""Active-learning simulation: does labeling by uncertainty save labels on this data set?

It replays the server's loop with an oracle: label a seed set, train with the server's own code
(`training`), score the unlabeled pool with MC-Dropout (`model`), pick the next batch with the
server's heuristics (`acquisition`), repeat up to the budget; measure on a test set each round.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from . import acquisition, cold_start, stopping
from .data import TextDataset
from .encoder import Encoder
from .model import HeadClassifier
from .prior import LabelPrior
from .settings import HEURISTICS, MODE_DEFAULTS
from .training import TrainConfig, finetune, fit_head, head_config, train_head_on_embeddings


COLD_STARTS = ("kmeans", "random", "prior", "kmeans-margin")


@dataclass
class SimulationConfig:
    strategies: List[str] = field(default_factory=lambda: ["random", "bald", "entropy", "margin", "power_bald"])
    seed_size: int = 10
    batch_size: int = 10
    budget: int = 200
    repeats: int = 3
    mode: str = "head"
    model: str = ""
    cold_start: str = "kmeans"
    mc: str = "head"
    num_draws: int = 20
    max_length: int = 128
    seed: int = 0
    prior: bool = True
    flip: float = 0.0  # this fraction of the oracle's labels is wrong (the suspicious-label check)
    clusters: bool = False  # also run each strategy through Label Studio's cluster-aware sampler

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in HEURISTICS]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(HEURISTICS)}")
        if not 0 < self.seed_size <= self.budget or self.batch_size < 1 or self.repeats < 1:
            raise ValueError("need 0 < seed-size <= budget, batch-size >= 1 and repeats >= 1")
        if self.cold_start not in COLD_STARTS:
            raise ValueError(f"cold start must be one of {', '.join(COLD_STARTS)}")
        if self.cold_start in ("prior", "kmeans-margin") and not self.prior:
            raise ValueError(f"cold start {self.cold_start!r} needs the label-name prior (--prior on)")
        if self.mc not in ("head", "full"):
            raise ValueError("mc must be 'head' (the server's path) or 'full' (dropout in the whole network)")
        if not 0 <= self.flip < 1:
            raise ValueError("flip is the fraction of wrong labels, in [0, 1)")
        if self.mc == "full" and self.mode != "head":
            raise ValueError("mc 'full' is implemented for head mode")

    @property
    def budgets(self) -> List[int]:
        steps = math.ceil((self.budget - self.seed_size) / self.batch_size)
        return [min(self.seed_size + i * self.batch_size, self.budget) for i in range(steps + 1)]


class _Learner:
    """Train-and-score with the server's code, on cached embeddings in head mode."""

    def __init__(self, cfg: SimulationConfig, pool: TextDataset, test: TextDataset, labels: Sequence[str]):
        self.cfg = cfg
        self.labels = list(labels)
        index = {label: i for i, label in enumerate(self.labels)}
        self.pool_texts, self.test_texts = pool.texts, test.texts
        self.y_true = np.array([index[y] for y in pool.labels])
        self.y_test = np.array([index[y] for y in test.labels])
        # the oracle: wrong for a `flip` fraction of the pool (each flipped to another class)
        rng = np.random.default_rng(cfg.seed + 99)
        self.flipped = rng.random(len(self.y_true)) < cfg.flip
        shift = rng.integers(1, len(self.labels), len(self.y_true)) if len(self.labels) > 1 else 0
        self.y_pool = np.where(self.flipped, (self.y_true + shift) % len(self.labels), self.y_true)
        self.train_cfg = TrainConfig(mode=cfg.mode, **MODE_DEFAULTS[cfg.mode], max_length=cfg.max_length,
                                     num_draws=cfg.num_draws, seed=cfg.seed, prior=cfg.prior)
        self.encoder = Encoder(cfg.model, max_length=cfg.max_length)
        self.pool_emb = self.encoder.embed(self.pool_texts)
        self.test_emb = self.encoder.embed(self.test_texts)
        self.prior = LabelPrior.of(self.encoder, self.labels) if cfg.prior else None
        self.stop_set = np.sort(stopping.hash_order(range(len(self.pool_texts)))[:stopping.STOP_SET])

    def zero_labels(self) -> Dict[str, Optional[float]]:
        """Test metrics before any label: the label-name prior's (None without it)."""
        if self.prior is None:
            return {"accuracy": None, "macro_f1": None}
        return self._metrics(self.prior.probabilities(self.test_emb))

    def fit_and_score(self, labeled: np.ndarray, candidates: np.ndarray, seed: int = 0):
        """(test metrics, MC probabilities of the candidates); `seed`: this repeat's training seed."""
        self.train_cfg = replace(self.train_cfg, seed=seed)
        y = self.y_pool[labeled]
        unlabeled = np.setdiff1d(np.arange(len(self.pool_emb)), labeled)  # what the server's pool holds

        def head() -> HeadClassifier:  # head mode's classifier, fine-tune mode's warm start
            return train_head_on_embeddings(self.encoder, self.labels, self.pool_emb[labeled], y,
                                            head_config(self.train_cfg), self.prior, self.pool_emb[unlabeled])

        if self.cfg.mode == "head":
            clf = head()
            test_probs = clf.proba_from_embeddings(self.test_emb, self.cfg.num_draws)
            if self.cfg.mc == "full":
                cand_probs = self._full_mc(clf, candidates)
            else:
                cand_probs = clf.proba_from_embeddings(self.pool_emb[candidates], self.cfg.num_draws)
        else:
            clf = finetune(self.cfg.model, self.labels, [self.pool_texts[i] for i in labeled], y, self.train_cfg, head)
            test_probs = clf.predict_proba(self.test_texts, self.cfg.num_draws)
            cand_probs = clf.predict_proba([self.pool_texts[i] for i in candidates], self.cfg.num_draws)
        return self._metrics(test_probs.mean(-1)), cand_probs

    def suspicious_precision(self, labeled: np.ndarray, seed: int) -> Dict[str, Optional[float]]:
        """The server's suspicious-label list (`fit_head`'s out-of-fold probabilities) for these
        labels: precision at k of the flagged list against the labels the oracle got wrong."""
        y = self.y_pool[labeled]
        cfg = replace(head_config(self.train_cfg), seed=seed)  # the server's suspicious list comes from its head
        unlabeled = np.setdiff1d(np.arange(len(self.pool_emb)), labeled)
        fit = fit_head(self.pool_emb[labeled], y, labeled, len(self.labels), cfg,
                       self.prior.prototypes if self.prior is not None else None, self.pool_emb[unlabeled])
        order = np.argsort(fit.out_of_fold[np.arange(len(y)), y], kind="stable")  # least probable label first
        wrong = self.flipped[labeled][order]
        out: Dict[str, Optional[float]] = {"wrong_labels": int(wrong.sum()), "labels": int(len(y))}
        for key, k in (("precision_at_10", 10), ("precision_at_50", 50), ("precision_at_wrong", int(wrong.sum()))):
            out[key] = float(wrong[:k].mean()) if k else None
        return out

    def stop_predictions(self, unlabeled: np.ndarray, probs: np.ndarray) -> Dict[str, list]:
        """The stop set's unlabeled texts and their predicted classes (for `stopping.signal`)."""
        ids = np.intersect1d(self.stop_set, unlabeled)
        rows = np.searchsorted(unlabeled, ids)
        return {"stop_ids": ids.tolist(), "stop_pred": probs[rows].mean(-1).argmax(1).tolist()}

    def _metrics(self, test_probs: np.ndarray) -> Dict[str, float]:
        pred = test_probs.argmax(1)
        return {
            "accuracy": float(accuracy_score(self.y_test, pred)),
            "macro_f1": float(f1_score(self.y_test, pred, average="macro", zero_division=0)),
        }

    def _full_mc(self, clf, candidates: np.ndarray) -> np.ndarray:
        """Each draw: the body with its dropout on, then one head draw."""
        texts = [self.pool_texts[i] for i in candidates]
        draws = self.encoder.dropout_draws(texts, self.cfg.num_draws)
        return np.concatenate([clf.proba_from_embeddings(emb, 1) for emb in draws], axis=2)

    def seed_set(self, rule: str, rng: np.random.Generator, seed: int) -> np.ndarray:
        k = self.cfg.seed_size
        if rule == "kmeans":
            return cold_start.representatives(self.pool_emb, k, seed)
        if rule == "prior":
            return cold_start.prior_representatives(self._pool_prior(), k)
        if rule == "kmeans-margin":
            return cold_start.cluster_margin_representatives(self.pool_emb, self._pool_prior(), k, seed)
        return rng.choice(len(self.pool_texts), k, replace=False)

    def _pool_prior(self) -> np.ndarray:
        if self.prior is None:
            raise ValueError("this cold start needs the label-name prior (--prior on)")
        return self.prior.probabilities(self.pool_emb)


def split_test(pool: TextDataset, fraction: float, seed: int):
    """A stratified test slice when the data set has no test split."""
    idx = np.arange(len(pool))
    counts = np.unique(pool.labels, return_counts=True)[1]
    stratify = pool.labels if counts.min() >= 2 else None
    train, test = train_test_split(idx, test_size=fraction, stratify=stratify, random_state=seed)

    def take(rows, name):
        return TextDataset(name, [pool.texts[i] for i in rows], [pool.labels[i] for i in rows])

    return take(train, pool.name), take(test, f"{pool.name}-test")


def first_classes(pool: TextDataset, test: TextDataset, n: int) -> Tuple[TextDataset, TextDataset]:
    """Only the texts of the first `n` classes (sorted by name), e.g. a 10-intent CLINC150."""
    keep = set(sorted(set(pool.labels))[:n])

    def subset(data: TextDataset) -> TextDataset:
        rows = [(t, y) for t, y in zip(data.texts, data.labels) if y in keep]
        return TextDataset(f"{data.name}-{n}", [t for t, _ in rows], [y for _, y in rows])

    return subset(pool), subset(test)


def cryptic(pool: TextDataset, test: TextDataset, seed: int = 0) -> Tuple[TextDataset, TextDataset]:
    """The same data with each class renamed to a meaningless code (`K07`), the same code in
    both splits (codes follow a seeded shuffle of the sorted class names)."""
    classes = sorted(set(pool.labels) | set(test.labels))
    order = np.random.default_rng(seed).permutation(len(classes))
    code = {c: f"K{int(k):02d}" for c, k in zip(classes, order)}

    def renamed(data: TextDataset) -> TextDataset:
        return TextDataset(f"{data.name}-cryptic", list(data.texts), [code[y] for y in data.labels])

    return renamed(pool), renamed(test)


def simulate(pool: TextDataset, test: TextDataset, cfg: SimulationConfig, progress: bool = True) -> Dict:
    """Run every strategy `repeats` times; return results in the `results.json` shape."""
    labels = sorted(set(pool.labels) | set(test.labels))
    learner = _Learner(cfg, pool, test, labels)
    budgets = cfg.budgets
    runs = list(cfg.strategies) + ([s + SPREAD for s in cfg.strategies if s != "random"] if cfg.clusters else [])
    curves: Dict[str, List[List[Dict[str, float]]]] = {s: [] for s in runs}
    stops: Dict[str, List[Optional[int]]] = {s: [] for s in runs}
    suspects: Dict[str, List[Dict]] = {s: [] for s in runs}
    cold: Dict[str, List[float]] = {}
    total = cfg.repeats * (len(runs) * (len(budgets) - 1) + 2)
    bar = tqdm(total=total, desc="simulate", disable=not progress, unit="round")
    everything = np.arange(len(pool))
    for rep in range(cfg.repeats):
        seed = cfg.seed + rep
        seed_set = learner.seed_set(cfg.cold_start, np.random.default_rng(seed), seed)
        # the cold-start rule against the others, same number of labels
        for other in COLD_STARTS:
            if other != cfg.cold_start and (learner.prior is not None or other in ("kmeans", "random")):
                other_set = learner.seed_set(other, np.random.default_rng(seed + 10_000), seed)
                cold.setdefault(other, []).append(learner.fit_and_score(other_set, other_set[:0], seed)[0]["accuracy"])
        # the seed round is the same for every strategy: train it once
        first_unlabeled = np.setdiff1d(everything, seed_set)
        first_metrics, first_probs = learner.fit_and_score(seed_set, first_unlabeled, seed)
        cold.setdefault(cfg.cold_start, []).append(first_metrics["accuracy"])
        bar.update(2)
        clusters = cold_start.clusters(learner.pool_emb, cluster_count(len(pool)), seed) if cfg.clusters else None
        for k, name in enumerate(runs):
            strategy, spread = name.split("+")[0], name.endswith(SPREAD)
            bar.set_postfix(repeat=rep + 1, strategy=name)
            rng = np.random.default_rng([seed, k])
            labeled, unlabeled, probs = np.asarray(seed_set, dtype=np.int64), first_unlabeled, first_probs
            curve = [{**first_metrics, "labels": len(labeled)}]
            history = [{"n_labels": len(labeled), **learner.stop_predictions(unlabeled, probs)}]
            stopped_at = None
            for budget in budgets[1:]:
                if spread:
                    solved = np.bincount(clusters[labeled], minlength=clusters.max() + 1)
                    picked = acquisition.select_spread(probs, strategy, budget - len(labeled), clusters[unlabeled], solved, rng)
                else:
                    picked = acquisition.select(probs, strategy, budget - len(labeled), rng)
                labeled = np.concatenate([labeled, unlabeled[picked]])
                unlabeled = np.setdiff1d(everything, labeled)
                metrics, probs = learner.fit_and_score(labeled, unlabeled, seed)
                curve.append({**metrics, "labels": len(labeled)})
                history.append({"n_labels": len(labeled), **learner.stop_predictions(unlabeled, probs)})
                if stopped_at is None and stopping.signal(history, cfg.batch_size)["stop"]:
                    stopped_at = len(labeled)
                bar.update()
            curves[name].append(curve)
            stops[name].append(stopped_at)
            if cfg.flip:
                suspects[name].append(learner.suspicious_precision(labeled, seed))
    bar.close()
    results = summarise(pool.name, len(labels), cfg, budgets, curves, cold)
    summarise_checks(results, stops, suspects)
    return {**results, "zero_labels": learner.zero_labels()}


SPREAD = "+clusters"


def cluster_count(n: int) -> int:
    """k-means clusters for Label Studio's sampler: about sqrt(n / 2), between 2 and 100."""
    return int(min(100, max(2, round(math.sqrt(n / 2)))))


def summarise_checks(results: Dict, stops: Dict[str, List[Optional[int]]], suspects: Dict[str, List[Dict]]) -> None:
    """Add each strategy's stopping point (labels, accuracy there, the final accuracy and what
    random sampling had reached with as many labels) and suspicious-label precision."""
    strategies = results["strategies"]
    random = strategies.get("random")
    for name, at in stops.items():
        stats = strategies[name]
        fired = [a for a in at if a is not None]
        entry: Dict[str, object] = {"fired": f"{len(fired)} of {len(at)} repeats",
                                    "final_accuracy": stats["accuracy_mean"][-1]}
        if fired:
            at_budget = min(stats["budgets"], key=lambda b: abs(b - np.mean(fired)))
            i = stats["budgets"].index(at_budget)
            entry.update(labels_mean=float(np.mean(fired)), labels=sorted(fired), accuracy_at_stop=stats["accuracy_mean"][i],
                         random_accuracy_at_stop=random["accuracy_mean"][i] if random else None, budget_nearest=at_budget)
        stats["stopping"] = entry
        if suspects[name]:
            keys = [k for k in suspects[name][0] if k.startswith("precision")]
            stats["suspicious"] = {k: (float(np.mean(v)) if v else None)
                                   for k in keys for v in [[s[k] for s in suspects[name] if s[k] is not None]]}
            stats["suspicious"]["wrong_labels_mean"] = float(np.mean([s["wrong_labels"] for s in suspects[name]]))


def summarise(dataset: str, n_classes: int, cfg: SimulationConfig, budgets: List[int],
              curves: Dict[str, List[List[Dict[str, float]]]], cold: Dict[str, List[float]]) -> Dict:
    strategies = {}
    for name, runs in curves.items():
        acc = np.array([[m["accuracy"] for m in run] for run in runs])
        f1 = np.array([[m["macro_f1"] for m in run] for run in runs])
        strategies[name] = {
            "budgets": budgets,
            "accuracy_mean": acc.mean(0).tolist(),
            "accuracy_std": acc.std(0).tolist(),
            "macro_f1_mean": f1.mean(0).tolist(),
            "aulc": aulc(acc.mean(0)),
        }
    random_final = strategies["random"]["accuracy_mean"][-1] if "random" in strategies else None
    for stats in strategies.values():
        stats["labels_to_match_random"] = labels_to_match(stats["budgets"], stats["accuracy_mean"], random_final)
    return {
        "dataset": dataset,
        "n_classes": n_classes,
        "mode": cfg.mode,
        "config": asdict(cfg),
        "cold_start": {k: {"accuracy_mean": float(np.mean(v)), "accuracy_std": float(np.std(v)), "labels": cfg.seed_size}
                       for k, v in cold.items() if v},
        "strategies": strategies,
    }


def aulc(accuracy_mean: Sequence[float]) -> float:
    """Area under the learning curve: the mean accuracy over the budgets."""
    return float(np.mean(accuracy_mean))


def labels_to_match(budgets: Sequence[int], accuracy_mean: Sequence[float], target: Optional[float]) -> Optional[int]:
    """The smallest budget whose mean accuracy reaches `target` (random's final accuracy), or None."""
    if target is None:
        return None
    for budget, acc in zip(budgets, accuracy_mean):
        if acc >= target - 1e-12:
            return int(budget)
    return None


def write_outputs(results: Dict, out: Path) -> None:
    """results.json, results.md and learning_curves.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(results_table(results))
    plot_curves(results, out / "learning_curves.png")


def results_table(results: Dict) -> str:
    strategies = results["strategies"]
    budgets = next(iter(strategies.values()))["budgets"]
    shown = sorted({budgets[0], budgets[len(budgets) // 2], budgets[-1]})
    head = ["strategy", "AULC"] + [f"acc@{b}" for b in shown] + ["labels to match random"]
    lines = [f"# {results['dataset']}: {results['n_classes']} classes, mode {results['mode']}, MC-Dropout in the {results['config'].get('mc', 'head')}, "
             f"{results['config']['repeats']} repeats (mean ± std)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in sorted(strategies.items(), key=lambda kv: -kv[1]["aulc"]):
        cells = [name, f"{s['aulc']:.4f}"]
        for b in shown:
            i = s["budgets"].index(b)
            cells.append(f"{s['accuracy_mean'][i]:.4f} ± {s['accuracy_std'][i]:.4f}")
        cells.append(str(s["labels_to_match_random"]) if s["labels_to_match_random"] is not None
                     else "not reached" if "random" in strategies else "- (no random run)")
        lines.append("| " + " | ".join(cells) + " |")
    stops = [(n, st["stopping"]) for n, st in strategies.items() if st.get("stopping")]
    if stops:
        lines += ["", "Stopping signal (stabilizing predictions, kappa >= 0.99 for 2 windows): where it fired", ""]
        for name, st in stops:
            if "labels_mean" in st:
                rand = st["random_accuracy_at_stop"]
                lines.append(f"- {name}: {st['fired']}, at {st['labels_mean']:.0f} labels (mean), mean accuracy at the "
                             f"nearest budget {st['accuracy_at_stop']:.4f} (final {st['final_accuracy']:.4f}"
                             + (f"; random at {st['budget_nearest']} labels: {rand:.4f})" if rand is not None else ")"))
            else:
                lines.append(f"- {name}: {st['fired']} (final accuracy {st['final_accuracy']:.4f})")
    flagged = [(n, st["suspicious"]) for n, st in strategies.items() if st.get("suspicious")]
    if flagged:
        lines += ["", f"Suspicious labels ({results['config']['flip']:.0%} of the oracle's labels wrong), at the final "
                      "budget: precision of the flagged list", ""]
        for name, sp in flagged:
            fmt = {k: "-" if sp[k] is None else f"{sp[k]:.3f}" for k in ("precision_at_10", "precision_at_50", "precision_at_wrong")}
            lines.append(f"- {name}: {sp['wrong_labels_mean']:.0f} wrong labels; precision@10 {fmt['precision_at_10']}, "
                         f"@50 {fmt['precision_at_50']}, @(number wrong) {fmt['precision_at_wrong']}")
    zero = results.get("zero_labels") or {}
    if zero.get("accuracy") is not None:
        lines += ["", f"At 0 labels (the label-name prior): accuracy {zero['accuracy']:.4f}, macro-F1 {zero['macro_f1']:.4f}"]
    if results.get("cold_start"):
        lines += ["", "Cold start (first batch, before any model): accuracy after training on it", ""]
        for rule, c in results["cold_start"].items():
            lines.append(f"- {rule}: {c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f} ({c['labels']} labels)")
    return "\n".join(lines) + "\n"


def plot_curves(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in results["strategies"].items():
        mean, std = np.array(s["accuracy_mean"]), np.array(s["accuracy_std"])
        ax.plot(s["budgets"], mean, label=f"{name} (AULC {s['aulc']:.3f})", linestyle="--" if name == "random" else "-")
        ax.fill_between(s["budgets"], mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{results['dataset']} ({results['n_classes']} classes, {results['mode']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
