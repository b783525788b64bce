"""Log lines that say which request (or training run) they belong to."""
from __future__ import annotations

import logging
import re
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


#: `scheme://user:password@` up to the last `@` of the URL (a password may hold `/`, `#` or `?`).
_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([^\s@]*)@(?=[^\s@]*(\s|$))")


def mask_credentials(text: str) -> str:
    """Every URL's `user:password@` -> `user:***@` (the user stays: it says which account)."""
    return _CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2).split(':', 1)[0]}:***@", text)


def public_error(exc: BaseException) -> str:
    """An error as `/versions`, `/health` and the log may show it: its kind and message, never
    a credential (URLs masked) nor a server path (an OSError keeps only its reason)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {mask_credentials(str(exc))}"
