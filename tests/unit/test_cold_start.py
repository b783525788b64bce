import numpy as np

from baal_backend.cold_start import diversity_scores, representatives


def _blobs():
    """Three tight, well-separated clusters of 30, 20 and 10 points."""
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    sizes = [30, 20, 10]
    emb = np.concatenate([c + rng.normal(scale=0.1, size=(n, 8)) for c, n in zip(centres, sizes)])
    owner = np.repeat([0, 1, 2], sizes)
    return emb.astype(np.float32), owner


def test_one_representative_per_cluster_biggest_first():
    emb, owner = _blobs()
    reps = representatives(emb, 3)
    assert list(owner[reps]) == [0, 1, 2]
    # each representative is the member nearest its cluster's mean
    for r in reps:
        members = emb[owner == owner[r]]
        assert np.argmin(np.linalg.norm(members - members.mean(0), axis=1)) == np.flatnonzero(owner == owner[r]).tolist().index(r)


def test_random_seed_sets_miss_small_clusters_kmeans_does_not():
    emb, owner = _blobs()
    assert set(owner[representatives(emb, 3)]) == {0, 1, 2}
    rng = np.random.default_rng(1)
    misses = sum(len(set(owner[rng.choice(60, 3, replace=False)])) < 3 for _ in range(200))
    assert misses > 100  # a random 3 of 60 usually misses a cluster


def test_diversity_scores_put_representatives_first():
    emb, owner = _blobs()
    scores = diversity_scores(emb, 3)
    first = np.argsort(scores)[:3]
    assert set(owner[first]) == {0, 1, 2}
    assert np.all(scores[first] < 0.5) and np.sum(scores < 0.5) == 3
    assert np.all((scores >= 0) & (scores <= 1))


def test_fewer_texts_than_clusters():
    emb = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    assert list(representatives(emb, 10)) == [0, 1, 2, 3]
    assert np.all(diversity_scores(emb, 10) == 0.5)  # nothing to rank against: neutral, not positional
