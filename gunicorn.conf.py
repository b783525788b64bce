# gunicorn reads this file when started from this directory: `gunicorn _wsgi:app`.
# One worker per MODEL_DIR (it owns the training threads); threads serve requests concurrently.
from baal_backend.serving import GRACEFUL_TIMEOUT, post_worker_init, worker_exit  # noqa: F401 (hooks)

bind = "0.0.0.0:9090"
workers = 1
threads = 8
timeout = 300
graceful_timeout = GRACEFUL_TIMEOUT
control_socket_disable = True  # one shared socket path would clash between instances
