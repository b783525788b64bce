"""The multi-label core: sigmoid head, out-of-fold thresholds, decision rule, quality, the label-name
prior, acquisition, save/load."""
import json

import numpy as np
import pytest
import torch

from baal_backend import multilabel as ml
from baal_backend import multilabel_acquisition as mla
from baal_backend import trainer_process
from baal_backend.data import load_clinc_multilabel
from baal_backend.model import mc_proba
from baal_backend.prior import LabelPrior, MultiLabelPrior, sigmoid_biases
from baal_backend.training import TrainConfig

LABELS = ("billing", "shipping", "refund", "login", "spam")


def blobs(n: int, seed: int = 0, dim: int = 16):
    """Texts as embeddings: each label a direction, a text the sum of its labels' directions plus
    noise; 1 or 2 labels per text, the last label rare."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(len(LABELS), dim))
    y = np.zeros((n, len(LABELS)), dtype=np.float32)
    first = rng.choice(len(LABELS), n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    y[np.arange(n), first] = 1
    second = rng.integers(0, len(LABELS) - 1, n)
    two = rng.random(n) < 0.5
    y[np.flatnonzero(two), second[two]] = 1
    emb = y @ centres + rng.normal(scale=0.3, size=(n, dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32), y


def fit_in_trainer(*args) -> ml.MultiLabelFit:
    """`fit_multilabel` where the server runs it: the training process (one torch thread)."""
    return trainer_process.run(ml.fit_multilabel, *args)


def test_a_sigmoid_head_learns_several_labels_per_text():
    emb, y = blobs(200)
    test_emb, test_y = blobs(200, seed=1)
    fit = fit_in_trainer(emb, y, np.arange(len(y)), TrainConfig(eval_fraction=0.0, num_draws=8), LABELS)
    head = ml.MultiLabelClassifier.from_state(_Dim(emb.shape[1]), fit.state, LABELS, fit.thresholds).head
    probs = mc_proba(head, test_emb, 8, sigmoid=True)
    assert probs.shape == (200, len(LABELS), 8)
    assert not np.allclose(probs.sum(1), 1.0)  # each label on its own, not a softmax
    assert np.ptp(probs, axis=2).max() > 0  # the draws differ: MC-Dropout is on
    got = ml.scores(test_y, ml.decide(probs.mean(-1), fit.thresholds), LABELS)
    assert got["micro_f1"] > 0.9 and got["macro_f1"] > 0.85
    assert abs(got["cardinality"]["predicted"] - got["cardinality"]["labels"]) < 0.2


def test_thresholds_come_from_out_of_fold_probabilities_not_a_fixed_half():
    """A label whose positives get 0.3 out of fold, its negatives 0.05: 0.5 would never predict it."""
    rng = np.random.default_rng(0)
    y = np.zeros((200, 2), dtype=np.float32)
    y[:100, 0] = 1
    y[:, 1] = rng.random(200) < 0.5
    probs = np.where(y > 0, 0.3, 0.05) + rng.normal(scale=0.01, size=y.shape)
    cut = ml.fit_thresholds(probs, y)
    assert 0.05 < cut[0] < 0.3 and 0.05 < cut[1] < 0.3
    assert ml.scores(y, ml.decide(probs, cut, at_least_one=False), "ab")["micro_f1"] == 1.0
    assert ml.scores(y, probs >= 0.5, "ab")["micro_f1"] == 0.0


def test_a_label_with_few_positives_is_pulled_to_the_shared_threshold():
    """Its own best threshold from 2 positives is noise: shrunk towards the one fitted on all labels."""
    y = np.zeros((300, 3), dtype=np.float32)
    y[:100, 0] = y[100:200, 1] = 1
    y[[200, 201], 2] = 1
    probs = np.where(y > 0, 0.6, 0.1)
    probs[[200, 201], 2] = 0.92  # alone, label 2 would get a threshold near 0.9
    cut = ml.fit_thresholds(probs, y)
    own = ml.fit_thresholds(probs[:, 2:], y[:, 2:])[0]
    assert own > 0.5
    assert cut[2] < 0.45 and abs(cut[2] - cut[0]) < abs(own - cut[0])
    # no positive at all: the shared threshold; nothing known: the default
    assert ml.fit_thresholds(probs[:, :2], np.c_[y[:, :1], np.zeros(300)])[1] == ml.fit_thresholds(probs[:, :1], y[:, :1])[0]
    assert (ml.fit_thresholds(np.full((4, 2), np.nan), np.ones((4, 2))) == ml.DEFAULT_THRESHOLD).all()


def test_probabilities_of_a_label_the_fold_never_saw_are_left_out():
    """NaN marks them: they would drag the shared threshold to the bottom of the grid."""
    y = np.zeros((100, 2), dtype=np.float32)
    y[:50, 0] = y[50:, 1] = 1
    probs = np.where(y > 0, 0.7, 0.1)
    unseen = probs.copy()
    unseen[50:, 1] = 0.06  # positives a head without any of them scored as negatives
    masked = unseen.copy()
    masked[:, 1] = np.nan
    assert ml.fit_thresholds(unseen, y)[1] < 0.2
    assert ml.fit_thresholds(masked, y)[1] == pytest.approx(ml.fit_thresholds(probs[:, :1], y[:, :1])[0])
    assert ml.fit_thresholds(masked, y)[1] > 0.35


def test_a_text_with_no_label_above_its_threshold_gets_its_most_probable_one():
    mean = np.array([[0.30, 0.20, 0.05], [0.9, 0.1, 0.8]])
    cut = np.array([0.5, 0.15, 0.5])
    assert ml.decide(mean, cut).tolist() == [[False, True, False], [True, False, True]]
    low = np.array([[0.30, 0.10, 0.05]])
    assert ml.decide(low, cut).tolist() == [[True, False, False]]  # not the label nearest its threshold
    assert ml.decide(low, cut, at_least_one=False).tolist() == [[False, False, False]]


def test_fit_measures_micro_and_macro_f1_by_task_with_folds_or_a_holdout():
    emb, y = blobs(60)
    few = fit_in_trainer(emb, y, np.arange(60) // 2, TrainConfig(num_draws=4), LABELS)  # 30 tasks: k-fold
    assert few.metrics["eval"] == "5-fold cv" and few.metrics["n_eval"] == 60
    assert few.out_of_fold.shape == y.shape and few.at_least_one
    emb, y = blobs(150, seed=2)
    many = fit_in_trainer(emb, y, np.arange(150), TrainConfig(num_draws=4), LABELS)  # 150 tasks: a held-out 30
    assert many.metrics["eval"] == "holdout" and many.metrics["n_eval"] == 30
    for metrics in (few.metrics, many.metrics):
        assert metrics["micro_f1"] > 0.8 and metrics["macro_f1"] > 0.6
        assert 1.0 <= metrics["cardinality"]["predicted"] <= 2.0 and metrics["thresholds_from"] == "out-of-fold"
    tiny = fit_in_trainer(emb[:3], y[:3], [0, 1, 2], TrainConfig(num_draws=4), LABELS)
    assert tiny.metrics["eval"] == "none" and "3 labeled tasks" in tiny.metrics["reason"]
    assert (tiny.thresholds == ml.DEFAULT_THRESHOLD).all() and tiny.out_of_fold is None


def test_out_of_fold_cells_whose_head_never_saw_the_label_are_marked_and_judge_nothing():
    """Label c ticked twice, on one task (two annotators): both rows fall in one fold, whose head
    never saw a positive of c. Its low probability there must not call the two labels extra."""
    from baal_backend.labels import Label
    from baal_backend.question_insight import multilabel_suspicious

    rng = np.random.default_rng(0)
    y = np.zeros((20, 3), np.float32)
    y[np.arange(20), np.arange(20) % 2] = 1
    y[[0, 1], 2] = 1
    groups = np.arange(20)
    groups[1] = 0
    emb = y @ np.eye(3, 16, dtype=np.float32) + rng.normal(scale=0.3, size=(20, 16)).astype(np.float32)
    fit = fit_in_trainer(emb / np.linalg.norm(emb, axis=1, keepdims=True), y, groups, TrainConfig(num_draws=4),
                         ("a", "b", "c"))
    assert np.isnan(fit.informative[[0, 1], 2]).all() and fit.out_of_fold[[0, 1], 2].max() < 0.2
    assert not np.isnan(fit.informative[:, :2]).any()
    assert np.array_equal(fit.informative[2:, :2], fit.out_of_fold[2:, :2])
    rows = [(Label(i, int(groups[i]), f"t{i}", "s"), tuple(l for l, v in zip("abc", y[i]) if v)) for i in range(20)]
    found = multilabel_suspicious("q", rows, ("a", "b", "c"), fit.informative, fit.thresholds)
    assert [s for s in found if s["label"] == "c"] == []


def test_scores_give_each_labels_f1_by_name_and_the_cardinality_true_and_predicted():
    y = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    pred = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]], dtype=bool)
    got = ml.scores(y, pred, ["a", "b", "c", "d"])
    # a: 2 of 3 found, none wrong -> 0.8; b: 1 of 2 -> 2/3; c: predicted 3 times, never true -> 0; d: nothing to measure
    assert got["per_label_f1"] == {"a": 0.8, "b": 0.6667, "c": 0.0}
    assert got["cardinality"] == {"labels": 1.25, "predicted": 1.5}
    assert json.loads(json.dumps(got)) == got
    assert got["micro_f1"] == pytest.approx(2 * 3 / (6 + 5)) and got["n_eval"] == 4
    with pytest.raises(ValueError, match="3 label names for 4 labels"):
        ml.scores(y, pred, ["a", "b", "c"])


def test_rare_labels_weigh_more_in_the_loss():
    y = np.zeros((100, 3), dtype=np.float32)
    y[:50, 0] = y[:4, 1] = 1  # 1:1, 4:96; label 2 has no positive
    assert ml.pos_weights(y, "none").tolist() == [1, 1, 1]
    assert ml.pos_weights(y, "sqrt") == pytest.approx([1, np.sqrt(10), 1])  # 24 capped at 10
    assert ml.pos_weights(y, "ratio") == pytest.approx([1, 10, 1])


def test_scores_are_lowest_for_the_text_to_label_next():
    """The orientation of `acquisition.prediction_scores`: rank mode in [0, 1], low = label next."""
    draws = 10
    sure = np.tile([[0.95], [0.02], [0.03]], (1, draws))
    torn = np.tile([[0.9, 0.2], [0.02, 0.02], [0.03, 0.03]], (1, draws // 2))  # the draws disagree on label 0
    near = np.tile([[0.52], [0.02], [0.03]], (1, draws))  # label 0 sits on its threshold
    probs = np.stack([sure, torn, near])
    cut = np.full(3, 0.5)
    bald = mla.prediction_scores(probs, "bald", cut)
    assert bald.argmin() == 1 and ((0 <= bald) & (bald <= 1)).all()
    assert mla.prediction_scores(probs, "margin", cut).argmin() == 2
    raw = mla.prediction_scores(probs, "bald", cut, "uncertainty")
    assert raw.argmax() == 1 and raw[1] == pytest.approx(mla.label_bald(probs)[1].sum())
    labeled = np.array([[1, 0, 0], [1, 0, 0]], dtype=np.float32)
    card = mla.prediction_scores(probs, "cardinality", cut, labeled=labeled)
    assert card.argmin() == 2  # 0.57 expected labels against the labeled texts' 1
    assert mla.prediction_scores(probs, "cardinality", cut, cardinality=1.0).tolist() == card.tolist()
    assert mla.prediction_scores(probs, "cardinality", cut, cardinality=0.5).argmin() == 0  # 1.0 expected, the farthest from 0.5
    rand = mla.prediction_scores(probs, "random", cut, rng=np.random.default_rng(0))
    assert ((0 <= rand) & (rand <= 1)).all()
    with pytest.raises(ValueError, match="labeled"):
        mla.informativeness(probs, "cvirs", cut)
    assert mla.select(probs, "bald", 1, cut).tolist() == [1]
    certain = np.ones((1, 3, 4), dtype=np.float32)  # float32 1.0: BALD 0, not NaN
    assert mla.informativeness(certain, "bald", cut).tolist() == [0.0]


def test_category_vector_inconsistency():
    labeled = np.array([[1, 0, 0, 0], [1, 0, 0, 0]])
    pred = np.array([[1, 0, 0, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    got = mla.category_vector_inconsistency(pred, labeled)
    assert got[0] == 0.0 and got[1] == 1.0 and 0 < got[2] < 1
    mean = np.array([[0.9, 0.1, 0.1, 0.1], [0.1, 0.6, 0.6, 0.6], [0.6, 0.6, 0.1, 0.1]])  # decided as `pred`
    cvirs = mla.informativeness(np.repeat(mean[:, :, None], 2, axis=2), "cvirs", np.full(4, 0.5), labeled)
    # margin ranks (Borda) 3/8, 6/8, 3/8 times the inconsistency
    assert cvirs[0] == 0.0 and cvirs[1] == pytest.approx(0.75) and cvirs[2] == pytest.approx(0.375 * got[2])


def test_classifier_saves_and_loads(tmp_path):
    from baal_backend.encoder import Encoder
    from tests.tiny_models import tiny_bert

    encoder = Encoder(str(tiny_bert(tmp_path / "bert", hidden=16)))
    texts = ["refund my order", "i cannot log in", "where is my parcel", "buy cheap pills now"] * 3
    y = ml.label_matrix([("refund", "billing"), ("login",), ("shipping",), ("spam",)] * 3, LABELS)
    fit = fit_in_trainer(encoder.embed(texts), y, np.arange(len(texts)), TrainConfig(num_draws=4), LABELS)
    clf = fit.classifier(encoder, LABELS)
    (tmp_path / "v1").mkdir()
    clf.save(tmp_path / "v1")
    meta = json.loads((tmp_path / "v1" / "classifier.json").read_text())
    assert meta["kind"] == ml.KIND and meta["labels"] == list(LABELS) and len(meta["thresholds"]) == len(LABELS)
    again = ml.MultiLabelClassifier.load(tmp_path / "v1", encoder)
    assert again.labels == LABELS and np.allclose(again.thresholds, clf.thresholds)
    assert again.cardinality == pytest.approx(1.25) and again.at_least_one
    for key, value in clf.head.state_dict().items():
        assert torch.equal(again.head.state_dict()[key], value)
    probs = again.predict_proba(texts[:4], 5)
    assert probs.shape == (4, len(LABELS), 5)
    assert all(len(chosen) >= 1 and set(chosen) <= set(LABELS) for chosen in again.choices(probs))
    scores = mla.version_scores(again, probs)  # the default heuristic, this version's thresholds and cardinality
    assert scores.shape == (4,) and ((0 <= scores) & (scores <= 1)).all()
    assert scores.tolist() == mla.prediction_scores(probs, mla.DEFAULT_HEURISTIC, again.thresholds, cardinality=1.25).tolist()
    meta["kind"] = "head"
    (tmp_path / "v1" / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not 'multilabel-head'"):
        ml.MultiLabelClassifier.load(tmp_path / "v1", encoder)


@pytest.fixture(scope="module")
def minilm():
    from baal_backend.encoder import Encoder
    from baal_backend.settings import default_model_path

    return Encoder(default_model_path())


def test_the_label_names_prior_lifts_a_head_trained_on_a_few_labels_and_is_saved_with_it(minilm, tmp_path):
    """12 labeled messages of the constructed CLINC150 set (50 intents, most never labeled): the
    intents' names tell the head what the unlabeled ones mean."""
    train, test = load_clinc_multilabel("train"), load_clinc_multilabel("test")
    labels = sorted({label for chosen in train.labels + test.labels for label in chosen})
    emb, y = minilm.embed(train.texts[:12]), ml.label_matrix(train.labels[:12], labels)
    test_emb, test_y = minilm.embed(test.texts[:150]), ml.label_matrix(test.labels[:150], labels)
    cfg = TrainConfig(eval_fraction=0.0, num_draws=8)

    def micro_f1(fit: ml.MultiLabelFit) -> float:
        mean = fit.classifier(minilm, labels).proba_from_embeddings(test_emb, 8).mean(-1)
        return ml.scores(test_y, ml.decide(mean, fit.thresholds, fit.at_least_one), labels)["micro_f1"]

    without = fit_in_trainer(emb, y, np.arange(12), cfg, labels)
    named = fit_in_trainer(emb, y, np.arange(12), cfg, labels, LabelPrior.of(minilm, labels).prototypes)
    assert without.prior is None and "prior_scale" not in without.metrics
    assert named.prior.scale > 0 and named.metrics["prior_scale"] == named.prior.scale
    assert micro_f1(named) > micro_f1(without) + 0.15

    clf = named.classifier(minilm, labels)
    clf.save(tmp_path)
    assert json.loads((tmp_path / "classifier.json").read_text())["kind"] == ml.KIND_ON_PRIOR  # older code refuses it
    again = ml.MultiLabelClassifier.load(tmp_path, minilm)
    torch.manual_seed(0)
    before = clf.predict_proba(test.texts[:20], 5)
    torch.manual_seed(0)
    after = again.predict_proba(test.texts[:20], 5)
    assert np.array_equal(before, after) and again.choices(after) == clf.choices(before)
    assert again.prior.scale == clf.prior.scale and np.array_equal(again.prior.bias, clf.prior.bias)


