"""gunicorn hooks shared by every way of serving (`python _wsgi.py`, `gunicorn _wsgi:app` with
`gunicorn.conf.py`, `label-studio-ml start .`).

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
import threading
from typing import Any, List

from . import trainer_process

log = logging.getLogger("baal_backend.serving")

GRACE_SECONDS = 20.0
#: gunicorn's own limit for a graceful stop must leave the grace period room
GRACEFUL_TIMEOUT = int(GRACE_SECONDS) + 10


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
    finished = True
    if engine is not None and engine.jobs.busy():
        log.info("stopping: waiting up to %.0f s for the running training run", GRACE_SECONDS)
        finished = engine.shutdown(GRACE_SECONDS)
        if not finished:
            log.warning("stopping with a training run unfinished; it is resumed at the next start")
    trainer_process.shutdown(wait=finished)
    logging.shutdown()
    os._exit(0)
