"""Build the engine with its parts that plug in from outside, the same way in the web server and
the RQ worker: the training runner (the RQ queue with REDIS_URL, else the engine's own threads)
and the subscribers to its events (metrics, the Label Studio link)."""
from __future__ import annotations

from typing import Tuple

from .engine import Engine
from .metrics import Metrics
from .redis_queue import RedisTrainingQueue, RunStats
from .settings import Settings
from .studio_client import LabelStudioClient
from .studio_link import StudioLink


def build_engine(settings: Settings, worker: bool = False) -> Tuple[Engine, Metrics]:
    """The engine, its metrics, and the Label Studio link when credentials are set.

    `worker`: this process trains for an RQ queue; it adds its runs up in Redis for the replicas'
    `/metrics` instead of counting them itself.
    """
    queue = None
    if settings.redis_url:
        queue = RedisTrainingQueue(settings.redis_url, settings.rq_queue, settings.model_dir / "projects")
    engine = Engine(settings, jobs=queue)
    run_stats = None
    if queue is not None:
        queue.retry_deferred()  # requests kept while Redis was unreachable, before this process started
        stats = RunStats(queue.redis)
        if worker:
            engine.events.subscribe(stats)
        run_stats = stats.read
    metrics = Metrics(engine.jobs.queue_depth, engine.current_versions, None if worker else run_stats)
    engine.events.subscribe(metrics)
    if settings.label_studio_enabled:
        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key)
        link = StudioLink(engine, client, settings)
        engine.events.subscribe(link)  # its `serving` (Engine.resume, in the serving process) catches up
    return engine, metrics
