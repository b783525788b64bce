"""The HTTP app Label Studio talks to.

* `gunicorn _wsgi:app` (production; `gunicorn.conf.py` beside this file holds the settings),
  `python _wsgi.py --host H --port P` and `label-studio-ml start .` all serve the same app through
  gunicorn: the Werkzeug dev server pinned by label-studio-ml is never used.
* Settings come from the environment (`baal_backend.settings`); `--model-dir` overrides MODEL_DIR.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify, request

from baal_backend import serving
from baal_backend.engine import Engine, StateError
from baal_backend.schema import SchemaError
from baal_backend.settings import Settings, SettingsError
from baal_backend.studio import RequestError, project_id
from baal_backend.studio_client import LabelStudioClient
from baal_backend.studio_link import StudioLink
from label_studio_baal_hf import BaalTextClassifier

log = logging.getLogger("baal_backend.http")


def build_engine(settings: Settings) -> Engine:
    """The engine, subscribed to by the Label Studio link when credentials are set."""
    engine = Engine(settings)
    if settings.label_studio_enabled:
        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key)
        engine.events.subscribe(StudioLink(engine, client, set_sampling=settings.label_studio_set_sampling))
    return engine


def create_app(settings: Optional[Settings] = None, engine: Optional[Engine] = None) -> Flask:
    """Build the Flask app around one engine (made from the environment when not given)."""
    settings = settings or Settings.from_env()
    engine = engine or build_engine(settings)
    app = Flask(__name__)
    app.config["ENGINE"] = engine

    def body() -> Dict[str, Any]:
        try:
            data = request.get_json(force=True, silent=True)
        except RecursionError:  # "[" * 200000: json gives up on the nesting
            raise RequestError("the request body is nested too deeply") from None
        if not isinstance(data, dict):
            raise RequestError("the request body must be a JSON object")
        return data

    def model_for(project: Any, label_config: Optional[str], current: bool = True) -> BaalTextClassifier:
        return BaalTextClassifier(engine, project, label_config, config_is_current=current)

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

    @app.errorhandler(Exception)
    def failure(exc: Exception) -> Tuple[Any, int]:
        code = getattr(exc, "code", None)
        if isinstance(code, int) and 400 <= code < 500:  # werkzeug's own 404, 405 ...
            return jsonify({"error": str(exc)}), code
        log.exception("request to %s failed", request.path)
        return jsonify({"error": f"internal error ({type(exc).__name__}); the server log has the details"}), 500

    @app.route("/", methods=["GET"])
    @app.route("/health", methods=["GET"])
    def health():
        """UP while the server answers; `problems` and `failed_runs` say what needs a look."""
        return jsonify({
            "status": "UP",
            "model_class": BaalTextClassifier.__name__,
            "problems": sorted(engine.problems.values()),
            "failed_runs": engine.failed_runs(),
        })

    @app.route("/setup", methods=["POST"])
    def setup():
        data = body()
        return jsonify({"model_version": model_for(data.get("project"), data.get("schema")).setup()})

    @app.route("/predict", methods=["POST"])
    def predict():
        data = body()
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise RequestError("'tasks' must be a list of tasks")
        project = data.get("project")
        if project is None and tasks and isinstance(tasks[0], dict):
            project = tasks[0].get("project")
        model = model_for(project, data.get("label_config"))
        started = time.perf_counter()
        results = model.predict(tasks)
        log.info("project %s: predicted %d tasks in %.2fs", model.project, len(tasks), time.perf_counter() - started)
        version = results[0]["model_version"] if results else model.model_version
        return jsonify({"results": results, "model_version": version})

    @app.route("/webhook", methods=["POST"])
    def webhook():
        data = body()
        action = data.get("action")
        if not isinstance(action, str):
            raise RequestError("the webhook has no 'action'")
        project = data.get("project")
        config = project.get("label_config") if isinstance(project, dict) else None
        # a config edit arrives as PROJECT_UPDATED; other events carry the config of their moment
        return jsonify(model_for(project, config, current=action == "PROJECT_UPDATED").process_event(action, data)), 200

    @app.route("/versions", methods=["GET", "POST"])
    def versions():
        data = body() if request.method == "POST" else dict(request.args)
        pid = project_id(data.get("project"))
        details = engine.versions(pid)
        return jsonify({
            "versions": [v["version"] for v in details],
            "current": engine.current_version(pid),
            "details": details,
            "training": engine.jobs.is_training(pid),
            "labels": engine.project(pid).label_count(),
            "last_run": engine.project(pid).last_run,
        })

    return app


def _serve(app: Flask, host: str, port: int, threads: int) -> None:
    """Serve with gunicorn in this process: one worker (it owns the training threads)."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", 1)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 300)
            self.cfg.set("graceful_timeout", serving.GRACEFUL_TIMEOUT)
            self.cfg.set("control_socket_disable", True)  # one shared path would clash between instances
            self.cfg.set("post_worker_init", serving.post_worker_init)
            self.cfg.set("worker_exit", serving.worker_exit)

        def load(self) -> Flask:
            return app

    _Server().run()


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s")


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
    parser.add_argument("--check", action="store_true", help="validate settings and exit")
    args = parser.parse_args(argv)
    level = "DEBUG" if args.debug else args.log_level and args.log_level.upper()
    try:
        settings = Settings.from_env(model_dir=Path(args.model_dir) if args.model_dir else None, log_level=level)
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    _configure_logging(settings.log_level)
    if args.kwargs:
        log.warning("--with/--kwargs are ignored: configure the backend with environment variables")
    if args.check:
        print(f"settings OK: {settings}")
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
        _configure_logging(settings.log_level)
        log.info("starting: %s", settings.describe())
        _app = create_app(settings)
    return _app


if __name__ == "__main__":
    main()
