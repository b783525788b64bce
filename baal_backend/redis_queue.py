"""Training across replicas, the asking side: with `REDIS_URL`, every replica (and worker) asks
for training runs through an RQ queue in Redis; a worker (`rq_runner`) trains.

* Bursts coalesce across replicas: a request only sets the project's "pending" flag, and enqueues
  a job when none is queued yet. A burst of webhooks to any number of replicas gives one or two
  runs, the last on every label.
* Redis down: a training request is kept in the project's directory (`DEFERRED`) and answered
  "deferred"; a background loop sends it once Redis answers again (`retry_deferred`). Reads say
  "unknown" (None) instead of failing, and `problems()` says what is wrong for `/health`.
* A killed worker strands nothing: every worker calls `recover`, which gives a project whose run
  lock expired the run it had taken, and any request that came meanwhile, a job.

A `jobs.TrainingRunner`, like the in-process `jobs.TrainingCoordinator`; `wiring` plugs it into
the engine. The job itself is named by its path (`JOB`), never imported: the worker side imports
this module, not the other way round.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from .events import Listener
from .logs import mask_credentials, public_error
from .registry import atomic_write_text

log = logging.getLogger(__name__)

JOB = "baal_backend.rq_runner.train_job"  # the RQ job every request enqueues (run by `rq_runner`)
QUEUED_SECONDS = 6 * 3600  # a queued job that never started stops blocking new ones after this
JOB_TIMEOUT = 6 * 3600  # the longest run RQ lets a job take (fine-tuning on a CPU is slow)
CONNECT_SECONDS = 5  # an unreachable Redis host fails a request after this, not the OS's minutes
RETRY_SECONDS = 2.0  # how often requests kept while Redis was unreachable are sent again
DEFERRED = "training_deferred.json"  # in a project's directory: a request Redis did not take
STATS = "baal:runstats"

#: KEYS: lock, running, pending, queued; ARGV: queued's expiry. A project whose lock is gone but
#: whose run was taken (`running`: its worker died) gets that run back as pending; a project with
#: a request pending and no job queued gets one (returns 1: the caller enqueues it).
_RECOVER = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
if redis.call('exists', KEYS[2]) == 1 then
  redis.call('set', KEYS[3], 1)
  redis.call('del', KEYS[2])
end
if redis.call('exists', KEYS[3]) == 0 then return 0 end
if redis.call('set', KEYS[4], 1, 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""


def redis_key(kind: str, project_id: str) -> str:
    """The project's Redis key of `kind`: lock, running, pending, sync, queued, runs."""
    return f"baal:{kind}:{project_id}"


