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
    signals = stopping.question_signals(history, 10, ["topic", "mood", "urgent"])
    assert set(signals) == {"topic", "mood", "urgent"}
    assert signals["topic"]["stop"] and not signals["mood"]["stop"] and signals["mood"]["checks"]
    assert [c["labels"] for c in signals["urgent"]["checks"]] == [[5, 15]]  # 15 labels: one window of 10 back
    project = stopping.combine(signals)
    assert not project["stop"] and "mood" in project["reason"] and "urgent" in project["reason"]
    assert "topic" not in project["reason"]  # the reason names only the questions that hold it back
    history.append(_questions_entry(80, {"topic": (80, sets), "mood": (80, stable), "urgent": (20, stable)}))
    history.append(_questions_entry(100, {"topic": (100, sets), "mood": (100, stable), "urgent": (25, stable)}))
    history.append(_questions_entry(120, {"topic": (120, sets), "mood": (120, stable), "urgent": (35, stable)}))
    assert stopping.combine(stopping.question_signals(history, 10, ["topic", "mood", "urgent"]))["stop"]
    # a question the newest version left out (too few labels) has no model: keep labeling, and why
    history.append({"version": "v130", "n_labels": 130, "questions": {
        **_questions_entry(130, {"topic": (130, sets), "mood": (130, stable)})["questions"],
        "urgent": {"n_labels": 35, "eval": "none", "reason": "3 labels; training needs 10 (MIN_LABELS)"}}})
    held = stopping.combine(stopping.question_signals(history, 10, ["topic", "mood", "urgent"]))
    assert not held["stop"] and held["questions"]["urgent"]["status"] == stopping.UNTRAINED
    assert held["reason"] == "keep labeling: urgent not trained yet: 3 labels; training needs 10 (MIN_LABELS)"
    # the signal is over the current config's questions: one dropped from it no longer counts
    assert stopping.combine(stopping.question_signals(history, 10, ["topic", "mood"]))["stop"]
    assert not stopping.combine({})["stop"]


def test_a_question_new_in_the_config_keeps_the_project_labeling_with_its_reason():
    """The reviewer's case: topic never trained (every label alike), mood stable: not a stop."""
    stable = [str(c) for c in np.random.default_rng(0).integers(0, 2, 300)]
    history = [{"version": f"v{n}", "n_labels": n, "questions": {
        "mood": {"n_labels": n, "stop_ids": list(range(300)), "stop_pred": stable},
        "topic": {"n_labels": n, "eval": "none", "reason": "every label so far is alike"}}} for n in (20, 40, 60, 80)]
    signals = stopping.question_signals(history, 10, ["mood", "topic"])
    assert signals["mood"]["stop"] and signals["topic"]["reason"] == "not trained yet: every label so far is alike"
    project = stopping.combine(signals)
    assert not project["stop"]
    assert project["reason"] == "keep labeling: topic not trained yet: every label so far is alike"
    # a question in the config that no version has seen yet
    project = stopping.combine(stopping.question_signals(history, 10, ["mood", "urgent"]))
    assert not project["stop"] and "urgent not trained yet: the newest version does not predict it" in project["reason"]


def test_a_question_shown_on_too_few_stop_set_texts_is_left_out_of_the_decision():
    """A conditional question shown on 30 stop-set texts can never share 50 of them: it must not
    keep the project labeling for ever (the reviewer's 50 versions, 1,980 labels)."""
    stable = [str(c) for c in np.random.default_rng(0).integers(0, 2, 300)]
    history = [{"version": f"v{n}", "n_labels": n, "questions": {
        "mood": {"n_labels": n, "stop_ids": list(range(300)), "stop_pred": stable},
        "urgent": {"n_labels": n // 10, "stop_ids": list(range(30)), "stop_pred": stable[:30]}}}
        for n in range(20, 2000, 40)]
    signals = stopping.question_signals(history, 10, ["mood", "urgent"])
    assert signals["urgent"] == {"stop": False, "checks": [], "kappa_threshold": stopping.KAPPA,
                                 "status": stopping.LEFT_OUT,
                                 "reason": "shown on too few unlabeled texts to check: 30 < 50"}
    project = stopping.combine(signals)
    assert project["stop"] and project["reason"].startswith("you could stop now")
    assert project["reason"].endswith("left out of the decision: urgent (shown on too few unlabeled texts to check: "
                                      "30 < 50)")
    # every question left out: nothing to decide on
    alone = stopping.combine(stopping.question_signals(history, 10, ["urgent"]))
    assert not alone["stop"] and alone["reason"].startswith("not enough history yet: no question can be checked")


def test_a_multi_label_questions_stop_set_predictions_ignore_the_order_of_its_choices():
    """Reordering the config's choices reorders each predicted set's choices, not the set."""
    from baal_backend.question_insight import SET_SEPARATOR, history_entry

    def line(order):
        rows = [{"task": t, "rank": 0.5, "answers": {"topic": {"choices": list(order), "p": 0.9, "rank": 0.5}}}
                for t in range(60)]
        return history_entry("v1", 60, {"questions": {"topic": {"n_labels": 60}}}, rows, {"topic"}, 0.0)

    before, after = line(("billing", "card")), line(("card", "billing"))
    assert before["questions"]["topic"]["stop_pred"] == after["questions"]["topic"]["stop_pred"]
    assert before["questions"]["topic"]["stop_pred"][0] == SET_SEPARATOR.join(["billing", "card"])


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
    # NaN: the head that scored the text never saw a positive of the label (a label ticked on one
    # task only): that cell judges nothing
    lone_c = [(Label(0, 100, "t", "s"), ("c",)), (Label(1, 101, "u", "s"), ())]
    unseen = np.array([[0.0, 0.0, np.nan], [0.0, 0.0, np.nan]], np.float32)
    assert multilabel_suspicious("topic", lone_c, ("a", "b", "c"), unseen, np.full(3, 0.4)) == []


def test_by_default_the_to_label_list_of_several_questions_holds_the_lowest_rank_scores():
    """Rank scores sit on each question's own scale: by default the `TO_LABEL_ROWS` lowest, not a
    cut-off at 0.3 (which a multi-label question's scores rarely reach)."""
    from baal_backend.question_insight import TO_LABEL_ROWS, default_threshold, to_label

    ranks = np.random.default_rng(0).uniform(0.6, 1.0, 2 * TO_LABEL_ROWS).round(4)
    pool = [{"task": t, "text": "x", "question": "topic", "rank": float(r), "score": float(r),
             "answers": {"topic": {"choices": ["billing"], "p": 0.5, "rank": float(r)}}} for t, r in enumerate(ranks)]
    rows = to_label({"pool": pool})
    assert [r["rank"] for r in rows] == sorted(ranks)[:TO_LABEL_ROWS] and rows[0]["question"] == "topic"
    assert default_threshold(pool) == sorted(ranks)[TO_LABEL_ROWS - 1]
    assert len(to_label({"pool": pool[:5]})) == 5 and default_threshold([]) == 1.0
    assert to_label({"pool": pool}, 0.3) == []  # an explicit cut-off still applies
