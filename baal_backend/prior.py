"""The label-name prior: zero-shot class probabilities from the label config's own words.

Each choice is described by its value (`book_flight` -> "book flight") and, when the config
gives one, its `hint`; the encoder embeds each description, and a text's logit for a
class is `scale * cosine(text, class)`. Before any label, `DEFAULT_SCALE` (measured on CLINC150
and BBC News, `benchmarks/prior_probe.py`) calibrates it. From the first labels on, the scale
is fitted to them by likelihood (`fit_scale`): the prior never saw those labels, so this is an
honest out-of-sample measure, and cryptic or misleading names get a scale near 0, i.e. no prior.

From the first labels on, the prototypes are also refined (`refined`): each becomes the
name plus its labeled texts, then the unlabeled pool pulls them to where the class's texts
really are (a few rounds of soft k-means seeded by the prototypes: the semi-supervised prototypes
of Ren et al., 2018). On CLINC150 with 150 k-means labels this lifts the head from 0.758 to 0.848
(`benchmarks/prior_refinement.py`).

The head then learns on top of the prior (the prior's logits are a fixed offset of its own, see
`training.train_mc_head`): with few labels the prediction is mostly the prior, with many the
head corrects it wherever the names mislead.

A multi-label question's prior (`MultiLabelPrior`) gives each label a sigmoid logit of its own,
the same scaled cosine plus a per-label bias, under `multilabel`'s sigmoid head. Its prototypes
are the names' alone: soft k-means gives each text one class, and a multi-label text has several.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .encoder import Encoder

#: The scale used before any label: the one that maximises the prior's likelihood on CLINC150's
#: and BBC News' test sets, rounded (`benchmarks/prior_probe.py`).
DEFAULT_SCALE = 25.0
#: The scales `fit_scale` chooses from; 0 switches the prior off.
SCALES = (0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0)
#: Soft k-means rounds over the unlabeled pool in `refined` (1 -> 3 rounds: CLINC150 at 150
#: labels 0.839 -> 0.852; 10 rounds add nothing).
REFINE_ROUNDS = 3


def describe(name: str) -> str:
    """A choice value as words: `book_flight` / `bookFlight` / `book-flight` -> "book flight"."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return re.sub(r"[_\-./]+", " ", words).strip() or name


@dataclass(frozen=True)
class LabelPrior:
    """Unit-length class prototypes [classes, dim] and the scale of the logits."""

    prototypes: np.ndarray
    scale: float = DEFAULT_SCALE

    @classmethod
    def of(cls, encoder: Encoder, labels: Sequence[str], descriptions: Sequence[Sequence[str]] = ()) -> "LabelPrior":
        """Prototypes from the choices' words: the mean of the embeddings of the value and the
        `descriptions` (the hint) each choice has, renormalised."""
        words = [[describe(label), *extra] for label, extra in zip(labels, descriptions or [()] * len(labels))]
        emb = encoder.embed([w for group in words for w in group])  # one batched pass for every choice
        ends = np.cumsum([len(group) for group in words])
        means = np.stack([part.mean(0) for part in np.split(emb, ends[:-1])])
        return cls(unit(means))

    def named(self) -> np.ndarray:
        """Indices of the classes with a prototype (an empty one, all zeros, teaches nothing)."""
        return np.flatnonzero(np.linalg.norm(self.prototypes, axis=1) > 0)

    def logits(self, emb: np.ndarray) -> np.ndarray:
        """[n, classes] logits of unit-length embeddings."""
        return (self.scale * (np.asarray(emb, dtype=np.float32) @ self.prototypes.T)).astype(np.float32)

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        return softmax(self.logits(emb))

    def with_scale(self, scale: float) -> "LabelPrior":
        return LabelPrior(self.prototypes, float(scale))

    def fit_scale(self, emb: np.ndarray, y: np.ndarray) -> "LabelPrior":
        """The scale in `SCALES` under which the labels are most likely (0: the names do not help)."""
        cos = np.asarray(emb, dtype=np.float32) @ self.prototypes.T
        best = max(SCALES, key=lambda s: float(log_softmax(s * cos)[np.arange(len(y)), y].mean()))
        return self.with_scale(best)

    def refined(self, emb: np.ndarray, y: np.ndarray, pool: np.ndarray, rounds: int = REFINE_ROUNDS) -> "LabelPrior":
        """Prototypes that also know the labels `y` of `emb` and the unlabeled `pool`: each class
        starts as its name plus the sum of its labeled embeddings (the name left out when the
        labels say it does not help, i.e. its fitted scale is 0); then `rounds` times every pool
        text adds itself to each class in proportion to its probability. A class with neither a
        usable name nor a label stays empty (a zero prototype: logit 0, never a made-up cluster).
        The scale is fitted to the labels with each one left out of its own prototype."""
        emb = np.asarray(emb, dtype=np.float32)
        base = np.zeros_like(self.prototypes)
        np.add.at(base, y, emb)
        if self.fit_scale(emb, y).scale > 0:
            base += self.prototypes
        known = np.linalg.norm(base, axis=1) > 0
        sums = base
        pool = np.asarray(pool, dtype=np.float32).reshape(-1, base.shape[1])
        for _ in range(rounds if len(pool) else 0):
            logits = DEFAULT_SCALE * (pool @ unit(sums).T)
            logits[:, ~known] = -np.inf
            sums = base + softmax(logits).T @ pool
        return LabelPrior(unit(sums), held_out_scale(emb, y, sums))


