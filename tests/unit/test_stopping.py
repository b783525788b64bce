import numpy as np

from baal_backend import stopping
from baal_backend.insight import suspicious, top_two
from baal_backend.labels import Label


def _entry(n, preds, version=None, ids=None):
    ids = ids if ids is not None else list(range(len(preds)))
    return {"version": version or f"v{n}", "n_labels": n, "stop_ids": ids, "stop_pred": list(preds)}


def test_the_signal_fires_only_after_two_stable_windows():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, 400)
    noisy = lambda k: np.where(rng.random(400) < k, rng.integers(0, 5, 400), base)  # noqa: E731
    changing = [_entry(n, noisy(0.5)) for n in (20, 40, 60, 80)]
    assert not stopping.signal(changing, 10)["stop"]
    stable = changing[:2] + [_entry(60, base), _entry(80, base), _entry(100, base)]
    fired = stopping.signal(stable, 10)
    assert fired["stop"] and fired["reason"].startswith("you could stop now")
    assert [c["labels"] for c in fired["checks"]] == [[80, 100], [60, 80]]
    # the window grows with the labels: 1,000 labels compare with <= 900, never with 990
    late = [_entry(n, base) for n in (800, 900, 990, 1000)]
    assert [c["against"] for c in stopping.signal(late, 10)["checks"]] == ["v900", "v800"]


def test_one_more_label_is_not_a_window_and_too_few_shared_texts_are_no_evidence():
    same = np.arange(400) % 3
    history = [_entry(n, same) for n in (20, 21, 22, 23)]  # MIN_LABELS 10: no entry is 10 labels before another
    result = stopping.signal(history, 10)
    assert not result["stop"] and result["reason"].startswith("not enough history")
    few = [_entry(n, same[:30]) for n in (20, 40, 60)]
    assert not stopping.signal(few, 10)["stop"]
    # the stop set shrinks as its texts get labeled: only shared texts count
    moved = [_entry(20, same, ids=list(range(400))), _entry(40, same[:300], ids=list(range(100, 400))),
             _entry(60, same[:200], ids=list(range(200, 400)))]
    assert [c["texts"] for c in stopping.signal(moved, 10)["checks"]] == [200, 300]


def test_agreeing_on_one_class_everywhere_is_no_evidence():
    constant = [_entry(n, np.zeros(400, dtype=int)) for n in (20, 40, 60)]
    assert not stopping.signal(constant, 10)["stop"] and stopping.signal(constant, 10)["checks"] == []


def test_kappa_and_the_stop_set_order():
    assert stopping.kappa([1, 1, 1], [1, 1, 1]) == 1.0
    assert stopping.kappa([0, 1, 0, 1], [1, 0, 1, 0]) < 0
    order = stopping.hash_order(range(100))
    assert sorted(order) == list(range(100)) and order != list(range(100))
    assert [t for t in stopping.hash_order(range(200)) if t < 100] == order  # a grown pool keeps the order


def test_suspicious_labels_rank_by_the_out_of_fold_probability_of_the_given_class():
    labels = [Label(i, 100 + i, f"text {i}", c) for i, c in enumerate(["a", "b", "a", "b"])]
    oof = np.array([[0.9, 0.1], [0.2, 0.8], [0.05, 0.95], [0.6, 0.4]], dtype=np.float32)
    ranked = suspicious(labels, ("a", "b"), oof)
    assert [s["annotation"] for s in ranked] == [2, 3]  # the confident agreements are not listed
    assert ranked[0]["model_says"] == "b" and ranked[0]["p_label"] == 0.05
    idx, p = top_two(np.array([[0.2, 0.5, 0.3]]))
    assert idx.tolist() == [[1, 2]] and np.allclose(p, [[0.5, 0.3]])
