"""The webhook's own secret. Label Studio stores a webhook's headers in clear, readable by every
member of the organisation; a webhook carrying the basic-auth credentials would hand them all
every route. So the webhook carries a token derived from the credentials, which `_wsgi.py`
accepts on `POST /webhook` only; `studio_link` puts it on the webhook. The derivation is scrypt
(memory-hard, ~0.1 s): whoever reads the token cannot test password guesses at hash speed."""
from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


@lru_cache(maxsize=4)
def webhook_token(user: str, password: str) -> str:
    """The webhook's `Authorization: Bearer <token>` for these credentials (a new password, or
    user, makes a new token); computed once per process."""
    return hashlib.scrypt(password.encode(), salt=b"baal-webhook\0" + user.encode(), n=2**15, r=8, p=1,
                          maxmem=64 * 2**20, dklen=32).hex()


def bearer_ok(header: str, token: str) -> bool:
    """`Authorization: Bearer <token>` carries `token` (compared in constant time)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), hashlib.sha256(token.encode()).digest())
