"""What a simulation's runs add up to: per strategy its mean learning curve, AULC, labels to
match random sampling, stopping point and suspicious-label precision (`results.json`), and the
table and plot made from them (`results.md`, `learning_curves.png`)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .simulation_config import SimulationConfig


def summarise_checks(results: Dict, stops: Dict[str, List[Optional[int]]], suspects: Dict[str, List[Dict]]) -> None:
    """Add each strategy's stopping point (labels, accuracy there, the final accuracy and what
    random sampling had reached with as many labels) and suspicious-label precision."""
    strategies = results["strategies"]
    random = strategies.get("random")
    for name, at in stops.items():
        stats = strategies[name]
        fired = [a for a in at if a is not None]
        entry: Dict[str, object] = {"fired": f"{len(fired)} of {len(at)} repeats",
                                    "final_accuracy": stats["accuracy_mean"][-1]}
        if fired:
            at_budget = min(stats["budgets"], key=lambda b: abs(b - np.mean(fired)))
            i = stats["budgets"].index(at_budget)
            entry.update(labels_mean=float(np.mean(fired)), labels=sorted(fired), accuracy_at_stop=stats["accuracy_mean"][i],
                         random_accuracy_at_stop=random["accuracy_mean"][i] if random else None, budget_nearest=at_budget)
        stats["stopping"] = entry
        if suspects[name]:
            keys = [k for k in suspects[name][0] if k.startswith("precision")]
            stats["suspicious"] = {k: (float(np.mean(v)) if v else None)
                                   for k in keys for v in [[s[k] for s in suspects[name] if s[k] is not None]]}
            stats["suspicious"]["wrong_labels_mean"] = float(np.mean([s["wrong_labels"] for s in suspects[name]]))


def summarise(dataset: str, n_classes: int, cfg: SimulationConfig, budgets: List[int],
              curves: Dict[str, List[List[Dict[str, float]]]], cold: Dict[str, List[float]]) -> Dict:
    strategies = {}
    for name, runs in curves.items():
        acc = np.array([[m["accuracy"] for m in run] for run in runs])
        f1 = np.array([[m["macro_f1"] for m in run] for run in runs])
        strategies[name] = {
            "budgets": budgets,
            "accuracy_mean": acc.mean(0).tolist(),
            "accuracy_std": acc.std(0).tolist(),
            "macro_f1_mean": f1.mean(0).tolist(),
            "aulc": aulc(acc.mean(0)),
        }
    random_final = strategies["random"]["accuracy_mean"][-1] if "random" in strategies else None
    for stats in strategies.values():
        stats["labels_to_match_random"] = labels_to_match(stats["budgets"], stats["accuracy_mean"], random_final)
    return {
        "dataset": dataset,
        "n_classes": n_classes,
        "mode": cfg.mode,
        "config": asdict(cfg),
        "cold_start": {k: {"accuracy_mean": float(np.mean(v)), "accuracy_std": float(np.std(v)), "labels": cfg.seed_size}
                       for k, v in cold.items() if v},
        "strategies": strategies,
    }


def aulc(accuracy_mean: Sequence[float]) -> float:
    """Area under the learning curve: the mean accuracy over the budgets."""
    return float(np.mean(accuracy_mean))


def labels_to_match(budgets: Sequence[int], accuracy_mean: Sequence[float], target: Optional[float]) -> Optional[int]:
    """The smallest budget whose mean accuracy reaches `target` (random's final accuracy), or None."""
    if target is None:
        return None
    for budget, acc in zip(budgets, accuracy_mean):
        if acc >= target - 1e-12:
            return int(budget)
    return None


def write_outputs(results: Dict, out: Path) -> None:
    """results.json, results.md and learning_curves.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(results_table(results))
    plot_curves(results, out / "learning_curves.png")


def results_table(results: Dict) -> str:
    strategies = results["strategies"]
    budgets = next(iter(strategies.values()))["budgets"]
    shown = sorted({budgets[0], budgets[len(budgets) // 2], budgets[-1]})
    head = ["strategy", "AULC"] + [f"acc@{b}" for b in shown] + ["labels to match random"]
    lines = [f"# {results['dataset']}: {results['n_classes']} classes, mode {results['mode']}, MC-Dropout in the {results['config'].get('mc', 'head')}, "
             f"{results['config']['repeats']} repeats (mean ± std)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in sorted(strategies.items(), key=lambda kv: -kv[1]["aulc"]):
        cells = [name, f"{s['aulc']:.4f}"]
        for b in shown:
            i = s["budgets"].index(b)
            cells.append(f"{s['accuracy_mean'][i]:.4f} ± {s['accuracy_std'][i]:.4f}")
        cells.append(str(s["labels_to_match_random"]) if s["labels_to_match_random"] is not None
                     else "not reached" if "random" in strategies else "- (no random run)")
        lines.append("| " + " | ".join(cells) + " |")
    stops = [(n, st["stopping"]) for n, st in strategies.items() if st.get("stopping")]
    if stops:
        lines += ["", "Stopping signal (stabilizing predictions, kappa >= 0.99 for 2 windows): where it fired", ""]
        for name, st in stops:
            if "labels_mean" in st:
                rand = st["random_accuracy_at_stop"]
                lines.append(f"- {name}: {st['fired']}, at {st['labels_mean']:.0f} labels (mean), mean accuracy at the "
                             f"nearest budget {st['accuracy_at_stop']:.4f} (final {st['final_accuracy']:.4f}"
                             + (f"; random at {st['budget_nearest']} labels: {rand:.4f})" if rand is not None else ")"))
            else:
                lines.append(f"- {name}: {st['fired']} (final accuracy {st['final_accuracy']:.4f})")
    flagged = [(n, st["suspicious"]) for n, st in strategies.items() if st.get("suspicious")]
    if flagged:
        lines += ["", f"Suspicious labels ({results['config']['flip']:.0%} of the oracle's labels wrong), at the final "
                      "budget: precision of the flagged list", ""]
        for name, sp in flagged:
            fmt = {k: "-" if sp[k] is None else f"{sp[k]:.3f}" for k in ("precision_at_10", "precision_at_50", "precision_at_wrong")}
            lines.append(f"- {name}: {sp['wrong_labels_mean']:.0f} wrong labels; precision@10 {fmt['precision_at_10']}, "
                         f"@50 {fmt['precision_at_50']}, @(number wrong) {fmt['precision_at_wrong']}")
    zero = results.get("zero_labels") or {}
    if zero.get("accuracy") is not None:
        lines += ["", f"At 0 labels (the label-name prior): accuracy {zero['accuracy']:.4f}, macro-F1 {zero['macro_f1']:.4f}"]
    if results.get("cold_start"):
        lines += ["", "Cold start (first batch, before any model): accuracy after training on it", ""]
        for rule, c in results["cold_start"].items():
            lines.append(f"- {rule}: {c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f} ({c['labels']} labels)")
    return "\n".join(lines) + "\n"


def plot_curves(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in results["strategies"].items():
        mean, std = np.array(s["accuracy_mean"]), np.array(s["accuracy_std"])
        ax.plot(s["budgets"], mean, label=f"{name} (AULC {s['aulc']:.3f})", linestyle="--" if name == "random" else "-")
        ax.fill_between(s["budgets"], mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{results['dataset']} ({results['n_classes']} classes, {results['mode']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
