"""The label-name prior's arithmetic, the learner on top of it, and the prior-spread first batch."""
import numpy as np
import pytest
import torch

from baal_backend.cold_start import prior_representatives
from baal_backend.model import mc_proba
from baal_backend.prior import LabelPrior, better_than_chance, describe
from baal_backend.schema import parse_label_config
from baal_backend.training import TrainConfig, train_mc_head


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _data(rng, n_classes=4, per_class=30, dim=16, noise=0.6):
    """Texts scattered around their class's prototype."""
    protos = _unit(rng.normal(size=(n_classes, dim))).astype(np.float32)
    y = np.repeat(np.arange(n_classes), per_class)
    emb = _unit(protos[y] + noise * rng.normal(size=(len(y), dim)) / np.sqrt(dim)).astype(np.float32)
    return protos, emb, y


@pytest.mark.parametrize("name, words", [("book_flight", "book flight"), ("bookFlight", "book Flight"),
                                          ("sci-fi/fantasy", "sci fi fantasy"), ("ABBR", "ABBR"), ("__", "__")])
def test_choice_values_become_words(name, words):
    assert describe(name) == words


def test_a_hint_describes_a_choice_an_alias_does_not():
    schema = parse_label_config('<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
                                '<Choice value="HUM" hint="a person" alias="h"/><Choice value="LOC"/></Choices></View>')
    assert schema.descriptions == (("a person",), ())


def test_the_scale_follows_how_much_the_names_say():
    rng = np.random.default_rng(0)
    protos, emb, y = _data(rng)
    prior = LabelPrior(protos)
    assert prior.fit_scale(emb, y).scale >= 20  # names that tell the classes apart count fully
    shuffled = rng.permutation(y)  # labels the names know nothing about
    assert prior.fit_scale(emb, shuffled).scale <= 2.5
    misleading = (y + 1) % 4  # every name points at the wrong class
    assert prior.fit_scale(emb, misleading).scale == 0.0


def test_the_head_learns_on_top_of_the_prior_and_scale_zero_is_no_prior():
    rng = np.random.default_rng(1)
    protos, emb, y = _data(rng, per_class=40)
    cfg = TrainConfig(epochs=1, seed=0)
    # the prior alone is right for most texts; one label per class and the head keeps that
    prior = LabelPrior(protos).fit_scale(emb, y)
    few = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    head = train_mc_head(emb[few], y[few], 4, cfg, prior)
    with_prior = (mc_proba(head, emb, 5, prior).mean(-1).argmax(1) == y).mean()
    bare = train_mc_head(emb[few], y[few], 4, cfg)
    without = (mc_proba(bare, emb, 5).mean(-1).argmax(1) == y).mean()
    assert with_prior >= without and with_prior > 0.9
    # scale 0: exactly the head without a prior
    off = LabelPrior(protos, 0.0)
    a = train_mc_head(emb[few], y[few], 4, cfg, off).state_dict()
    b = train_mc_head(emb[few], y[few], 4, cfg).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_better_than_chance_is_a_binomial_test():
    assert not better_than_chance(0, 0, 4)
    assert not better_than_chance(2, 4, 4)  # 2 of 4 among 4 classes happens by luck
    assert better_than_chance(4, 4, 4)
    assert better_than_chance(6, 10, 150) and not better_than_chance(1, 10, 2)


def test_the_prior_first_batch_covers_every_predicted_class_before_repeating():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=200)
    picks = prior_representatives(probs, 7)
    classes = probs.argmax(1)[picks]
    assert len(set(classes[:5])) == 5 and len(picks) == len(set(picks)) == 7
    for c in set(classes[:5]):  # each class's most confident text comes first
        members = np.flatnonzero(probs.argmax(1) == c)
        assert picks[list(classes).index(c)] == members[np.argmax(probs[members].max(1))]


def test_a_class_nobody_labeled_keeps_its_share():
    """Each class's prototype is a training example too: labels of 2 classes of 4 do not train
    the other two away (their texts are still predicted from the names)."""
    rng = np.random.default_rng(3)
    protos, emb, y = _data(rng, per_class=40, noise=1.0)
    prior = LabelPrior(protos, 5.0)
    seen = np.flatnonzero(y < 2)  # labels of classes 0 and 1 only
    head = train_mc_head(emb[seen], y[seen], 4, TrainConfig(epochs=1, seed=0), prior)
    pred = mc_proba(head, emb, 5, prior).mean(-1).argmax(1)
    assert (pred[y >= 2] == y[y >= 2]).mean() > 0.7  # without the prototypes as examples: 0.09


def test_refined_prototypes_follow_the_labels_and_the_unlabeled_pool():
    rng = np.random.default_rng(3)
    truth, emb, y = _data(rng, per_class=60, noise=0.9)
    # names half-way wrong: each points between its class and the next one
    names = LabelPrior(_unit(truth + 0.9 * np.roll(truth, 1, axis=0)).astype(np.float32))
    one = np.array([np.flatnonzero(y == c)[0] for c in range(4)])
    pool = np.setdiff1d(np.arange(len(y)), one)
    accuracy = lambda p: float((p.logits(emb[pool]).argmax(1) == y[pool]).mean())  # noqa: E731
    with_labels = names.refined(emb[one], y[one], emb[:0])
    with_pool = names.refined(emb[one], y[one], emb[pool])
    assert accuracy(with_pool) >= accuracy(with_labels) >= accuracy(names.fit_scale(emb[one], y[one]))
    assert accuracy(with_pool) > 0.9
    assert np.allclose(np.linalg.norm(with_pool.prototypes, axis=1), 1, atol=1e-5)


def test_refining_leaves_out_names_that_do_not_help():
    rng = np.random.default_rng(4)
    truth, emb, y = _data(rng, per_class=20)
    misleading = LabelPrior(np.roll(truth, 1, axis=0))  # every name is another class's
    assert misleading.fit_scale(emb, y).scale == 0.0
    refined = misleading.refined(emb, y, emb[:0])
    sums = np.zeros_like(truth)
    np.add.at(sums, y, emb)
    assert np.allclose(refined.prototypes, _unit(sums), atol=1e-5)  # the labels alone
    assert refined.scale > 0 and (refined.logits(emb).argmax(1) == y).mean() > 0.95
