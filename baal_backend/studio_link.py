"""The Label Studio side of the loop, with credentials (`LABEL_STUDIO_URL` + `LABEL_STUDIO_API_KEY`).

`StudioLink` subscribes to the engine's events and hands each to its part:
* before a run that asks for it (Start training, a project's first label): sync the labels from
  Label Studio (`studio_reconcile`);
* after a version is published, when Label Studio connects a project, at start-up: push the
  predictions (`studio_schedule` says when, `studio_push` does one push);
* while the process serves: check for labels whose webhook was lost (`studio_reconcile`).
It keeps Label Studio's word on a project itself: whether a project id still names the project
stored here (`identifying`, `same_project`), whether a deleted one is gone (`deleting`), and the
token on the webhooks Label Studio made for this backend.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Dict, List

from .auth import webhook_token
from .engine import Engine
from .events import Listener
from .logs import public_error
from .schema import Schema
from .settings import Settings
from .studio import project_created
from .studio_client import LabelStudioClient
from .studio_push import STATE, PredictionPush
from .studio_reconcile import Reconciler
from .studio_schedule import CONNECT_DELAY, PushSchedule

log = logging.getLogger(__name__)


class StudioLink(Listener):
    def __init__(self, engine: Engine, client: LabelStudioClient, settings: Settings):
        self.engine = engine
        self.client = client
        self.settings = settings
        self.pushes = PushSchedule(engine, settings, PredictionPush(engine, client, settings), self._prepare_push)
        self.reconciler = Reconciler(engine, client, settings)

    # --- events ---------------------------------------------------------------------------
    def run_starting(self, project_id: str, schema: Schema, sync: bool, record: Dict) -> None:
        if sync:
            self.reconciler.sync(project_id, schema, record)

    def published(self, project_id: str, schema: Schema, version: str, record: Dict) -> None:
        self.pushes.published(project_id, record)

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        if "sync" in record:
            self.reconciler.sync_ran(project_id)
        self.pushes.run_finished(project_id, record)

    def connected(self, project_id: str, schema: Schema) -> None:
        """On /setup: push the current version if Label Studio has not got it, and give the
        webhook Label Studio made for this backend our basic-auth header (it makes it without
        one). A little later, on the pusher thread: Label Studio waits 3 s for /setup and is
        connecting meanwhile (it calls /setup twice; the two requests coalesce)."""
        state = self.engine.project(project_id).read_json(STATE)
        authorize = self.settings.auth_enabled and state.get("webhook_auth") != self._auth_digest()
        if authorize or self.pushes.behind(project_id):
            self.pushes.schedule(project_id, CONNECT_DELAY, authorize=authorize)

    def serving(self) -> None:
        """This process serves: push what Label Studio is behind on, and start checking for
        missed webhooks (here, not when built: the process that built the link may fork the
        server, and must not push or load models)."""
        self.pushes.resume()
        self.reconciler.start()

    def stopping(self) -> None:
        self.reconciler.stop()

    def identifying(self, project_id: str, created: int, objections: List[str]) -> None:
        """A request names another creation time for the project: only Label Studio's word counts."""
        try:
            actual = project_created(self.client.project(project_id))
        except Exception as exc:  # noqa: BLE001 - unconfirmed: keep what is stored
            objections.append(f"Label Studio cannot confirm it: {public_error(exc)}")
            return
        if actual != created:
            objections.append(f"Label Studio says project {project_id} was created at {actual}")

    def deleting(self, project_id: str, objections: List[str]) -> None:
        """PROJECT_DELETED: only a project Label Studio no longer has may go to the trash. An
        unauthenticated backend takes any POST; a forged one must not delete a live project."""
        try:
            exists = self.client.project_exists(project_id)
        except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: keep the project
            objections.append(f"Label Studio cannot confirm that project {project_id} is gone: {public_error(exc)}")
            return
        if exists:
            objections.append(f"Label Studio still has project {project_id}")

    # --- Label Studio's word on the project -------------------------------------------------
    def same_project(self, project_id: str) -> bool:
        """Whether Label Studio's project of this id is still the one stored here (`identify`,
        with Label Studio's own creation time): never push an old project's model into a new
        project that reuses its id. Unknown (Label Studio unreachable) counts as the same."""
        try:
            created = project_created(self.client.project(project_id))
        except Exception:  # noqa: BLE001 - the push itself fails and is retried
            return True
        self.engine.identify(project_id, created, confirmed=True)
        return self.engine.project(project_id).exists

    def _prepare_push(self, project_id: str, authorize: bool) -> bool:
        """Before a push (under its lock): is there still this project to push to; then, when
        asked, the webhook's token."""
        if not self.same_project(project_id):
            return False
        if authorize:
            self._authorize_webhook(project_id)
        return True

    def _auth_digest(self) -> str:
        """Which credentials the webhook header was set for (never the credentials themselves).
        Salted "webhook-token" since the header carries the webhook's own token: a digest of the
        clear Basic header's time no longer matches, so that header is replaced."""
        secret = f"{self.settings.basic_auth_user}:{self.settings.basic_auth_pass}".encode()
        return hashlib.sha256(b"webhook-token\0" + secret).hexdigest()[:16]

    def _authorize_webhook(self, project_id: str) -> None:
        """Give the project's webhooks that Label Studio made for a model connected with our
        basic-auth user the webhook's own token (`Authorization: Bearer ...`, good for /webhook
        only: every member of the organisation can read a webhook's headers); without it every
        webhook would get a 401. It replaces a clear `Basic` header set before."""
        try:
            header = "Bearer " + webhook_token(self.settings.basic_auth_user, self.settings.basic_auth_pass)
            ours = {m["url"].rstrip("/") + "/webhook" for m in self.client.ml_backends(project_id)
                    if m.get("auth_method") == "BASIC_AUTH" and m.get("basic_auth_user") == self.settings.basic_auth_user}
            fixed = carried = 0
            for hook in self.client.webhooks(project_id):
                if hook.get("url") in ours:
                    if (hook.get("headers") or {}).get("Authorization") != header:
                        self.client.update_webhook(hook["id"], headers={**(hook.get("headers") or {}), "Authorization": header})
                        fixed += 1
                    carried += 1
            if carried:  # done for these credentials; a new password (or a webhook not made yet) checks again
                project = self.engine.project(project_id)
                project.write_json(STATE, {**project.read_json(STATE), "webhook_auth": self._auth_digest()})
            log.info("project %s: webhook token set on %d webhook(s) of this backend", project_id, fixed)
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: could not set the webhook token on the webhook: %s", project_id,
                        public_error(exc))
