"""The first batch of a project with no labels: chosen for diversity, not by an untrained model.

An untrained classifier's "uncertainty" is noise. Instead: k-means (k = batch size) on the
encoder's L2-normalised embeddings; the text nearest each centre represents its cluster, and the
representatives of bigger clusters come first. Every other text follows, nearest-to-a-centre first.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def _clusters(emb: np.ndarray, k: int, seed: int):
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(emb)
    dist = np.linalg.norm(emb - km.cluster_centers_[km.labels_], axis=1)
    return km.labels_, dist


def clusters(emb: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Each text's k-means cluster (k clusters)."""
    return _clusters(emb, k, seed)[0]


def _pick(labels: np.ndarray, dist: np.ndarray, k: int) -> np.ndarray:
    sizes = np.bincount(labels, minlength=k)
    picks = []
    for cluster in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(labels == cluster)
        if len(members):
            picks.append(members[np.argmin(dist[members])])
    return np.array(picks, dtype=np.int64)


def representatives(emb: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of `k` diverse texts: the one nearest each k-means centre, biggest cluster first."""
    if k >= len(emb):
        return np.arange(len(emb))
    return _pick(*_clusters(emb, k, seed), k)


def prior_representatives(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of `k` texts spread over the label-name prior's classes: round after round, each
    predicted class gives its most probable text not taken yet (within a round, the classes whose
    text is most probable first). Measured, not used by the server: on CLINC150 these texts teach
    the head less than the k-means representatives (the prior already knows them)."""
    pred, conf = probs.argmax(1), probs.max(1)
    members = [np.flatnonzero(pred == c) for c in range(probs.shape[1])]
    members = [m[np.argsort(-conf[m], kind="stable")] for m in members if len(m)]
    picks: list = []
    for depth in range(max((len(m) for m in members), default=0)):
        layer = [m[depth] for m in members if len(m) > depth]
        picks += sorted(layer, key=lambda i: -conf[i])
        if len(picks) >= k:
            break
    return np.array(picks[:k], dtype=np.int64)


def cluster_margin_representatives(emb: np.ndarray, probs: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of `k` texts: in each k-means cluster, the one the prior is least sure of (the
    smallest margin between its two most probable classes), biggest cluster first. Measured, not
    used by the server (below the plain k-means representatives on CLINC150)."""
    if k >= len(emb):
        return np.arange(len(emb))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return _pick(_clusters(emb, k, seed)[0], top2[:, 1] - top2[:, 0], k)


NEUTRAL = 0.5  # a score that ranks a task neither first nor last


def diversity_scores(emb: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Rank scores in [0, 1], lowest = label first: the k-means representatives below 0.5, the
    rest above, nearest to a centre first. With no more texts than `k` there is nothing to rank
    against: all neutral (one task asked alone is not "label me first")."""
    n = len(emb)
    if n <= k:
        return np.full(n, NEUTRAL)
    labels, dist = _clusters(emb, k, seed)
    reps = _pick(labels, dist, k)
    scores = 0.5 + 0.5 * (dist - dist.min()) / max(dist.max() - dist.min(), 1e-12)
    scores[reps] = 0.5 * np.arange(len(reps)) / len(reps)
    return scores
