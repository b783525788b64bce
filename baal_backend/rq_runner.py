"""Training across replicas, the training side: the RQ job and the worker process
(`python -m baal_backend worker`); the replicas ask through `redis_queue`.

* One run at a time per project across every replica and worker: a Redis lock per project
  (kept alive while the run goes, so a dead worker's lock expires in `LOCK_SECONDS`). Every
  worker looks for projects a killed worker left behind (`RedisTrainingQueue.recover`): once the
  lock expired, the run it had taken, and any request that came meanwhile, get a job.
* A job drains the project's "pending" flag: while it is set, clear it and run.
* Versions live in the shared `MODEL_DIR`: every replica serves a new version on its next
  `/predict` (the current-version pointer is read per request).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from redis import Redis
from redis.exceptions import LockError, RedisError
from rq.worker import SimpleWorker

from .engine import Engine
from .logs import request_id
from .redis_queue import QUEUED_SECONDS, RedisTrainingQueue, redis_key
from .settings import Settings
from .wiring import build_engine

log = logging.getLogger(__name__)

LOCK_SECONDS = 20  # a run's lock outlives a dead worker by at most this long
RECOVER_SECONDS = 5.0  # how often a worker looks for projects a killed worker left stranded


def train_job(project_id: str) -> None:
    """The RQ job (`redis_queue.JOB` names it): under the project's lock, run while the project's pending flag is set.

    The lock is taken without waiting: if a run of the project is going elsewhere, that run sees
    the pending flag (it loops while it is set), so this worker is free for other projects. A
    holder re-enqueues, after releasing, a request that came in as it finished."""
    engine = worker_engine()
    redis: Redis = engine.jobs.redis
    redis.delete(redis_key("queued", project_id))  # requests from now on enqueue the next job
    lock = redis.lock(redis_key("lock", project_id), timeout=LOCK_SECONDS, thread_local=False)
    if not lock.acquire(blocking=False):
        return
    token = request_id.set(f"train:{project_id}")
    alive = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(lock, alive, project_id), daemon=True)
    keeper.start()
    try:
        while True:
            pipe = redis.pipeline()  # the run is taken: if this worker dies, `recover` gives it back
            pipe.set(redis_key("running", project_id), 1)
            pipe.getdel(redis_key("pending", project_id))
            if not pipe.execute()[-1]:
                break
            sync = bool(redis.getdel(redis_key("sync", project_id)))
            redis.incr(redis_key("runs", project_id))
            engine.train(project_id, sync)
    finally:
        alive.set()
        keeper.join()
        redis.delete(redis_key("running", project_id))  # ended (a failed run is recorded, not retried)
        try:
            lock.release()
        except LockError:
            log.warning("project %s: the run's Redis lock had expired before it ended", project_id)
        request_id.reset(token)
    pending, queued = redis_key("pending", project_id), redis_key("queued", project_id)
    if redis.exists(pending) and redis.set(queued, 1, nx=True, ex=QUEUED_SECONDS):
        engine.jobs.enqueue(project_id)


def _keep_alive(lock, done: threading.Event, project_id: str) -> None:
    """Extend the run's lock while it goes; a lost lock is logged (the project's file lock in
    the shared MODEL_DIR still keeps two runs apart on one host)."""
    while not done.wait(LOCK_SECONDS / 3):
        try:
            if not lock.extend(LOCK_SECONDS, replace_ttl=True):
                raise LockError("not extended")
        except Exception as exc:  # noqa: BLE001
            log.error("project %s: lost the run's Redis lock (%s)", project_id, exc)
            return


_engine: Optional[Engine] = None
_engine_lock = threading.Lock()


def worker_engine() -> Engine:
    """The worker's engine: built once per worker process (its encoder and caches persist
    across jobs under `rq.SimpleWorker`)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = build_engine(Settings.from_env(), worker=True)[0]
        return _engine


def set_worker_engine(engine: Optional[Engine]) -> None:
    global _engine
    with _engine_lock:
        _engine = engine


def run_worker(engine: Engine, queue: Optional[str] = None) -> None:
    """Serve the training queue in this process until SIGTERM (warm shutdown: the job in hand
    finishes first)."""
    set_worker_engine(engine)
    threading.Thread(target=_recover_loop, args=(engine.jobs,), name="recover", daemon=True).start()
    worker = SimpleWorker([queue or engine.settings.rq_queue], connection=engine.jobs.redis)
    worker.work(with_scheduler=False)


def _recover_loop(jobs: RedisTrainingQueue) -> None:
    """Every `RECOVER_SECONDS`: queue what killed workers left (`RedisTrainingQueue.recover`)."""
    while True:
        try:
            jobs.recover()
        except RedisError:
            pass  # RQ's worker loop logs the outage
        except Exception:  # noqa: BLE001 - the loop must outlive a surprise
            log.exception("looking for projects a killed worker left failed")
        time.sleep(RECOVER_SECONDS)