def held_out_scale(emb: np.ndarray, y: np.ndarray, sums: np.ndarray) -> float:
    """The scale in `SCALES` under which the labels are most likely, each label's own embedding
    taken out of its class's (unnormalised) prototype `sums`: inside it, a label looks easier
    than a new text, and the scale would come out too confident."""
    rows = np.arange(len(y))
    cos = emb @ unit(sums).T
    without = sums[y] - emb
    cos[rows, y] = (emb * without).sum(1) / np.maximum(np.linalg.norm(without, axis=1), 1e-12)
    return float(max(SCALES, key=lambda s: float(log_softmax(s * cos)[rows, y].mean())))


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); a zero row stays zero."""
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def better_than_chance(correct: int, n: int, n_classes: int, alpha: float = 0.01) -> bool:
    """A one-sided binomial test: is `correct` out of `n` more than guessing among `n_classes`?"""
    if n == 0:
        return False
    from scipy.stats import binomtest

    return binomtest(correct, n, 1.0 / n_classes, alternative="greater").pvalue < alpha


def prior_offset(prior: Optional[LabelPrior], emb: np.ndarray) -> Optional[np.ndarray]:
    """The prior's logits as a head's offset, or None without a prior (or with scale 0)."""
    if prior is None or prior.scale == 0:
        return None
    return prior.logits(emb)




#: How far a multi-label prior's label bias may stray from the bias shared by all labels: the
#: curvature of a Gaussian penalty on the difference (one text at p = 0.5 adds 0.25), so a label
#: with no positive yet gets a finite bias a little under the shared one. On the constructed
#: CLINC150 set (20 and 60 random labels, 2 seeds) 0.1, 1 and 10 gave the same micro-F1 (+-0.01).
BIAS_STRENGTH = 1.0


@dataclass(frozen=True)
class MultiLabelPrior(LabelPrior):
    """The label-name prior of a multi-label question: each label on its own (a sigmoid), its
    logit `scale * cosine(text, label) + bias[label]`. The scale is `fit_scale`'s on the pairs
    (text, one of its labels): how well the names pick a text's labels among all, 0 for names that
    do not (then there is no prior). The biases put each label's 0.5 where the labels say: a
    softmax needs none, but a sigmoid of `scale * cosine` alone calls almost every label present."""

    bias: Optional[np.ndarray] = None  # [labels]; None: 0

    @classmethod
    def fitted(cls, prototypes: np.ndarray, emb: np.ndarray, y: np.ndarray) -> "MultiLabelPrior":
        """The prior of these label names under the labels `y` [n, labels] (0/1) of `emb`."""
        emb, y = np.asarray(emb, dtype=np.float32), np.asarray(y, dtype=np.float32)
        rows, labels = np.nonzero(y > 0)
        scale = LabelPrior(prototypes).fit_scale(emb[rows], labels).scale if len(rows) else 0.0
        return cls(prototypes, scale, sigmoid_biases(scale * (emb @ prototypes.T), y))

    def logits(self, emb: np.ndarray) -> np.ndarray:
        out = super().logits(emb)
        return out if self.bias is None else (out + self.bias[None, :]).astype(np.float32)


def sigmoid_biases(logits: np.ndarray, y: np.ndarray, strength: float = BIAS_STRENGTH) -> np.ndarray:
    """Per label, the bias [labels] under which `sigmoid(logits + bias)` is most likely to give
    the 0/1 labels `y` [n, labels], pulled towards the one bias most likely for every label
    together by a Gaussian penalty of curvature `strength`, so that a label without a positive
    (or without a negative) gets a finite bias. Both by bisection: the gradients grow with the bias."""
    if len(y) == 0:
        return np.zeros(logits.shape[1], dtype=np.float32)
    shared = _increasing_root(lambda b: (sigmoid(logits + b) - y).sum(), 1)[0]
    return _increasing_root(lambda b: (sigmoid(logits + b) - y).sum(0) + strength * (b - shared),
                            logits.shape[1]).astype(np.float32)


def _increasing_root(gradient, size: int, bound: float = 50.0, steps: int = 60) -> np.ndarray:
    """The root in [-bound, bound] of each of `size` increasing functions, evaluated together."""
    low, high = np.full(size, -bound), np.full(size, bound)
    for _ in range(steps):
        mid = (low + high) / 2
        up = gradient(mid) > 0
        high, low = np.where(up, mid, high), np.where(up, low, mid)
    return (low + high) / 2


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow warning for very negative logits
