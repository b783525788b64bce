"""Prometheus metrics of one server process (`GET /metrics`).

Request metrics are counted where requests are served. Training runs are counted where they run:
in this process with the in-process runner; in the RQ worker otherwise, which adds them up in
Redis (`redis_queue.RunStats`), and every replica's `/metrics` reads them from there.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from .events import Listener
from .registry import version_number

PREDICT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 100.0)


class Metrics(Listener):
    """The process's registry; subscribed to the engine for training runs (in-process runner)."""

    def __init__(self, queue_depth: Callable[[], Optional[int]], versions: Callable[[], Dict[str, str]],
                 run_stats: Optional[Callable[[], Optional[Dict[str, float]]]] = None):
        self.registry = CollectorRegistry()
        self.predict_seconds = Histogram("baal_predict_seconds", "Time to answer /predict", registry=self.registry,
                                         buckets=PREDICT_BUCKETS)
        self.texts_scored = Counter("baal_texts_scored", "Texts scored by /predict", registry=self.registry)
        self.webhooks = Counter("baal_webhooks", "Webhooks received, by action and HTTP status",
                                ["action", "status"], registry=self.registry)
        self._run_stats = run_stats
        if run_stats is None:  # runs happen here
            self.runs = Counter("baal_training_runs", "Training runs, by outcome", ["outcome"], registry=self.registry)
            self.run_seconds = Summary("baal_training_run_seconds", "Duration of training runs", registry=self.registry)
        self.registry.register(_StateCollector(queue_depth, versions, run_stats))

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        if self._run_stats is None:
            self.runs.labels(record.get("status", "unknown")).inc()
            self.run_seconds.observe(seconds)


class _StateCollector(Collector):
    """Read at scrape time: queue depth, each project's current version, runs counted elsewhere
    (with Redis: `baal_redis_up`, and no queue depth nor run counts while it does not answer)."""

    def __init__(self, queue_depth, versions, run_stats):
        self.queue_depth, self.versions, self.run_stats = queue_depth, versions, run_stats

    def collect(self) -> Iterator:
        depth = self.queue_depth()
        if depth is not None:
            yield GaugeMetricFamily("baal_training_queue", "Projects with a training run going or queued", value=depth)
        current = GaugeMetricFamily("baal_current_version", "Number of each project's current version (0: untrained)",
                                    labels=["project"])
        for project, version in sorted(self.versions().items()):
            current.add_metric([project], version_number(version))
        yield current
        if self.run_stats is not None:
            stats = self.run_stats()
            yield GaugeMetricFamily("baal_redis_up", "1 when Redis answers, 0 when it does not",
                                    value=int(stats is not None))
            if stats is None:
                return
            runs = CounterMetricFamily("baal_training_runs", "Training runs, by outcome", labels=["outcome"])
            for key, value in sorted(stats.items()):
                if key.startswith("outcome:"):
                    runs.add_metric([key.split(":", 1)[1]], value)
            yield runs
            yield SummaryMetricFamily("baal_training_run_seconds", "Duration of training runs",
                                      count_value=stats.get("count", 0), sum_value=stats.get("seconds", 0.0))
