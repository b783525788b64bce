"""Active-learning simulation: does labeling by uncertainty save labels on this data set?

It replays the server's loop with an oracle: label a seed set, train with the server's own code
(`training`), score the unlabeled pool with MC-Dropout (`model`), pick the next batch with the
server's heuristics (`acquisition`), repeat up to the budget; measure on a test set each round.
"""
from __future__ import annotations

import math
from dataclasses import replace
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
from .settings import MODE_DEFAULTS
from .simulation_config import COLD_STARTS, SimulationConfig
from .simulation_results import summarise, summarise_checks
from .training import TrainConfig, finetune, fit_head, head_config, train_head_on_embeddings


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
