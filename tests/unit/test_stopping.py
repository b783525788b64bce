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


def _questions_entry(n, per_question, version=None):
    """A history line of a project with one model line per question: {name: (n_labels, preds)}."""
    return {"version": version or f"v{n}", "n_labels": n,
            "questions": {name: {"n_labels": k, "stop_ids": list(range(len(preds))), "stop_pred": list(preds)}
                          for name, (k, preds) in per_question.items()}}


def test_each_question_has_its_own_signal_and_the_project_stops_when_all_do():
    rng = np.random.default_rng(1)
    stable = [str(c) for c in rng.integers(0, 3, 400)]
    sets = ["billing\x1fcard" if c == "0" else c for c in stable]  # a multi-label question's predicted sets
    changing = lambda: [str(c) for c in rng.integers(0, 3, 400)]  # noqa: E731
    # "urgent" counts only the annotations that showed it: its own label counts set its windows
    history = [_questions_entry(n, {"topic": (n, sets), "mood": (n, changing()), "urgent": (n // 4, stable)})
               for n in (20, 40, 60)]
    signals = stopping.question_signals(history, 10)
    assert set(signals) == {"topic", "mood", "urgent"}
    assert signals["topic"]["stop"] and not signals["mood"]["stop"] and signals["mood"]["checks"]
    assert [c["labels"] for c in signals["urgent"]["checks"]] == [[5, 15]]  # 15 labels: one window of 10 back
    project = stopping.combine(signals)
    assert not project["stop"] and "mood" in project["reason"] and "urgent" in project["reason"]
    assert "topic" not in project["reason"]  # the reason names only the questions that hold it back
    history.append(_questions_entry(80, {"topic": (80, sets), "mood": (80, stable), "urgent": (20, stable)}))
    history.append(_questions_entry(100, {"topic": (100, sets), "mood": (100, stable), "urgent": (25, stable)}))
    history.append(_questions_entry(120, {"topic": (120, sets), "mood": (120, stable), "urgent": (35, stable)}))
    assert stopping.combine(stopping.question_signals(history, 10))["stop"]
    # a question left out of the newest version (too few labels) does not hold the project back
    history.append({"version": "v130", "n_labels": 130, "questions": {
        **_questions_entry(130, {"topic": (130, sets), "mood": (130, stable)})["questions"],
        "urgent": {"n_labels": 35, "eval": "none", "reason": "too few"}}})
    assert set(stopping.question_signals(history, 10)) == {"topic", "mood"}
    assert not stopping.combine({})["stop"]


def test_multi_label_suspicious_labels_are_missing_or_extra_ranked_by_how_wrong():
    from baal_backend.question_insight import multilabel_suspicious

    given = [("a",), ("a", "b"), ("b",), (), ("a", "c"), ("c",)]
    rows = [(Label(i, 100 + i, f"text {i}", "stored"), choices) for i, choices in enumerate(given)]
    oof = np.array([[0.9, 0.8, 0.1],  # b not ticked, p 0.8 over its threshold 0.4: missing
                    [0.8, 0.7, 0.0],  # agrees
                    [0.3, 0.05, 0.0],  # b ticked at p 0.05: extra, the most wrong
                    [0.1, 0.1, 0.1],  # left blank, nothing likely: agrees
                    [0.9, 0.0, 0.3],  # c ticked, p 0.3 just under its threshold 0.4: not clearly wrong
                    [0.2, 0.1, 0.9]], dtype=np.float32)
    found = multilabel_suspicious("topic", rows, ("a", "b", "c"), oof, np.array([0.5, 0.4, 0.4]))
    assert [(s["annotation"], s["label"], s["kind"]) for s in found] == [(2, "b", "extra"), (0, "b", "missing")]
    assert found[0]["suspicion"] == round((0.4 - 0.05) / 0.4, 4) and found[0]["question"] == "topic"
    assert found[1]["suspicion"] == round((0.8 - 0.4) / 0.6, 4) and found[1]["given"] == "a"
    # a label ticked on one text only: the head that scored that text never saw a positive of it
    lone = multilabel_suspicious("topic", rows[:4], ("a", "b", "c"), oof[:4], np.array([0.5, 0.4, 0.4]))
    assert (2, "b") in {(s["annotation"], s["label"]) for s in lone}
    lone_c = [(Label(0, 100, "t", "s"), ("c",)), (Label(1, 101, "u", "s"), ())]
    assert multilabel_suspicious("topic", lone_c, ("a", "b", "c"), np.zeros((2, 3), np.float32), np.full(3, 0.4)) == []
