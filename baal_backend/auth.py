"""The webhook's own secret. Label Studio stores a webhook's headers in clear, readable by every
member of the organisation; a webhook carrying the basic-auth credentials would hand them all
every route. So the webhook carries a token derived from the credentials (HMAC keyed with the
password), which `_wsgi.py` accepts on `POST /webhook` only; `studio_link` puts it on the webhook."""
from __future__ import annotations

import hashlib
import hmac


def webhook_token(user: str, password: str) -> str:
    """The webhook's `Authorization: Bearer <token>` for these credentials (a new password, or
    user, makes a new token)."""
    return hmac.new(password.encode(), b"baal-webhook\0" + user.encode(), hashlib.sha256).hexdigest()


def bearer_ok(header: str, token: str) -> bool:
    """`Authorization: Bearer <token>` carries `token` (compared in constant time)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), hashlib.sha256(token.encode()).digest())
