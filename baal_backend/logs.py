"""Log lines that say which request (or training run) they belong to."""
from __future__ import annotations

import logging
from contextvars import ContextVar

#: The request id (X-Request-ID, or a fresh one) of the request being served; "train:<project>"
#: in a training run; "-" elsewhere.
request_id: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] [%(request_id)s] %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure(level: str) -> None:
    """Root logging at `level`, each line with its request id (replaces earlier root handlers)."""
    logging.basicConfig(level=level, format=FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RequestId())
