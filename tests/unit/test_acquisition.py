import numpy as np
import pytest

from baal_backend.acquisition import informativeness, prediction_scores, raw_uncertainty, select
from baal_backend.settings import HEURISTICS


def _probs(n_classes: int, draws: int = 20, seed: int = 0) -> np.ndarray:
    """Three texts: confident and consistent; uncertain but consistent; draws that disagree."""
    rng = np.random.default_rng(seed)
    confident = np.full((n_classes, draws), 0.01 / (n_classes - 1))
    confident[0] = 0.99
    flat = np.full((n_classes, draws), 1.0 / n_classes)
    disagree = np.zeros((n_classes, draws))
    disagree[rng.integers(0, n_classes, draws), np.arange(draws)] = 1.0
    disagree = 0.9 * disagree + 0.1 / n_classes
    return np.stack([confident, flat, disagree])


@pytest.mark.parametrize("n_classes", [2, 150])
def test_bald_ranks_disagreement_first(n_classes):
    u = informativeness(_probs(n_classes), "bald")
    assert u.shape == (3,) and np.all((u >= 0) & (u <= 1))
    assert u[2] > u[1] and u[2] > u[0]
    assert u[1] == pytest.approx(0.0, abs=1e-9)  # consistent draws: no epistemic uncertainty


@pytest.mark.parametrize("n_classes", [2, 150])
@pytest.mark.parametrize("heuristic", ["entropy", "margin", "least_confidence"])
def test_total_uncertainty_heuristics_rank_confident_last(n_classes, heuristic):
    u = informativeness(_probs(n_classes), heuristic)
    assert np.all((u >= 0) & (u <= 1 + 1e-9))
    assert u[0] < u[1] and u[0] < u[2]


@pytest.mark.parametrize("n_classes", [2, 150])
@pytest.mark.parametrize("heuristic", HEURISTICS)
def test_rank_score_is_lowest_for_most_informative(n_classes, heuristic):
    probs = _probs(n_classes)
    u = informativeness(probs, heuristic, np.random.default_rng(1))
    score = prediction_scores(probs, heuristic, "rank", np.random.default_rng(1))
    assert np.all((score >= 0) & (score <= 1))
    # identical randomness: the order of scores is exactly the reverse of informativeness
    assert list(np.argsort(score)) == list(np.argsort(-u))


def test_uncertainty_mode_is_raw_and_highest_first():
    probs = _probs(4)
    raw = prediction_scores(probs, "bald", "uncertainty")
    assert raw == pytest.approx(raw_uncertainty(probs, "bald"))
    assert raw == pytest.approx(informativeness(probs, "bald") * np.log(4))
    assert raw.argmax() == 2


def test_margin_score_is_the_margin():
    p = np.array([[0.7, 0.3], [0.55, 0.45]])[:, :, None].repeat(3, axis=2)
    assert prediction_scores(p, "margin", "rank") == pytest.approx([0.4, 0.1])


def test_power_variant_samples_proportionally_to_uncertainty():
    # two texts with informativeness 0.8 and 0.2: power sampling picks the first 80% of the time
    p = np.array([[0.6, 0.4], [0.9, 0.1]])[:, :, None]
    u = informativeness(p, "margin")
    rng = np.random.default_rng(0)
    first = np.mean([select(p, "power_margin", 1, rng)[0] == 0 for _ in range(4000)])
    assert first == pytest.approx(u[0] / u.sum(), abs=0.03)


def test_select_top_k_and_random_is_uniform():
    probs = _probs(5)
    assert list(select(probs, "entropy", 2)) == [1, 2]
    rng = np.random.default_rng(0)
    counts = np.bincount([select(probs, "random", 1, rng)[0] for _ in range(3000)], minlength=3)
    assert counts.min() > 900


def test_rejects_wrong_shape_and_unknown_heuristic():
    with pytest.raises(ValueError, match="n, classes, draws"):
        informativeness(np.ones((3, 2)), "bald")
    with pytest.raises(ValueError, match="unknown heuristic"):
        informativeness(_probs(3), "nope")


def test_the_cluster_sampler_takes_the_best_text_of_the_least_solved_cluster_first():
    from baal_backend.acquisition import select_spread

    # margins: texts 0-2 in cluster 0 are the most uncertain, texts 3-4 in cluster 1 less so
    probs = np.array([[0.5, 0.5], [0.52, 0.48], [0.55, 0.45], [0.7, 0.3], [0.9, 0.1]])[:, :, None]
    clusters = np.array([0, 0, 0, 1, 1])
    # cluster 0 already has 2 solved tasks, cluster 1 none: cluster 1 first, then alternate
    picks = select_spread(probs, "margin", 4, clusters, np.array([2, 0]))
    assert picks.tolist() == [3, 4, 0, 1]
    # plain score order would pile onto cluster 0
    assert select(probs, "margin", 3).tolist() == [0, 1, 2]
