from typing import Callable

import pytest

from _wsgi import create_app
from baal_backend.settings import Settings


@pytest.fixture
def make_app(tmp_path) -> Callable:
    """make_app(**env) -> Flask test client over a fresh MODEL_DIR (reused on a second call)."""

    def make(model_dir=None, **env):
        values = {"MODEL_DIR": str(model_dir or tmp_path / "models"), "MIN_LABELS": "10"}
        values.update({k: str(v) for k, v in env.items()})
        app = create_app(Settings.from_env(values))
        client = app.test_client()
        client.engine = app.config["ENGINE"]
        return client

    return make
