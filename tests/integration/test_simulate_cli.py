"""`python -m baal_backend simulate` end to end on a tiny CSV, with the server's own model."""
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TOPICS = {
    "sport": ["the team won the match", "a late goal in the final", "the striker scored twice", "tennis champion wins"],
    "food": ["a recipe for tomato soup", "bake the bread for an hour", "the chef made pasta", "fresh fruit salad"],
    "weather": ["heavy rain tomorrow", "sunny and warm all week", "snow storm in the north", "strong winds tonight"],
}


def _csv(path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body", "topic"])
        for label, texts in TOPICS.items():
            for i in range(8):
                writer.writerow([len(texts), f"{texts[i % 4]} ({i})", label])
    return path


def _run(*args):
    return subprocess.run([sys.executable, "-m", "baal_backend", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_simulate_on_a_tiny_csv(tmp_path):
    data = _csv(tmp_path / "tiny.csv")
    out = tmp_path / "out"
    proc = _run("--data", str(data), "--text-column", "body", "--label-column", "topic", "--test-fraction", "0.25",
                "--seed-size", "3", "--batch-size", "3", "--budget", "12", "--repeats", "2",
                "--strategies", "random,margin,power_bald", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "tiny" and results["n_classes"] == 3 and results["mode"] == "head"
    assert set(results["strategies"]) == {"random", "margin", "power_bald"}
    for stats in results["strategies"].values():
        assert stats["budgets"] == [3, 6, 9, 12]
        assert len(stats["accuracy_mean"]) == len(stats["accuracy_std"]) == len(stats["macro_f1_mean"]) == 4
        assert all(0 <= a <= 1 for a in stats["accuracy_mean"])
        assert stats["aulc"] == sum(stats["accuracy_mean"]) / 4
        assert stats["labels_to_match_random"] is None or stats["labels_to_match_random"] in stats["budgets"]
    assert set(results["cold_start"]) == {"kmeans", "random", "prior", "kmeans-margin"}
    assert results["config"]["cold_start"] == "kmeans" and results["config"]["prior"] is True
    zero = results["zero_labels"]  # the label-name prior ("sport", "food", "weather") before any label
    assert zero["accuracy"] > 0.6 and 0 < zero["macro_f1"] <= 1
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| strategy | AULC |" in (out / "results.md").read_text()
    assert "At 0 labels (the label-name prior)" in (out / "results.md").read_text()


def test_prior_off_and_cryptic_labels(tmp_path):
    data = _csv(tmp_path / "tiny.csv")
    common = ["--data", str(data), "--text-column", "body", "--label-column", "topic", "--test-fraction", "0.25",
              "--seed-size", "3", "--batch-size", "3", "--budget", "6", "--repeats", "1", "--strategies", "random,margin"]
    proc = _run(*common, "--prior", "off", "--out", str(tmp_path / "off"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    off = json.loads((tmp_path / "off" / "results.json").read_text())
    assert off["zero_labels"] == {"accuracy": None, "macro_f1": None} and off["config"]["cold_start"] == "kmeans"
    assert set(off["cold_start"]) == {"kmeans", "random"}
    proc = _run(*common, "--cryptic-labels", "--out", str(tmp_path / "cryptic"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    cryptic = json.loads((tmp_path / "cryptic" / "results.json").read_text())
    assert cryptic["dataset"] == "tiny-cryptic" and cryptic["n_classes"] == 3
    proc = _run(*common, "--prior", "off", "--cold-start", "prior", "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2 and "needs the label-name prior" in proc.stderr


def test_clear_errors_for_bad_input(tmp_path):
    data = _csv(tmp_path / "tiny.csv")
    proc = _run("--data", str(data), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no column 'text'" in proc.stderr
    proc = _run("--data", str(tmp_path / "missing.csv"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = _run("--data", str(data), "--text-column", "body", "--label-column", "topic", "--budget", "500")
    assert proc.returncode == 2 and "exceeds the pool" in proc.stderr


def test_stopping_flipped_labels_and_the_cluster_sampler(tmp_path):
    data = _csv(tmp_path / "tiny.csv")
    out = tmp_path / "checks"
    proc = _run("--data", str(data), "--text-column", "body", "--label-column", "topic", "--test-fraction", "0.25",
                "--seed-size", "3", "--batch-size", "3", "--budget", "15", "--repeats", "1", "--flip", "0.2",
                "--clusters", "--strategies", "random,margin", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["strategies"]) == {"random", "margin", "margin+clusters"}
    for stats in results["strategies"].values():
        assert stats["stopping"]["fired"].endswith("of 1 repeats") and "final_accuracy" in stats["stopping"]
        assert 0 <= stats["suspicious"]["precision_at_10"] <= 1 and stats["suspicious"]["wrong_labels_mean"] >= 0
    table = (out / "results.md").read_text()
    assert "Stopping signal" in table and "Suspicious labels (20% of the oracle's labels wrong)" in table
    bad = _run("--data", str(data), "--text-column", "body", "--label-column", "topic", "--flip", "1.5", "--out", str(out))
    assert bad.returncode == 2 and "flip is the fraction of wrong labels" in bad.stderr
