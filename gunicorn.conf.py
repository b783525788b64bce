# gunicorn reads this file when started from this directory: `gunicorn _wsgi:app`.
# The settings are `baal_backend.serving.gunicorn_settings`, as for `python _wsgi.py`: one worker
# per MODEL_DIR (it owns the training threads), request threads fed only whole requests.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `gunicorn -c /path/to/gunicorn.conf.py` from elsewhere

from baal_backend.serving import gunicorn_settings  # noqa: E402

globals().update(gunicorn_settings())
