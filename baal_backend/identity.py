"""Which Label Studio project a stored project is: Label Studio names a project by its id and
its creation time (`"3.1700000000"` in /setup and /predict, `created_at` in its API). The same id
with another creation time is another project (Label Studio reinstalled, a second instance): it
must not inherit the stored one's labels and versions, which go to the trash (restorable)."""
from __future__ import annotations

import logging
import threading
from typing import Dict, Optional

from .events import Events
from .project import Project
from .projects import ProjectTable

log = logging.getLogger(__name__)

IDENTITY = "identity.json"  # per project: {"created": Label Studio's creation time, epoch seconds}


class Identities:
    """The creation time of each project, checked once per process and time."""

    def __init__(self, table: ProjectTable, events: Events):
        self.table = table
        self.events = events
        self._checked: Dict[str, int] = {}  # project -> its creation time in Label Studio, checked
        self._lock = threading.Lock()
        table.on_forget(self.forget)

    def identify(self, project_id: str, created: Optional[int], confirmed: bool = False) -> None:
        """Take `created` as the project's creation time. State from before identities, or made
        before its first stamped request, takes the first time it is given; another time trashes
        the stored project. A time from a request (not `confirmed` by Label Studio itself) is
        checked by the listeners first (`identifying`: the Label Studio link asks Label Studio);
        an objection leaves everything as it is."""
        if created is None:
            return
        with self._lock:
            if self._checked.get(project_id) == created:
                return
        project = self.table.project(project_id)
        if not project.exists:
            return
        known = project.read_json(IDENTITY).get("created")
        if known != created and not confirmed:
            objections = self.events.objections("identifying", project_id, created)
            if objections:
                log.warning("project %s: a request names it as created at %s; not taken (%s)", project_id, created,
                            "; ".join(objections))
                return
        if known is None:
            with self.table.writing("store the project's identity"):
                project.write_json(IDENTITY, {"created": created})
        elif known != created:
            self.table.trash_project(project, f"Label Studio now names another project {project_id} (created at "
                                              f"{created}, the stored one at {known}: a reinstalled or second Label "
                                              "Studio)")
            return
        with self._lock:
            self._checked[project_id] = created

    def forget(self, project: Project) -> None:
        with self._lock:
            self._checked.pop(project.id, None)
