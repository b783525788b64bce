"""`/health` and `/webhook` latency while slow clients hold connections open.

Starts the real server process (`python _wsgi.py`, and `gunicorn _wsgi:app` with
gunicorn.conf.py), then probes `/health` and a small webhook (each on a fresh connection), first
quiet, then beside `--clients` loopback sockets that send a partial request and one more header
byte a second (a socket the server closes is replaced at once, so the count stays). A probe not
answered in `--timeout` seconds counts as unanswered; p50/max are over the answered ones.

    .venv/bin/python benchmarks/slow_clients.py [--clients 32] [--rounds 10] [--timeout 8]
        [--out benchmarks/results/slow_clients.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.integration.test_slow_clients import LAUNCHERS, SlowClients, latency, probe  # noqa: E402


def stats(times: List[float]) -> Dict:
    answered = sorted(t for t in times if math.isfinite(t))
    return {"n": len(times), "unanswered": len(times) - len(answered),
            "p50": round(answered[len(answered) // 2], 4) if answered else None,
            "max": round(answered[-1], 4) if answered else None}


def measure(launcher: str, clients: int, rounds: int, timeout: float) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = LAUNCHERS[launcher](Path(tmp) / "models", Path(tmp) / "server.log")
        try:
            latency("GET", f"{server.url}/health", timeout=30)  # warm up
            quiet = probe(server.url, rounds, timeout=timeout)
            # long enough for every probe to time out, and well past the server's request deadline
            with SlowClients(server.port, clients, seconds=rounds * 2 * (timeout + 0.2) + 2, reconnect=True) as slow:
                time.sleep(1.5)  # all connected, each a byte or two into its headers
                started = time.monotonic()
                loaded = probe(server.url, rounds, timeout=timeout)
                slow.stop()
                probed = time.monotonic() - started
        finally:
            server.stop(signal.SIGKILL)
    return {"quiet": {k: stats(v) for k, v in quiet.items()},
            f"{clients} slow clients": {k: stats(v) for k, v in loaded.items()},
            "probing seconds under load": round(probed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=8.0)
    parser.add_argument("--launchers", nargs="+", default=list(LAUNCHERS), choices=list(LAUNCHERS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {"clients": args.clients, "rounds": args.rounds, "timeout": args.timeout,
               **{name: measure(name, args.clients, args.rounds, args.timeout) for name in args.launchers}}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
