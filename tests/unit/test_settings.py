from pathlib import Path

import pytest

from baal_backend.settings import Settings, SettingsError


def test_defaults_follow_the_mode():
    head = Settings.from_env({})
    tune = Settings.from_env({"TRAIN_MODE": "finetune"})
    assert (head.train_mode, head.heuristic, head.num_draws, head.score_mode) == ("head", "margin", 20, "rank")
    assert head.learning_rate == 3e-3 and tune.learning_rate == 5e-5 and tune.epochs == 3
    assert Path(head.baseline_model_name).is_dir()  # the packaged offline model


def test_values_and_overrides():
    s = Settings.from_env({"HEURISTIC": "Power_BALD", "NUM_DRAWS": "7", "MODEL_DIR": "/x"}, model_dir=Path("/y"))
    assert s.heuristic == "power_bald" and s.num_draws == 7 and s.model_dir == Path("/y")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HEURISTIC": "bold"}, "HEURISTIC='bold' is not one of"),
        ({"NUM_DRAWS": "many"}, "NUM_DRAWS must be an integer"),
        ({"NUM_DRAWS": "0"}, "NUM_DRAWS must be at least 1"),
        ({"TRAIN_MODE": "full"}, "TRAIN_MODE"),
        ({"SCORE_MODE": "desc"}, "SCORE_MODE"),
        ({"LEARNING_RATE": "-1"}, "LEARNING_RATE must be positive"),
        ({"EVAL_FRACTION": "0.95"}, "EVAL_FRACTION"),
        ({"LABEL_STUDIO_URL": "http://ls:8080"}, "set together"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD' is not one of"),
        ({"MAX_LOADED_MODELS": "0"}, "MAX_LOADED_MODELS must be at least 1"),
        ({"TRASH_DAYS": "-1"}, "TRASH_DAYS must be 0 or more"),
        ({"TRASH_DAYS": "a week"}, "TRASH_DAYS must be a number"),
        ({"RECONCILE_SECONDS": "0"}, "RECONCILE_SECONDS must be between 1 and 86400"),
        ({"RECONCILE_SECONDS": "hourly"}, "RECONCILE_SECONDS must be a number"),
    ],
)
def test_bad_values_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