def test_the_multi_label_prior_fits_a_bias_per_label_and_switches_off_for_names_that_say_nothing():
    rng = np.random.default_rng(0)
    prototypes = np.eye(3, 8, dtype=np.float32)
    y = np.zeros((60, 3), dtype=np.float32)
    y[:30, 0] = y[20:50, 1] = 1  # label 2: no positive
    emb = y @ prototypes + rng.normal(scale=0.2, size=(60, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    prior = MultiLabelPrior.fitted(prototypes, emb, y)
    assert prior.scale > 0 and np.isfinite(prior.bias).all() and prior.bias[2] < min(prior.bias[:2])
    p = 1 / (1 + np.exp(-prior.logits(emb)))
    assert ((p[:, :2] >= 0.5) == (y[:, :2] > 0)).mean() > 0.95  # the biases put 0.5 between a label's texts and the rest
    assert MultiLabelPrior.fitted(prototypes[[2, 0, 1]], emb, y).scale == 0.0  # names that point at the wrong texts
    # every label as likely as the labels say, when the names tell nothing
    flat = 1 / (1 + np.exp(-sigmoid_biases(np.zeros((60, 3)), y)))
    assert flat[:2] == pytest.approx([0.5, 0.5], abs=0.02) and 0 < flat[2] < 0.05


def test_label_matrix_refuses_unknown_labels():
    assert ml.label_matrix([("b",), ("a", "b"), ()], ["a", "b"]).tolist() == [[0, 1], [1, 1], [0, 0]]
    with pytest.raises(ValueError, match="not among the choices"):
        ml.label_matrix([("c",)], ["a", "b"])
    assert ml.stratification_key(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]])).tolist() == [1, 0, -1]


def test_the_constructed_clinc_set_joins_real_requests_of_distinct_intents():
    train, test = load_clinc_multilabel("train"), load_clinc_multilabel("test")
    assert load_clinc_multilabel("train").texts == train.texts  # reproducible
    for data in (train, test):
        sizes = [len(chosen) for chosen in data.labels]
        assert set(sizes) == {1, 2, 3} and 1.6 < np.mean(sizes) < 2.0
        assert all(len(set(chosen)) == len(chosen) for chosen in data.labels)
        counts = np.unique([c for chosen in data.labels for c in chosen], return_counts=True)[1]
        assert len(counts) == 50 and counts.max() >= 4 * counts.min()  # skewed
    assert not set(train.texts) & set(test.texts)
    assert len(train) > 1000 and len(test) > 300


class _Dim:
    """An encoder as far as `from_state` asks: its width."""

    def __init__(self, dim: int):
        self.dim = dim
