"""Training across replicas: with `REDIS_URL`, training requests go to an RQ queue in Redis and a
worker (`python -m baal_backend worker`) trains.

* One run at a time per project across every replica and worker: a Redis lock per project
  (kept alive while the run goes, so a dead worker's lock expires in `LOCK_SECONDS`).
* Bursts coalesce across replicas: a request only sets the project's "pending" flag, and enqueues
  a job when none is queued yet. A job drains the flag: while it is set, clear it and run. A burst
  of webhooks to any number of replicas gives one or two runs, the last on every label.
* Versions live in the shared `MODEL_DIR`: every replica serves a new version on its next
  `/predict` (the current-version pointer is read per request).

Same interface as the in-process `jobs.TrainingCoordinator`.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Optional

from redis import Redis
from redis.exceptions import LockError
from rq import Queue

from .events import Listener
from .logs import request_id

log = logging.getLogger(__name__)

LOCK_SECONDS = 60  # a run's lock outlives a dead worker by at most this long
QUEUED_SECONDS = 6 * 3600  # a queued job that never started stops blocking new ones after this
JOB_TIMEOUT = 6 * 3600  # the longest run RQ lets a job take (fine-tuning on a CPU is slow)
STATS = "baal:runstats"


def _key(kind: str, project_id: str) -> str:
    return f"baal:{kind}:{project_id}"


class RedisTrainingQueue:
    """`request` / `is_training` / `wait_idle` / `busy` / `queue_depth` / `shutdown`, over Redis."""

    def __init__(self, redis_url: str, queue: str):
        self.redis = Redis.from_url(redis_url)
        self.queue = Queue(queue, connection=self.redis)

    def request(self, project_id: str, sync: bool = False) -> str:
        """Mark the project as needing a run; enqueue a job unless one is queued already."""
        pipe = self.redis.pipeline()
        pipe.set(_key("pending", project_id), 1)
        if sync:
            pipe.set(_key("sync", project_id), 1)
        pipe.set(_key("queued", project_id), 1, nx=True, ex=QUEUED_SECONDS)
        fresh = pipe.execute()[-1]
        if fresh:
            self._enqueue(project_id)
        return "queued"

    def _enqueue(self, project_id: str) -> None:
        try:
            self.queue.enqueue(train_job, project_id, job_timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=24 * 3600)
        except Exception:
            self.redis.delete(_key("queued", project_id))  # or every later request would wait on a job that never was
            raise

    def is_training(self, project_id: str) -> bool:
        """A run going (its lock) or asked for (a queued job or the pending flag), anywhere."""
        keys = [_key(kind, project_id) for kind in ("queued", "pending", "lock")]
        return bool(self.redis.exists(*keys))

    def wait_idle(self, project_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_training(project_id):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def runs(self, project_id: str) -> int:
        """How many runs workers have started for the project."""
        return int(self.redis.get(_key("runs", project_id)) or 0)

    def busy(self) -> int:
        """Runs going in this process: none, the worker trains."""
        return 0

    def queue_depth(self) -> int:
        return self.queue.count

    def shutdown(self, grace: float) -> bool:
        return True


def train_job(project_id: str) -> None:
    """The RQ job: under the project's lock, run while the project's pending flag is set.

    The lock is taken without waiting: if a run of the project is going elsewhere, that run sees
    the pending flag (it loops while it is set), so this worker is free for other projects. A
    holder re-enqueues, after releasing, a request that came in as it finished."""
    engine = worker_engine()
    redis: Redis = engine.jobs.redis
    redis.delete(_key("queued", project_id))  # requests from now on enqueue the next job
    lock = redis.lock(_key("lock", project_id), timeout=LOCK_SECONDS, thread_local=False)
    if not lock.acquire(blocking=False):
        return
    token = request_id.set(f"train:{project_id}")
    alive = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(lock, alive, project_id), daemon=True)
    keeper.start()
    try:
        while redis.getdel(_key("pending", project_id)):
            sync = bool(redis.getdel(_key("sync", project_id)))
            redis.incr(_key("runs", project_id))
            engine.train(project_id, sync)
    finally:
        alive.set()
        keeper.join()
        try:
            lock.release()
        except LockError:
            log.warning("project %s: the run's Redis lock had expired before it ended", project_id)
        request_id.reset(token)
    if redis.exists(_key("pending", project_id)) and redis.set(_key("queued", project_id), 1, nx=True, ex=QUEUED_SECONDS):
        engine.jobs._enqueue(project_id)


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


class RunStats(Listener):
    """In the worker: add each run's outcome and duration up in Redis, for every replica's
    `/metrics`."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        pipe = self.redis.pipeline()
        pipe.hincrby(STATS, f"outcome:{record.get('status', 'unknown')}", 1)
        pipe.hincrby(STATS, "count", 1)
        pipe.hincrbyfloat(STATS, "seconds", seconds)
        pipe.execute()

    def read(self) -> Dict[str, float]:
        return {k.decode(): float(v) for k, v in self.redis.hgetall(STATS).items()}


_engine = None
_engine_lock = threading.Lock()


def worker_engine():
    """The worker's engine: built once per worker process (its encoder and caches persist
    across jobs under `rq.SimpleWorker`)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from .settings import Settings
            from .wiring import build_engine

            _engine = build_engine(Settings.from_env(), worker=True)[0]
        return _engine


def set_worker_engine(engine) -> None:
    global _engine
    with _engine_lock:
        _engine = engine


def run_worker(engine, queue: Optional[str] = None) -> None:
    """Serve the training queue in this process until SIGTERM (warm shutdown: the job in hand
    finishes first)."""
    from rq.worker import SimpleWorker

    set_worker_engine(engine)
    worker = SimpleWorker([queue or engine.settings.rq_queue], connection=engine.jobs.redis)
    worker.work(with_scheduler=False)
