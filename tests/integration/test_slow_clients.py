"""Slow clients against the real server process, as each way of serving starts it.

Was: 8 clients that sent their headers a byte at a time held all 8 request threads of gunicorn's
gthread worker (a thread reads a request from its first byte to its last), and `/health` did not
answer in 8 s. The worker now gathers each request in its poller and hands it to a thread whole.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import requests

from baal_backend.serving import REQUEST_SECONDS
from tests.integration.test_server_process import Server
from tests.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
#: a webhook the backend answers at once (an action it ignores)
WEBHOOK = {"action": "SOMETHING_IGNORED", "project": {"id": 1}}


class SlowClients:
    """`n` loopback sockets that send the start of a request, then one more header byte a second,
    never finishing it, for `seconds` (leaving the `with` block waits for that). `closed_after[i]`:
    when the server closed socket i (seconds after its connect), or None while open; `answers[i]`:
    what the server sent on it."""

    def __init__(self, port: int, n: int, seconds: float, reconnect: bool = False):
        self.port, self.n, self.seconds, self.reconnect = port, n, seconds, reconnect
        self.closed_after: List[Optional[float]] = [None] * n
        self.answers: List[bytes] = [b""] * n
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlowClients":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(self.seconds + 10)

    def stop(self) -> None:
        """End them now instead of after `seconds`."""
        self._stop.set()

    def _connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        s.setblocking(False)
        return s

    def _run(self) -> None:
        socks = [self._connect() for _ in range(self.n)]
        opened = [time.monotonic()] * self.n
        end = time.monotonic() + self.seconds
        try:
            while not self._stop.wait(1.0) and time.monotonic() < end:
                for i, s in enumerate(socks):
                    if self.closed_after[i] is None:
                        self._poke(i, s, opened[i])
                    if self.closed_after[i] is not None and self.reconnect:  # keep n slow clients on
                        s.close()
                        socks[i], opened[i], self.closed_after[i] = self._connect(), time.monotonic(), None
        finally:
            for s in socks:
                s.close()

    def _poke(self, i: int, s: socket.socket, opened: float) -> None:
        try:
            data = s.recv(4096)
            if data:
                self.answers[i] += data
                return
        except BlockingIOError:  # nothing to read: still open
            try:
                s.send(b"x")
                return
            except OSError:
                pass
        except OSError:
            pass
        self.closed_after[i] = time.monotonic() - opened  # EOF or reset: the server closed it


def latency(method: str, url: str, timeout: float = 5.0, **kwargs) -> float:
    """Seconds for one request to be answered 200 (inf when it is not answered in `timeout`)."""
    started = time.perf_counter()
    try:
        resp = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout:
        return float("inf")
    assert resp.status_code == 200, resp.text
    return time.perf_counter() - started


def probe(url: str, rounds: int, every: float = 0.2, timeout: float = 5.0) -> Dict[str, List[float]]:
    """`rounds` times: GET /health and POST a small webhook, each on a fresh connection."""
    times: Dict[str, List[float]] = {"health": [], "webhook": []}
    for _ in range(rounds):
        times["health"].append(latency("GET", f"{url}/health", timeout))
        times["webhook"].append(latency("POST", f"{url}/webhook", timeout, json=WEBHOOK))
        time.sleep(every)
    return times


class Gunicorn(ServerProcess):
    """`gunicorn _wsgi:app` from the repository root, so it reads gunicorn.conf.py (the bind is
    moved to a free loopback port, as a deployment's own `-b` would)."""

    def __init__(self, model_dir: Path, log: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        super().__init__([str(gunicorn), "-b", f"127.0.0.1:{self.port}", "_wsgi:app"], ROOT,
                         {**os.environ, "MODEL_DIR": str(model_dir), **env}, log, f"{self.url}/health", timeout=120)


LAUNCHERS = {"python _wsgi.py": Server, "gunicorn _wsgi:app": Gunicorn}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_32_slow_clients_leave_health_and_webhook_quick(tmp_path, launcher):
    server = LAUNCHERS[launcher](tmp_path / "models", tmp_path / "server.log")
    try:
        assert latency("GET", f"{server.url}/health") < 5  # warm: the first request imports lazily
        with SlowClients(server.port, 32, seconds=REQUEST_SECONDS + 3) as slow:
            time.sleep(1.5)  # all connected, each a byte or two into its headers
            times = probe(server.url, rounds=5, timeout=3)
            assert max(times["health"]) < 1 and max(times["webhook"]) < 1, times
        # a client has REQUEST_SECONDS for its whole request: then 408 and the connection closed
        assert all(c is not None and REQUEST_SECONDS - 1 <= c <= REQUEST_SECONDS + 2.5 for c in slow.closed_after), \
            slow.closed_after
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in slow.answers), slow.answers[:3]
        assert latency("GET", f"{server.url}/health") < 1
    finally:
        server.stop(signal.SIGKILL)
