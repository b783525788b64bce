"""Log lines that say which request (or training run) they belong to."""
from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Optional, TextIO

#: The request id (X-Request-ID, or a fresh one) of the request being served; "train:<project>"
#: in a training run; "-" elsewhere.
request_id: ContextVar[str] = ContextVar("request_id", default="-")

FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] [%(request_id)s] %(message)s"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


#: C0 and C1 control characters (a tab excepted) and Unicode's line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with each control character written as its escape (`\\n`, `\\x1b`, `\\u2028`)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class Formatter(logging.Formatter):
    """One log line per record, whatever a request put into its message: a path, a webhook's
    action or a task id with a newline or an ANSI escape cannot forge a line or repaint the
    terminal. A traceback (`log.exception`) keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def handler(stream: Optional[TextIO] = None) -> logging.Handler:
    """A handler writing our lines (request id, control characters escaped) to `stream` (stderr)."""
    out = logging.StreamHandler(stream)
    out.setFormatter(Formatter(FORMAT))
    out.addFilter(_RequestId())
    return out


def configure(level: str) -> None:
    """Root logging at `level` through `handler()` (replaces earlier root handlers)."""
    logging.basicConfig(level=level, handlers=[handler()], force=True)


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
