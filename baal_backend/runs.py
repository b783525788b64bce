"""Training runs from request to record: one run at a time per project (`jobs`: the in-process
`jobs.TrainingCoordinator`, or what `wiring` plugs in, the RQ queue with REDIS_URL), each under
the project's training lock, announced to the listeners (`events`), recorded in `last_run.json`;
and, at start-up, a run for every project whose labels are newer than its current version."""
from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional

from .events import Events
from .jobs import TrainingCoordinator, TrainingRunner
from .logs import public_error
from .projects import ProjectTable
from .publishing import Publisher
from .settings import Settings

log = logging.getLogger(__name__)


class TrainingRuns:
    def __init__(self, settings: Settings, table: ProjectTable, publisher: Publisher, events: Events,
                 jobs: Optional[TrainingRunner] = None):
        self.settings = settings
        self.table = table
        self.publisher = publisher
        self.events = events
        self.jobs: TrainingRunner = jobs if jobs is not None else TrainingCoordinator(self.train)

    def request(self, project_id: str, sync: bool = False) -> str:
        return self.jobs.request(project_id, sync=sync)

    def train(self, project_id: str, sync: bool) -> None:
        """One training run (on a job thread, or in the RQ worker): (sync,) read labels, fit,
        publish, announce."""
        project = self.table.project(project_id)
        record: Dict = {}
        # everything under the project's lock, announcements included: a PROJECT_DELETED waiting
        # for the lock never sees a run write into (or push from) a project it removed
        with project.training_lock() as held:
            if not held:  # nothing stored (never set up, or deleted): nothing to train, nothing to create
                log.info("project %s: no state, no training run", project_id)
                return
            started = time.perf_counter()
            log.info("project %s: training run started%s", project_id, " (sync first)" if sync else "")
            try:
                project.registry.remove_strays()
                schema = self.table.schema(project_id)
                self.events.emit("run_starting", project_id, schema, sync, record)
                report = self.publisher.fit_and_publish(project, schema, record)
                if record.get("status") == "published":
                    self.events.emit("published", project_id, schema, record["version"], record)
                    report()  # after the push is on its way: the report data waits, Label Studio does not
            except Exception as exc:  # noqa: BLE001 - recorded, reported; the previous version keeps serving
                log.exception("project %s: training run failed", project_id)
                record.update(status="failed", error=public_error(exc))
            seconds = time.perf_counter() - started
            record["seconds"] = round(seconds, 2)
            log.info("project %s: training run ended: %s in %.2fs", project_id, record.get("status"), seconds)
            try:
                record = project.record_run(record)
            except OSError as exc:
                log.error("project %s: cannot record the run in MODEL_DIR: %s", project_id, exc)
            self.events.emit("run_finished", project_id, record, seconds)

    def resume(self) -> List[str]:
        """Queue a run for every project whose stored labels, classes or encoder differ from what
        its current version was trained on (a run lost to a kill or a crash, labels stored while
        no run could finish). Returns the projects queued."""
        root = self.settings.model_dir / "projects"
        queued = []
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if path.name.startswith(".") or not path.is_dir():  # temp and trash entries
                continue
            project = self.table.project(path.name)  # known from now on: /health reports its failed runs
            try:
                if project.label_count() < self.settings.min_labels or project.label_config is None:
                    continue
                schema = self.table.schema(project.id)
                labels = self.publisher.training_labels(project, schema)
                current = project.registry.current()
                trained = project.registry.meta(current).get("fingerprint") if current else None
                if len(labels) >= self.settings.min_labels and trained != self.publisher.fingerprint(schema, labels):
                    queued.append(project.id)
                    self.request(project.id)
            except Exception:  # noqa: BLE001 - one broken project never stops the others
                log.exception("project %s: cannot check whether it needs training", path.name)
        if queued:
            log.info("resuming training for projects %s (labels newer than their current version)", ", ".join(queued))
        return queued
