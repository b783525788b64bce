import pytest

from baal_backend.simulation_config import SimulationConfig
from baal_backend.simulation_results import aulc, labels_to_match, results_table, summarise


def test_budgets_from_seed_batch_and_budget():
    assert SimulationConfig(seed_size=150, batch_size=150, budget=3000).budgets == list(range(150, 3001, 150))
    assert SimulationConfig(seed_size=10, batch_size=30, budget=75).budgets == [10, 40, 70, 75]


def test_aulc_is_mean_accuracy_over_budgets():
    assert aulc([0.5, 0.7, 0.9]) == pytest.approx(0.7)


def test_labels_to_match_random_is_first_budget_reaching_randoms_final():
    budgets = [10, 20, 30, 40]
    assert labels_to_match(budgets, [0.5, 0.8, 0.85, 0.9], 0.8) == 20
    assert labels_to_match(budgets, [0.5, 0.6, 0.7, 0.75], 0.8) is None
    assert labels_to_match(budgets, [0.5], None) is None


def test_summary_shape_on_hand_made_curves():
    cfg = SimulationConfig(strategies=["random", "margin"], seed_size=10, batch_size=10, budget=30, repeats=2)
    run = lambda accs: [{"accuracy": a, "macro_f1": a - 0.1} for a in accs]  # noqa: E731
    curves = {"random": [run([0.5, 0.6, 0.7]), run([0.5, 0.6, 0.7])],
              "margin": [run([0.5, 0.72, 0.8]), run([0.5, 0.70, 0.8])]}
    out = summarise("toy", 3, cfg, cfg.budgets, curves, {"kmeans": [0.5, 0.5], "random": [0.4, 0.3]})
    assert out["dataset"] == "toy" and out["n_classes"] == 3 and out["mode"] == "head"
    m = out["strategies"]["margin"]
    assert m["budgets"] == [10, 20, 30]
    assert m["accuracy_mean"] == pytest.approx([0.5, 0.71, 0.8])
    assert m["accuracy_std"] == pytest.approx([0.0, 0.01, 0.0])
    assert m["macro_f1_mean"] == pytest.approx([0.4, 0.61, 0.7])
    assert m["aulc"] == pytest.approx((0.5 + 0.71 + 0.8) / 3)
    assert m["labels_to_match_random"] == 20 and out["strategies"]["random"]["labels_to_match_random"] == 30
    assert out["cold_start"]["random"]["accuracy_mean"] == pytest.approx(0.35)
    table = results_table(out)
    assert "| margin | 0.6700 |" in table and "kmeans: 0.5000" in table


@pytest.mark.parametrize("kwargs, message", [
    ({"strategies": ["bold"]}, "unknown strategies"),
    ({"seed_size": 0}, "seed-size"),
    ({"seed_size": 50, "budget": 10}, "seed-size"),
    ({"cold_start": "first"}, "cold start"),
])
def test_bad_configs_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**kwargs)