class RedisTrainingQueue:
    """`request` / `is_training` / `wait_idle` / `busy` / `queue_depth` / `shutdown`, over Redis.

    `state_dir` (MODEL_DIR/projects) keeps the requests Redis could not take."""

    def __init__(self, redis_url: str, queue: str, state_dir: Path):
        self.url = mask_credentials(redis_url)
        # a Redis that accepts but never answers must not hold request threads: every call times out
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=CONNECT_SECONDS)
        self.queue = Queue(queue, connection=self.redis)
        self.state_dir = state_dir
        self._recover = self.redis.register_script(_RECOVER)
        self._retry_lock = threading.Lock()
        self._retrying: Optional[threading.Thread] = None

    def request(self, project_id: str, sync: bool = False) -> str:
        """Mark the project as needing a run and enqueue a job unless one is queued already:
        "queued". "deferred" when Redis does not answer: the request is kept on disk and sent
        when it does, so a stored label never waits for a run that nobody queued."""
        try:
            self._send(project_id, sync)
        except RedisError as exc:
            self._defer(project_id, sync, exc)
            return "deferred"
        return "queued"

    def _send(self, project_id: str, sync: bool, force: bool = False) -> None:
        """`force`: enqueue even if a job seems queued (a kept request: the outage may have cut
        its first attempt between setting `queued` and enqueueing; a spare job is harmless)."""
        pipe = self.redis.pipeline()
        pipe.set(redis_key("pending", project_id), 1)
        if sync:
            pipe.set(redis_key("sync", project_id), 1)
        pipe.set(redis_key("queued", project_id), 1, nx=True, ex=QUEUED_SECONDS)
        fresh = pipe.execute()[-1]
        if fresh or force:
            self.enqueue(project_id)

    def _defer(self, project_id: str, sync: bool, exc: RedisError) -> None:
        """Keep the request in the project's directory; the retry loop sends it."""
        marker = self.state_dir / project_id / DEFERRED
        try:
            atomic_write_text(marker, json.dumps({"sync": sync or _kept_sync(marker)}))
        except OSError as error:  # no project directory (deleted) or MODEL_DIR unwritable
            log.error("project %s: %s; the training request cannot be kept either (%s)", project_id,
                      self._unreachable(exc), public_error(error))
            return
        log.warning("project %s: %s; training request kept, queued when Redis answers", project_id,
                    self._unreachable(exc))
        self.retry_deferred()

    def retry_deferred(self) -> None:
        """Send the kept requests in the background, every `RETRY_SECONDS` until Redis answers
        (one loop per process; it ends when none is left)."""
        with self._retry_lock:
            if self._retrying is None:
                self._retrying = threading.Thread(target=self._retry_loop, name="redis-retry", daemon=True)
                self._retrying.start()

    def _retry_loop(self) -> None:
        while True:
            with self._retry_lock:  # a request kept after this check starts a new loop
                if not self._kept():
                    self._retrying = None
                    return
            try:
                sent = self._send_kept()
                if sent:
                    log.info("Redis at %s answers again: queued the training requests kept for projects %s",
                             self.url, ", ".join(sent))
            except RedisError:
                pass
            except Exception:  # noqa: BLE001 - the loop must outlive a surprise, or kept requests wait forever
                log.exception("sending the training requests kept while Redis was unreachable failed")
            time.sleep(RETRY_SECONDS)

    def _kept(self) -> List[Path]:
        return sorted(self.state_dir.glob(f"*/{DEFERRED}"))

    def _send_kept(self) -> List[str]:
        """Send every kept request (each claimed by a rename, so one process sends it); returns
        their projects. A RedisError puts the one in hand back."""
        sent = []
        for marker in self._kept():
            claimed = marker.with_name(f".{DEFERRED}.{os.getpid()}")
            try:
                marker.rename(claimed)
            except FileNotFoundError:  # another replica took it
                continue
            try:
                self._send(marker.parent.name, _kept_sync(claimed), force=True)
            except RedisError:
                try:
                    os.link(claimed, marker)  # unless a newer request was kept meanwhile: it covers this one
                except FileExistsError:
                    pass
                raise
            finally:
                claimed.unlink()
            sent.append(marker.parent.name)
        return sent

    def _unreachable(self, exc: BaseException) -> str:
        return f"Redis at {self.url} is unreachable: {public_error(exc)}"

    def problems(self) -> List[str]:
        """What `/health` lists: Redis not answering now (asked now), and what that means."""
        try:
            self.redis.ping()
        except RedisError as exc:
            kept = len(self._kept())
            return [f"{self._unreachable(exc)}; labels are still stored, training waits ({kept} project(s) with a "
                    "training request kept on disk, queued when Redis answers)"]
        return []

    def recover(self) -> List[str]:
        """Queue a job for each project a killed worker left stranded: its lock expired with the
        run it had taken, or a request pending, and no job queued. Returns those projects."""
        projects = {key.decode().split(":", 2)[2] for kind in ("running", "pending")
                    for key in self.redis.scan_iter(match=redis_key(kind, "*"), count=1000)}
        stranded = []
        for project_id in sorted(projects):
            keys = [redis_key(kind, project_id) for kind in ("lock", "running", "pending", "queued")]
            if self._recover(keys=keys, args=[QUEUED_SECONDS]):
                self.enqueue(project_id)
                stranded.append(project_id)
        if stranded:
            log.warning("projects %s: a worker stopped in the middle of their runs; queued them again",
                        ", ".join(stranded))
        return stranded

    def enqueue(self, project_id: str) -> None:
        """A job for the project's run (whoever set its `queued` key enqueues it)."""
        try:
            self.queue.enqueue(JOB, project_id, job_timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=24 * 3600)
        except Exception:
            self.redis.delete(redis_key("queued", project_id))  # or every later request would wait on a job that never was
            raise

    def is_training(self, project_id: str) -> Optional[bool]:
        """A run going (its lock), asked for (a queued job or the pending flag) or left by a
        killed worker (`running`), anywhere; None when Redis does not answer (unknown)."""
        keys = [redis_key(kind, project_id) for kind in ("queued", "pending", "lock", "running")]
        try:
            return bool(self.redis.exists(*keys))
        except RedisError:
            return None

    def wait_idle(self, project_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_training(project_id) is not False:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def runs(self, project_id: str) -> int:
        """How many runs workers have started for the project."""
        return int(self.redis.get(redis_key("runs", project_id)) or 0)

    def busy(self) -> int:
        """Runs going in this process: none, the worker trains."""
        return 0

    def queue_depth(self) -> Optional[int]:
        """Jobs in the RQ queue; None when Redis does not answer."""
        try:
            return self.queue.count
        except RedisError:
            return None

    def shutdown(self, grace: float) -> bool:
        return True


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

    def read(self) -> Optional[Dict[str, float]]:
        """The runs added up so far; None when Redis does not answer."""
        try:
            return {k.decode(): float(v) for k, v in self.redis.hgetall(STATS).items()}
        except RedisError:
            return None


def _kept_sync(marker: Path) -> bool:
    """Whether a kept request asked for a sync first (False when there is none)."""
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")).get("sync"))
    except (OSError, ValueError):
        return False
