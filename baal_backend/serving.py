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

import logging
import os
import threading
from typing import Any

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
    if engine is not None:
        if engine.settings.train_mode == "head":
            trainer_process.start()
        threading.Thread(target=engine.resume, name="resume", daemon=True).start()


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
