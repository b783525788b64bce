"""The HTTP app Label Studio talks to.

* `gunicorn _wsgi:app` (production; it reads `gunicorn.conf.py` beside this file),
  `python _wsgi.py --host H --port P` and `label-studio-ml start .` all serve the same app through
  gunicorn with the same settings (`baal_backend.serving`): the Werkzeug dev server pinned by
  label-studio-ml is never used.
* Settings come from the environment (`baal_backend.settings`); `--model-dir` overrides MODEL_DIR.
* With BASIC_AUTH_USER / BASIC_AUTH_PASS every route asks for them, except `GET /health`, which
  answers anyone `{"status": "UP"}` and shows its details only to an authorized caller, and
  `POST /webhook`, which also takes the webhook's own token (`baal_backend.auth`).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from baal_backend import auth, insight, logs, report, serving
from baal_backend.projects import StateError
from baal_backend.schema import SchemaError
from baal_backend.settings import Settings, SettingsError
from baal_backend.studio import RequestError, project_id, studio_version
from baal_backend.studio_push import STATE as PUSH_STATE, push_problem
from baal_backend.studio_reconcile import missed_webhooks
from baal_backend.wiring import build_engine
from label_studio_baal_hf import HANDLED_EVENTS, BaalTextClassifier

log = logging.getLogger("baal_backend.http")

PUBLIC = ("/health", "/")  # the documented unauthenticated health route (and its alias)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # an X-Request-ID we keep; anything else gets a fresh one

#: The body of a route without tasks (/setup, POST /versions): a label config (MAX_CONFIG_KB) and ids.
SMALL_BODY = 2 * 2**20
#: /predict's body may hold this much per task (MAX_TASKS of them): a task's text is read up to
#: 50,000 characters, and Label Studio sends each task with its annotations and predictions.
TASK_BYTES = 128 * 2**10
#: A body may hold one JSON value (counted as its `{`, `[` and `,`) per this many bytes of its
#: route's limit, checked before parsing. Unchecked, parsing cost up to 35 times the body's size
#: (`[{},{},...]` 25 times); checked, at most some 16 times the route's limit (`[{},...]` 5).
#: Label Studio's tasks hold a value per 18-25 bytes (2-5 times their size to parse), a list of
#: ids or of short utterances one per 8.5-11.
BYTES_PER_VALUE = 8
#: Annotations or tasks in one webhook's list: Label Studio sends at most WEBHOOK_BATCH_SIZE
#: (5000 unless its admin changes it) per webhook; each deleted id may leave a tombstone.
MAX_WEBHOOK_ITEMS = 10_000


class LimitError(RequestError):
    """A request over one of the limits (MAX_TASKS, ...): 422 naming the limit."""


def create_app(settings: Optional[Settings] = None) -> Flask:
    """Build the Flask app around one engine, made from `settings` (the environment by default)."""
    settings = settings or Settings.from_env()
    engine, metrics = build_engine(settings)
    app = Flask(__name__)
    app.config["ENGINE"] = engine
    max_body = int(settings.max_request_mb * 2**20)
    app.config["MAX_CONTENT_LENGTH"] = max_body  # 413 above it, on any route; `body` sets each route's own

    def body(limit: int, why: str) -> Dict[str, Any]:
        """The request's JSON object, refused with 413 before it is parsed when it is over `limit`
        bytes (`why` names that limit) or holds more JSON values than `limit` allows."""
        request.max_content_length = limit
        try:
            raw = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise RequestEntityTooLarge(f"the request body is larger than {limit / 2**20:.3g} MB, the limit for "
                                        f"{request.path} ({why})") from None
        values = raw.count(b"{") + raw.count(b"[") + raw.count(b",")
        if values > limit // BYTES_PER_VALUE:
            raise RequestEntityTooLarge(
                f"the request body holds up to {values:,} JSON values; {request.path} takes at most "
                f"{limit // BYTES_PER_VALUE:,} (one per {BYTES_PER_VALUE} bytes of its {limit / 2**20:.3g} MB limit, {why})")
        try:
            data = json.loads(raw)
        except RecursionError:  # "[" * 200000: json gives up on the nesting
            raise RequestError("the request body is nested too deeply") from None
        except ValueError:  # not JSON, or not UTF-8/16/32
            data = None
        if not isinstance(data, dict):
            raise RequestError("the request body must be a JSON object")
        return data

    predict_body = min(max_body, settings.max_tasks * TASK_BYTES)
    predict_why = "MAX_REQUEST_MB" if predict_body == max_body else f"MAX_TASKS={settings.max_tasks} x 128 KB a task"

    def model_for(project: Any, label_config: Optional[str], current: bool = True) -> BaalTextClassifier:
        return BaalTextClassifier(engine, project, label_config, config_is_current=current)

    def authorized() -> bool:
        return not settings.auth_enabled or _basic_auth_ok(
            request.headers.get("Authorization", ""), settings.basic_auth_user, settings.basic_auth_pass)

    webhook_token = auth.webhook_token(settings.basic_auth_user, settings.basic_auth_pass) if settings.auth_enabled else ""

    def webhook_authorized() -> bool:
        """The webhook's own token (`baal_backend.auth`): good for `POST /webhook` and nothing else."""
        return request.path == "/webhook" and request.method == "POST" and auth.bearer_ok(
            request.headers.get("Authorization", ""), webhook_token)

    @app.before_request
    def guard() -> Optional[Tuple[Any, int, Dict[str, str]]]:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:12]  # never raw text into logs
        g.log_token = logs.request_id.set(g.request_id)
        g.started = time.perf_counter()
        if request.path not in PUBLIC and not authorized() and not webhook_authorized():
            log.warning("%s %s: 401 (no or wrong basic auth credentials)", request.method, request.path)
            return jsonify({"error": "authentication required"}), 401, {"WWW-Authenticate": 'Basic realm="baal"'}
        return None

    @app.after_request
    def stamp(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        if request.path == "/predict" and response.status_code == 200:
            metrics.predict_seconds.observe(time.perf_counter() - g.started)
        elif request.path == "/webhook":
            metrics.webhooks.labels(g.get("action", "NONE"), str(response.status_code)).inc()
        return response

    @app.teardown_request
    def forget(exc: Optional[BaseException]) -> None:
        if "log_token" in g:
            logs.request_id.reset(g.log_token)

    @app.errorhandler(LimitError)
    def over_limit(exc: Exception) -> Tuple[Any, int]:
        log.warning("%s %s: 422 %s", request.method, request.path, exc)
        return jsonify({"error": str(exc)}), 422

    @app.errorhandler(RequestError)
    def bad_request(exc: Exception) -> Tuple[Any, int]:
        log.warning("%s %s: 400 %s", request.method, request.path, exc)
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(SchemaError)
    def bad_config(exc: Exception) -> Tuple[Any, int]:
        log.warning("%s %s: label config refused: %s", request.method, request.path, exc)
        return jsonify({"error": f"label config not supported: {exc}"}), 422

    @app.errorhandler(StateError)
    def no_state(exc: Exception) -> Tuple[Any, int]:
        log.error("%s %s: %s", request.method, request.path, exc)
        return jsonify({"error": str(exc)}), 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Tuple[Any, int]:  # werkzeug's own 404, 405, 413 ...
        if exc.code == 413:
            log.warning("%s %s: 413 %s", request.method, request.path, exc.description)
        return jsonify({"error": exc.description or exc.name}), exc.code

    @app.errorhandler(Exception)
    def failure(exc: Exception) -> Tuple[Any, int]:
        log.exception("request to %s failed", request.path)
        return jsonify({"error": f"internal error ({type(exc).__name__}); the server log has the details, "
                                 f"request id {g.get('request_id', '-')}"}), 500

    @app.route("/", methods=["GET"])
    @app.route("/health", methods=["GET"])
    def health():
        """UP while the server answers. To an authorized caller (anyone without BASIC_AUTH_*):
        `problems` (what needs fixing), `failed_runs` (projects whose last run failed) and
        `missed_webhooks` (whether labels whose webhook was lost are recovered)."""
        status: Dict[str, Any] = {"status": "UP", "model_class": BaalTextClassifier.__name__}
        if authorized():
            pushes = [push_problem(engine.project(p)) for p in engine.current_versions()]
            status.update(problems=sorted([*engine.problems.values(), *engine.jobs.problems(), *filter(None, pushes)]),
                          failed_runs=engine.failed_runs(), missed_webhooks=missed_webhooks(settings))
        return jsonify(status)

    @app.route("/metrics", methods=["GET"])
    def prometheus_metrics():
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    @app.route("/setup", methods=["POST"])
    def setup():
        data = body(SMALL_BODY, "a request without tasks")
        return jsonify({"model_version": model_for(data.get("project"), data.get("schema")).setup()})

    @app.route("/predict", methods=["POST"])
    def predict():
        data = body(predict_body, predict_why)
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise RequestError("'tasks' must be a list of tasks")
        if len(tasks) > settings.max_tasks:
            raise LimitError(f"{len(tasks)} tasks in one request; the limit is {settings.max_tasks} (MAX_TASKS): "
                             "select fewer tasks, or let the backend push predictions itself (LABEL_STUDIO_URL)")
        project = data.get("project")
        if project is None and tasks and isinstance(tasks[0], dict):
            project = tasks[0].get("project")
        model = model_for(project, data.get("label_config"))
        results = model.predict(tasks)
        scored = sum(r["score"] is not None for r in results)
        metrics.texts_scored.inc(scored)
        log.info("project %s: predicted %d tasks in %.2fs", model.project, len(tasks), time.perf_counter() - g.started)
        version = results[0]["model_version"] if results else model.model_version
        return jsonify({"results": results, "model_version": version})

    @app.route("/webhook", methods=["POST"])
    def webhook():
        data = body(max_body, "MAX_REQUEST_MB")
        action = data.get("action")
        if not isinstance(action, str):
            raise RequestError("the webhook has no 'action'")
        g.action = action if action in HANDLED_EVENTS else "OTHER"  # bounded metric labels
        for key in ("annotation", "annotations", "task", "tasks"):
            items = data.get(key)
            if g.action != "OTHER" and isinstance(items, list) and len(items) > MAX_WEBHOOK_ITEMS:
                raise LimitError(f"the webhook's {key!r} lists {len(items)} items; the limit is {MAX_WEBHOOK_ITEMS} "
                                 "per webhook: keep Label Studio's WEBHOOK_BATCH_SIZE (5000 by default) at or below it")
        project = data.get("project")
        config = project.get("label_config") if isinstance(project, dict) else None
        # a config edit arrives as PROJECT_UPDATED; other events carry the config of their moment
        return jsonify(model_for(project, config, current=action == "PROJECT_UPDATED").process_event(action, data)), 200

    @app.route("/versions", methods=["GET", "POST"])
    def versions():
        data = body(SMALL_BODY, "a request without tasks") if request.method == "POST" else dict(request.args)
        pid = project_id(data.get("project"))
        project = engine.project(pid)
        details = engine.versions(pid)
        training = engine.jobs.is_training(pid)  # None: unknown (Redis does not answer)
        try:
            schema = engine.schema(pid) if project.label_config else None
        except SchemaError:  # an unreadable stored config: /versions still says what the last run did
            schema = None
        return jsonify({
            "versions": [v["version"] for v in details],
            "current": engine.current_version(pid),
            # the name Label Studio stores its predictions under (the version @ this backend's instance)
            "studio_version": studio_version(engine.current_version(pid), engine.instance),
            "details": details,
            "training": training,
            "problems": engine.jobs.problems() if training is None else [],
            "labels": project.label_count(),
            "last_run": project.last_run,
            # the newest push to Label Studio (with credentials): {"status", "predictions"|"error", "seconds", "at"}
            "push": project.read_json(PUSH_STATE).get("last_push") if settings.label_studio_enabled else None,
            # stabilizing predictions on a stop set: {"stop": bool, "reason", "checks"}
            "stopping": insight.stop_signal(project, settings.min_labels, schema),
        })

    @app.route("/report/<project>", methods=["GET"])
    def project_report(project: str):
        """The project's report page (self-contained HTML; `baal_backend.report`)."""
        pid = project_id(project)
        if not engine.project(pid).exists:
            return jsonify({"error": f"project {pid} has no state on this backend: connect it in Label Studio first"}), 404
        data = report.collect(engine, pid)
        data["problems"] += [p for p in [push_problem(engine.project(pid))] if p]
        return Response(report.render(data), mimetype="text/html",
                        headers={"Content-Security-Policy": report.csp(), "X-Frame-Options": "DENY"})

    return app


def _basic_auth_ok(header: str, user: Optional[str], password: Optional[str]) -> bool:
    """`Authorization: Basic ...` carries these credentials (compared in constant time)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not user or not password:
        return False
    try:
        given_user, _, given_password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    def digest(text: str) -> bytes:  # equal lengths: the comparison says nothing of the secret's length
        return hashlib.sha256(text.encode()).digest()

    user_ok = hmac.compare_digest(digest(given_user), digest(user))
    password_ok = hmac.compare_digest(digest(given_password), digest(password))
    return user_ok and password_ok


def _serve(app: Flask, host: str, port: int, threads: int) -> None:
    """Serve with gunicorn in this process, with `serving.gunicorn_settings`: one worker (it owns the
    training threads), whose request threads get only requests that have arrived whole."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:  # the settings gunicorn.conf.py gives `gunicorn _wsgi:app`
            for name, value in serving.gunicorn_settings(f"{host}:{port}", threads).items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return app

    _Server().run()


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description="Bayesian active-learning ML backend for Label Studio")
    parser.add_argument("-p", "--port", type=int, default=9090)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--model-dir", default=None, help="where projects' labels and versions live (MODEL_DIR)")
    parser.add_argument("--log-level", default=None, help="overrides LOG_LEVEL")
    parser.add_argument("-d", "--debug", action="store_true", help="log at DEBUG level")
    parser.add_argument("--threads", type=int, default=8, help="request threads")
    # Accepted for compatibility with label-studio-ml's generated _wsgi.py; settings come from env.
    parser.add_argument("--kwargs", "--with", dest="kwargs", nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="validate settings, print them (credentials masked), exit")
    parser.add_argument("--webhook-token", action="store_true",
                        help="print the Authorization header for Label Studio's webhook (with BASIC_AUTH_*), exit")
    args = parser.parse_args(argv)
    level = "DEBUG" if args.debug else args.log_level and args.log_level.upper()
    try:
        settings = Settings.from_env(model_dir=Path(args.model_dir) if args.model_dir else None, log_level=level)
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    logs.configure(settings.log_level)
    if args.kwargs:
        log.warning("--with/--kwargs are ignored: configure the backend with environment variables")
    if args.check:
        print(f"settings OK: {settings}")
        return
    if args.webhook_token:
        if not settings.auth_enabled:
            raise SystemExit("no webhook token without BASIC_AUTH_USER and BASIC_AUTH_PASS: the webhook needs no header")
        print("Bearer " + auth.webhook_token(settings.basic_auth_user, settings.basic_auth_pass))
        return
    log.info("starting on %s:%d: %s", args.host, args.port, settings.describe())
    _serve(create_app(settings), args.host, args.port, args.threads)


_app: Optional[Flask] = None


def __getattr__(name: str) -> Flask:
    """`gunicorn _wsgi:app`: the app is built on first access, so importing this module (tests,
    tools) neither reads the environment nor touches MODEL_DIR."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        settings = Settings.from_env()
        logs.configure(settings.log_level)
        log.info("starting: %s", settings.describe())
        _app = create_app(settings)
    return _app


if __name__ == "__main__":
    main()
