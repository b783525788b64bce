"""Build the engine with its subscribers, the same way in the web server and the RQ worker."""
from __future__ import annotations

from typing import Tuple

from .engine import Engine
from .metrics import Metrics
from .settings import Settings


def build_engine(settings: Settings, worker: bool = False) -> Tuple[Engine, Metrics]:
    """The engine, its metrics, and the Label Studio link when credentials are set.

    `worker`: this process trains for an RQ queue; it adds its runs up in Redis for the replicas'
    `/metrics` instead of counting them itself.
    """
    engine = Engine(settings)
    run_stats = None
    if settings.redis_url:
        from .rq_runner import RunStats

        engine.jobs.retry_deferred()  # requests kept while Redis was unreachable, before this process started
        stats = RunStats(engine.jobs.redis)
        if worker:
            engine.events.subscribe(stats)
        run_stats = stats.read
    metrics = Metrics(engine.jobs.queue_depth, engine.current_versions, None if worker else run_stats)
    engine.events.subscribe(metrics)
    if settings.label_studio_enabled:
        from .studio_client import LabelStudioClient
        from .studio_link import StudioLink

        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key)
        link = StudioLink(engine, client, settings)
        engine.events.subscribe(link)  # its `serving` (Engine.resume, in the serving process) catches up
    return engine, metrics
