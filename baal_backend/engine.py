"""The engine: projects, their labels, versions and models, behind a few plain methods.

Nothing here knows Label Studio: `label_studio_baal_hf.py` translates its JSON, and the Label
Studio link (`studio_link`) subscribes to what the engine announces (`events`). One `Engine` per
process serves every project; projects share only the loaded models (`shared_models`).

`Engine` is a facade; each part owns one thing:
  projects   the project table, its label configs and labels, the trash     (`ProjectTable`)
  identity   which Label Studio project a stored project is                   (`Identities`)
  served     which version each project serves, loaded and kept in memory    (`ServedVersions`)
  predictor  predictions: a version's, a base checkpoint's, or cold start     (`Predictor`)
  publishing fit a version on a project's labels and publish it              (`Publisher`)
  runs       a training run from request to record, and resuming at start-up (`TrainingRuns`)
The training runner (`jobs`) plugs in from outside (`wiring`: the RQ queue with REDIS_URL), as
the listeners to its events do.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .encoder import Encoder
from .events import Events
from .identity import Identities
from .jobs import TrainingRunner
from .labels import Label, MergeResult
from .model import Classifier
from .predictor import Predictions, Predictor
from .prior import LabelPrior
from .project import Project
from .projects import ProjectTable
from .publishing import Publisher
from .runs import TrainingRuns
from .schema import Schema
from .served import ServedVersions
from .settings import Settings
from .shared_models import SharedModels


class Engine:
    """Everything the HTTP layer asks for, by project id.

    Each method hands over to the part its section names, where its docstring is. `jobs`: what
    runs the training runs (default: `jobs.TrainingCoordinator`, threads of this process)."""

    def __init__(self, settings: Settings, jobs: Optional[TrainingRunner] = None):
        self.settings = settings
        self.events = Events()
        self.table = ProjectTable(settings, self.events, self.request_training)
        self.models = SharedModels(settings)
        self.identities = Identities(self.table, self.events)
        self.served = ServedVersions(settings, self.table, self.models, self.request_training)
        self.predictor = Predictor(settings, self.table, self.models, self.served)
        self.publisher = Publisher(settings, self.models, self.served)
        self.runs = TrainingRuns(settings, self.table, self.publisher, self.events, jobs)
        self.jobs: TrainingRunner = self.runs.jobs
        self.instance: str = self.table.instance
        self.trash = self.table.trash

    # --- projects and their state (`projects`, `identity`) ---------------------------------
    @property
    def problems(self) -> Dict[str, str]:
        """What `/health` lists, by key; listeners add theirs (`reconcile:<project>`)."""
        return self.table.problems

    def project(self, project_id: str) -> Project:
        return self.table.project(project_id)

    def current_version(self, project_id: str) -> str:
        return self.table.current_version(project_id)

    def current_versions(self) -> Dict[str, str]:
        return self.table.current_versions()

    def failed_runs(self) -> Dict[str, Dict]:
        return self.table.failed_runs()

    def schema(self, project_id: str, label_config: Optional[str] = None, authoritative: bool = True) -> Schema:
        return self.table.schema(project_id, label_config, authoritative)

    def store_labels(self, project_id: str, labels: Sequence[Label]) -> Tuple[int, bool]:
        return self.table.store_labels(project_id, labels)

    def delete_labels(self, project_id: str, annotation_ids: Sequence[int], emptied_at: Optional[float] = None) -> int:
        return self.table.delete_labels(project_id, annotation_ids, emptied_at)

    def delete_tasks(self, project_id: str, task_ids: Sequence[int]) -> int:
        return self.table.delete_tasks(project_id, task_ids)

    def merge_labels(self, project_id: str, labels: Sequence[Label], started: float) -> MergeResult:
        return self.table.merge_labels(project_id, labels, started)

    def delete_project(self, project_id: str) -> bool:
        return self.table.delete_project(project_id)

    def identify(self, project_id: str, created: Optional[int], confirmed: bool = False) -> None:
        self.identities.identify(project_id, created, confirmed)

    # --- serving (`served`, `predictor`, `shared_models`) --------------------------------------
    @property
    def encoder(self) -> Encoder:
        return self.models.encoder

    def label_prior(self, schema: Schema) -> Optional[LabelPrior]:
        return self.models.label_prior(schema)

    def classifier(self, project_id: str) -> Tuple[str, Optional[Classifier]]:
        return self.served.classifier(project_id)

    def versions(self, project_id: str) -> List[Dict]:
        return self.served.versions(project_id)

    def predict(self, project_id: str, schema: Schema, texts: Sequence[str], task_ids: Sequence[object] = ()
                ) -> Predictions:
        return self.predictor.predict(project_id, schema, texts, task_ids)

    def remember_tasks(self, project_id: str, task_ids: Sequence[object], texts: Sequence[str]) -> None:
        self.predictor.remember_tasks(project_id, task_ids, texts)

    # --- training (`runs`, `publishing`) -----------------------------------------------------
    def request_training(self, project_id: str, sync: bool = False) -> str:
        return self.runs.request(project_id, sync)

    def train(self, project_id: str, sync: bool) -> None:
        self.runs.train(project_id, sync)

    def training_fingerprint(self, schema: Schema, labels: Sequence[Label]) -> str:
        return self.publisher.fingerprint(schema, labels)

    # --- the process ---------------------------------------------------------------------------
    def resume(self) -> List[str]:
        """At start-up: queue a run for every project whose labels are newer than its current
        version (`TrainingRuns.resume`); returns them. Listeners start their background work
        first (`serving`): this runs in the process that serves."""
        self.events.emit("serving")
        return self.runs.resume()

    def shutdown(self, grace: float) -> bool:
        """Stop taking training requests and wait up to `grace` seconds for running ones; False
        if one is still running (it will be resumed at the next start). Listeners stop their
        background work first (`stopping`)."""
        self.events.emit("stopping")
        return self.jobs.shutdown(grace)
