"""How every way of serving (`python _wsgi.py`, `gunicorn _wsgi:app` with `gunicorn.conf.py`,
`label-studio-ml start .`) runs gunicorn: one set of settings (`gunicorn_settings`), the worker
class and the hooks.

* One worker process (it owns the training threads and the job coordinator): gunicorn's gthread
  worker with one change (`BufferingThreadWorker`): a request thread takes a connection only once
  its request has arrived, so slow clients cannot hold the threads.
* After a worker starts: start the training process (`trainer_process`), and train the projects
  whose labels are newer than their current version (a run lost to a kill, labels stored while no
  run could finish).
* On SIGTERM: stop taking training requests, give a running run `GRACE_SECONDS` to finish, then
  leave at once with status 0. A run still going is abandoned and resumed at the next start.
  (Leaving through the interpreter's normal shutdown would tear torch's threads down under a
  running run: the process died with SIGABRT, "terminate called without an active exception".)
"""
from __future__ import annotations

import ipaddress
import logging
import os
import selectors
import threading
import time
from functools import partial
from typing import Any, Dict, List

import h11
from gunicorn.workers import gthread

from . import trainer_process

log = logging.getLogger("baal_backend.serving")

GRACE_SECONDS = 20.0
#: gunicorn's own limit for a graceful stop must leave the grace period room
GRACEFUL_TIMEOUT = int(GRACE_SECONDS) + 10
#: a client has this long to send its request (headers, and a body up to BUFFER_BYTES): then 408
REQUEST_SECONDS = 10.0
#: what the worker's poller holds of one request; gunicorn's largest head (a 4094-byte request line
#: and 100 fields of 8190 bytes) fits. The rest of a larger body is read by the request thread.
BUFFER_BYTES = 1 << 20
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def gunicorn_settings(bind: str = "0.0.0.0:9090", threads: int = 8) -> Dict[str, Any]:
    """gunicorn's settings, the one source for `gunicorn.conf.py` and `_wsgi._serve`."""
    return {
        "bind": bind,
        "workers": 1,  # one per MODEL_DIR: it owns the training threads
        "worker_class": BufferingThreadWorker,
        "threads": threads,
        "timeout": 300,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "control_socket_disable": True,  # one shared socket path would clash between instances
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }


class _Arrival:
    """One request's bytes as they arrive, and whether a thread may take them (h11 frames the
    request as gunicorn will: Content-Length, chunked, Expect)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.deadline = time.monotonic() + REQUEST_SECONDS
        self._framing = h11.Connection(h11.SERVER, max_incomplete_event_size=BUFFER_BYTES)

    def add(self, data: bytes) -> bool:
        """Take `data`; True once a thread can serve the request without waiting on the client:
        it is all here, the client waits for `100 Continue` before its body, the body is larger
        than BUFFER_BYTES, or h11 cannot frame it (malformed: gunicorn answers 400)."""
        self.data += data
        if len(self.data) > BUFFER_BYTES:
            return True
        self._framing.receive_data(data)
        try:
            while True:
                event = self._framing.next_event()
                if event is h11.NEED_DATA:
                    return False
                if isinstance(event, h11.Request) and any(name == b"expect" for name, _ in event.headers):
                    return True
                if not isinstance(event, (h11.Request, h11.Data)):  # EndOfMessage (or PAUSED after it)
                    return True
        except h11.RemoteProtocolError:
            return True


class BufferingThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, except that a request thread takes a connection only once its
    request has arrived. gthread hands a connection to a thread at its first byte, and the thread
    then reads the request with no time limit: 8 clients sending headers a byte a second held
    all 8 threads, and nothing else was answered. Here the worker's main loop, which only waits
    on sockets, gathers each request (a new connection's, and the next one on a kept-alive
    connection), and closes with 408 a connection whose request is not in after REQUEST_SECONDS.
    TLS and HTTP/2, unwrapped in the thread, keep gthread's own way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: Dict[gthread.TConn, _Arrival] = {}  # in the order of their deadlines
        self.gathers = not self.cfg.is_ssl and self.cfg.http2_cleartext == "off"

    def enqueue_req(self, conn: gthread.TConn) -> None:
        if not self.gathers:
            super().enqueue_req(conn)
            return
        arrival = _Arrival()
        read_ahead = conn.parser.unreader.take_buffered() if conn.parser else b""  # pipelined
        if read_ahead and arrival.add(read_ahead):
            self._serve(conn, arrival)
            return
        conn.sock.setblocking(False)
        self.arriving[conn] = arrival
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._receive, conn))

    def _receive(self, conn: gthread.TConn, _sock: Any) -> None:
        arrival = self.arriving[conn]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            data = b""
        if data and not arrival.add(data):
            return
        self.poller.unregister(conn.sock)
        del self.arriving[conn]
        if data:
            self._serve(conn, arrival)
        else:  # the client left
            self.nr_conns -= 1
            conn.close()

    def _serve(self, conn: gthread.TConn, arrival: _Arrival) -> None:
        conn.init()  # the HTTP/1 parser (no I/O without TLS or HTTP/2)
        conn.parser.unreader.unread(bytes(arrival.data))
        conn.data_ready = True  # gthread's own wait for a first byte is over
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """Also close the connections whose request is late (408 when it had begun)."""
        super().murder_pending()
        now = time.monotonic()
        while self.arriving:
            conn, arrival = next(iter(self.arriving.items()))
            if arrival.deadline > now:
                break
            self.poller.unregister(conn.sock)
            del self.arriving[conn]
            if arrival.data:
                try:
                    conn.sock.send(TIMED_OUT)
                except OSError:
                    pass
            self.log.debug("408: no whole request from %s in %.0f s", conn.client, REQUEST_SECONDS)
            self.nr_conns -= 1
            conn.close()


def _engine(worker: Any):
    app = getattr(worker, "wsgi", None)
    return app.config.get("ENGINE") if app is not None and hasattr(app, "config") else None


def post_worker_init(worker: Any) -> None:
    engine = _engine(worker)
    if engine is None:
        return
    warn_if_open(engine.settings, [str(address) for address in worker.cfg.bind])
    if engine.settings.redis_url:
        return  # the RQ worker trains (and resumes); this replica only serves
    trainer_process.start()
    threading.Thread(target=engine.resume, name="resume", daemon=True).start()


def warn_if_open(settings: Any, binds: List[str]) -> None:
    """One loud line when anyone who reaches a non-loopback address can use every route."""
    if settings.auth_enabled:
        return
    open_binds = [b for b in binds if not _loopback(b)]
    if open_binds:
        log.warning("NO AUTHENTICATION: listening on %s without BASIC_AUTH_USER/BASIC_AUTH_PASS: anyone who reaches "
                    "it can change labels and label configs and start training", ", ".join(open_binds))


def _loopback(bind: str) -> bool:
    host = bind.rsplit(":", 1)[0].strip("[]") if not bind.startswith("unix:") else "unix"
    if host in ("unix", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_exit(server: Any, worker: Any) -> None:
    engine = _engine(worker)
    if engine is None or not getattr(worker, "booted", False):
        return  # the worker never came up (bad settings): gunicorn reports the boot error and stops
    if engine.jobs.busy():
        log.info("stopping: waiting up to %.0f s for the running training run", GRACE_SECONDS)
    finished = engine.shutdown(GRACE_SECONDS)  # at once when idle; also ends the Label Studio reconciler
    if not finished:
        log.warning("stopping with a training run unfinished; it is resumed at the next start")
    trainer_process.shutdown(wait=finished)
    logging.shutdown()
    os._exit(0)
