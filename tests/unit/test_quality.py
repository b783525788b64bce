import numpy as np
import pytest

from baal_backend import quality


@pytest.mark.parametrize("classes, per_class", [(40, 3), (150, 2), (30, 4), (25, 4), (150, 3), (150, 5), (3, 2), (2, 50)])
def test_a_plan_exists_for_any_number_of_classes_and_labels(classes, per_class):
    """Regression: the stratified held-out split raised ValueError whenever the slice could not
    hold one label per class (150 intents: every count from 300 to 749 labels), so no version
    was published."""
    y = np.repeat(np.arange(classes), per_class)
    groups = np.arange(len(y))
    plan = quality.plan(y, groups, 0.2, seed=0)
    assert plan.splits and plan.reason is None
    for train, test in plan.splits:
        assert len(train) and len(test) and not set(train) & set(test)
        assert set(train) | set(test) == set(range(len(y)))


@pytest.mark.parametrize("n", [300, 450, 600, 749])
def test_150_classes_between_300_and_749_labels_get_a_holdout(n):
    y = np.arange(n) % 150
    plan = quality.plan(y, np.arange(n), 0.2, seed=0)
    assert plan.method == "holdout"
    (train, test), = plan.splits
    assert abs(len(test) - n * 0.2) <= n * 0.05


def test_split_is_by_task_never_by_label():
    """Regression: two annotators of one task could land on both sides of the split."""
    tasks = np.repeat(np.arange(60), 2)  # every task labeled twice
    y = tasks % 3
    for plan in (quality.plan(y, tasks, 0.2, 0), quality.plan(y[:40], tasks[:40], 0.2, 0)):
        assert plan.splits
        for train, test in plan.splits:
            assert not set(tasks[train]) & set(tasks[test])


def test_no_metric_says_why():
    assert "EVAL_FRACTION=0" in quality.plan(np.array([0, 1] * 10), np.arange(20), 0.0, 0).reason
    few = quality.plan(np.array([0, 1, 0]), np.arange(3), 0.2, 0)
    assert few.method == "none" and "3 labeled tasks" in few.reason
    assert quality.measure(few, np.array([0, 1, 0]), lambda tr, te: tr) == {"eval": "none", "reason": few.reason}


def test_measure_pools_folds():
    y = np.array([0, 1] * 10)
    plan = quality.plan(y, np.arange(20), 0.2, 0)
    perfect = quality.measure(plan, y, lambda train, test: y[test])
    assert perfect["accuracy"] == 1.0 and perfect["n_eval"] == 20 and perfect["eval"] == "5-fold cv"
