"""Command line: `python -m baal_backend serve|worker|simulate|export|trash|restore ...`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from .settings import HEURISTICS, default_model_path
from .simulation_config import COLD_STARTS


def _simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import DataError, TextDataset, load_data
    from .simulation import cryptic, first_classes, simulate, split_test
    from .simulation_config import SimulationConfig
    from .simulation_results import write_outputs

    try:
        pool, test = load_data(args.data, args.text_column, args.label_column, args.test)
        cfg = SimulationConfig(
            strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
            seed_size=args.seed_size,
            batch_size=args.batch_size,
            budget=args.budget,
            repeats=args.repeats,
            mode=args.mode,
            model=args.model or default_model_path(),
            cold_start=args.cold_start,
            mc=args.mc,
            num_draws=args.draws,
            max_length=args.max_length,
            seed=args.seed,
            prior=args.prior == "on",
            flip=args.flip,
            clusters=args.clusters,
        )
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if test is None:
        pool, test = split_test(pool, args.test_fraction, args.seed)
    if args.classes:
        pool, test = first_classes(pool, test, args.classes)
    if args.cryptic_labels:
        pool, test = cryptic(pool, test, args.seed)
    if args.pool_size and args.pool_size < len(pool):
        keep = np.random.default_rng(args.seed).choice(len(pool), args.pool_size, replace=False)
        pool = TextDataset(pool.name, [pool.texts[i] for i in keep], [pool.labels[i] for i in keep])
    if cfg.budget > len(pool):
        print(f"error: budget {cfg.budget} exceeds the pool of {len(pool)} texts", file=sys.stderr)
        return 2
    print(f"{pool.name}: pool {len(pool)}, test {len(test)}, {len(set(pool.labels))} classes, "
          f"budgets {cfg.budgets[0]}..{cfg.budgets[-1]} by {cfg.batch_size}", file=sys.stderr)
    results = simulate(pool, test, cfg, progress=not args.quiet)
    write_outputs(results, Path(args.out))
    print((Path(args.out) / "results.md").read_text())
    return 0


def _serve(args: argparse.Namespace, rest: List[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _wsgi

    _wsgi.main(rest)
    return 0


def _worker(args: argparse.Namespace) -> int:
    """The RQ training worker: trains what every replica queues (REDIS_URL), one job at a time."""
    import threading

    from . import logs, rq_runner, trainer_process
    from .settings import Settings, SettingsError
    from .wiring import build_engine

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("configuration error: the worker needs REDIS_URL (the queue the web replicas fill)", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    logging.getLogger(__name__).info("training worker: %s", settings.describe())
    engine, _ = build_engine(settings, worker=True)
    trainer_process.start()
    threading.Thread(target=engine.resume, name="resume", daemon=True).start()
    rq_runner.run_worker(engine)
    engine.shutdown(0)  # ends the listeners' background work (the Label Studio reconciler)
    trainer_process.shutdown()
    return 0


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ would start a formula."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _export(args: argparse.Namespace) -> int:
    """The report's lists from the command line: texts to label next (margin <= threshold, 0.3 by
    default; several questions: the rank score of the least certain answer, with its `question`, by
    default at most the `question_insight.TO_LABEL_ROWS`-th lowest, as the page) or the suspicious
    labels (several questions: each names its `question`), as CSV or JSON (by the file's suffix),
    from the newest version's files."""
    import csv
    import json

    from . import insight, question_insight
    from .project import Project
    from .settings import Settings, SettingsError
    from .studio import RequestError, project_id

    try:
        settings = Settings.from_env(resolve_model=False)  # reads files only: no encoder
        pid = project_id(args.project)
    except (SettingsError, RequestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".json"):
        print(f"error: --out must end in .csv or .json, not {out.name!r}", file=sys.stderr)
        return 2
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        print(f"error: --threshold is a margin between 0 and 1, not {args.threshold:g}", file=sys.stderr)
        return 2
    project = Project(pid, settings.model_dir / "projects" / pid, settings.keep_versions)
    latest = insight.current(project) if project.exists else None
    if latest is None:
        print(f"error: project {pid} has no version with report data in {settings.model_dir} (MODEL_DIR)", file=sys.stderr)
        return 1
    if args.suspicious and latest.get("suspicious") is None:
        print(f"error: {latest['version']} has no suspicious labels: {latest.get('suspicious_reason')}", file=sys.stderr)
        return 1
    questions = "questions" in latest  # one model line per question (`question_insight`)
    threshold = args.threshold
    if threshold is None:
        threshold = question_insight.default_threshold(latest.get("pool") or []) if questions else 0.3
    to_label = question_insight.to_label if questions else insight.to_label
    rows = latest["suspicious"] if args.suspicious else to_label(latest, threshold)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    else:
        if questions:
            columns = question_insight.SUSPICIOUS_COLUMNS if args.suspicious else question_insight.TO_LABEL_COLUMNS
        else:
            columns = list(rows[0]) if rows else (["annotation", "task", "text", "label", "p_label", "model_says",
                                                   "p_model", "suspicion"] if args.suspicious else
                                                  ["task", "text", "top", "p_top", "second", "p_second", "margin", "score"])
        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    what = "suspicious labels" if args.suspicious else (
        f"texts with {'a least certain rank score' if questions else 'margin'} <= {threshold:g}")
    print(f"{len(rows)} {what} of project {pid} ({latest['version']}) written to {out}", file=sys.stderr)
    return 0


def _trash(args: argparse.Namespace) -> int:
    """List the trash (`trash`) or put a deleted project back (`restore --project N`). Restoring
    is always this explicit act: a running server serves the project again at its next request."""
    import time

    from .project import Trash, TrashError
    from .settings import Settings, SettingsError
    from .studio import RequestError, project_id

    try:
        settings = Settings.from_env(model_dir=Path(args.model_dir) if args.model_dir else None, resolve_model=False)
        pid = project_id(args.project) if args.command == "restore" else None
    except (SettingsError, RequestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trash = Trash(settings.model_dir, settings.trash_days)
    if pid is None:
        entries = trash.entries()
        for entry in entries:
            purge = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.deleted_at + settings.trash_days * 86400))
            deleted = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.deleted_at))
            print(f"project {entry.project}\tdeleted {deleted}\tpurged after {purge}\t{entry.path}")
        print(f"{len(entries)} deleted project(s) in {trash.path} (TRASH_DAYS={settings.trash_days:g})", file=sys.stderr)
        return 0
    try:
        place = trash.restore(pid)
    except TrashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"project {pid} restored to {place}", file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baal_backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the ML backend (same options as _wsgi.py)", add_help=False)
    sub.add_parser("worker", help="train for the RQ queue in Redis (REDIS_URL), beside the web replicas")

    sim = sub.add_parser("simulate", help="active-learning simulation on a labelled data set")
    sim.add_argument("--data", required=True, help="CSV/TSV/JSONL file, CLINC-style JSON, or built-in: clinc150, bbc, tweets-es")
    sim.add_argument("--text-column", default="text")
    sim.add_argument("--label-column", default="label")
    sim.add_argument("--test", default=None, help="a separate labelled test file")
    sim.add_argument("--test-fraction", type=float, default=0.2, help="test slice when there is no test set")
    sim.add_argument("--strategies", default="random,bald,entropy,margin,power_bald",
                     help=f"comma-separated, from: {','.join(HEURISTICS)}")
    sim.add_argument("--seed-size", type=int, default=10, help="labels before the first model")
    sim.add_argument("--batch-size", type=int, default=10, help="labels added per round")
    sim.add_argument("--budget", type=int, default=200, help="labels at the end")
    sim.add_argument("--repeats", type=int, default=3)
    sim.add_argument("--mode", choices=["head", "finetune"], default="head", help="the server's training mode")
    sim.add_argument("--model", default=None, help="base model or fine-tuned checkpoint (default: packaged MiniLM)")
    sim.add_argument("--cold-start", choices=list(COLD_STARTS), default="kmeans",
                     help="how the seed set is chosen (kmeans: the server's rule; prior, kmeans-margin: with the "
                          "label-name prior, measured for comparison)")
    sim.add_argument("--draws", type=int, default=20, help="MC-Dropout draws")
    sim.add_argument("--mc", choices=["head", "full"], default="head",
                     help="dropout in the head only (the server's path) or in the whole network (costly)")
    sim.add_argument("--max-length", type=int, default=128)
    sim.add_argument("--pool-size", type=int, default=None, help="subsample the pool to this many texts")
    sim.add_argument("--prior", choices=["on", "off"], default="on",
                     help="learn on top of the label-name prior (and report it at 0 labels)")
    sim.add_argument("--classes", type=int, default=None, help="keep only the first N classes (sorted by name)")
    sim.add_argument("--cryptic-labels", action="store_true",
                     help="rename the classes to meaningless codes (what the prior does with names that say nothing)")
    sim.add_argument("--flip", type=float, default=0.0,
                     help="this fraction of the oracle's labels is wrong; reports the suspicious-label list's precision")
    sim.add_argument("--clusters", action="store_true",
                     help="also run each strategy through Label Studio's sampler with k-means clusters on the predictions")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", default="simulation", help="output directory")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")

    exp = sub.add_parser("export", help="the report's lists as CSV/JSON: texts to label next, or --suspicious labels")
    exp.add_argument("--project", required=True, help="the Label Studio project id")
    exp.add_argument("--threshold", type=float, default=None,
                     help="texts whose margin is at most this (default 0.3); several questions: whose least certain "
                          "answer's rank score is at most this (default: the 100th lowest of the sampled texts, so "
                          "the 100 Label Studio serves first, ties included)")
    exp.add_argument("--out", required=True, help="a .csv or .json file")
    exp.add_argument("--suspicious", action="store_true", help="the suspicious labels instead of the texts to label")

    listing = sub.add_parser("trash", help="list the projects deleted in Label Studio that can still be restored")
    restore = sub.add_parser("restore", help="bring a deleted project's labels and versions back from the trash")
    restore.add_argument("--project", required=True, help="the Label Studio project id")
    for command in (listing, restore):
        command.add_argument("--model-dir", default=None, help="MODEL_DIR (default: the MODEL_DIR variable, or models)")

    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "serve":
        return _serve(args, rest)
    if args.command == "worker":
        return _worker(args)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.command in ("trash", "restore"):
        return _trash(args)
    return _export(args) if args.command == "export" else _simulate(args)


if __name__ == "__main__":
    sys.exit(main())
