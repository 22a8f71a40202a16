"""Bearer tokens: reading the ``Authorization`` header and comparing in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme in any case); else ``None``.

    Reads the header as FastAPI's ``HTTPBearer`` does: another scheme, or no
    token after it, counts as no credentials.
    """
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_accepted(presented: str, accepted: Sequence[str]) -> bool:
    """Whether ``presented`` equals one of ``accepted``, in time independent of where they differ.

    Every accepted token is compared (no early exit), so the timing does not
    reveal which one came close either.
    """
    matches = [hmac.compare_digest(presented.encode(), token.encode()) for token in accepted]
    return any(matches)


def authorised(authorization: str | None, accepted: Sequence[str]) -> bool:
    """Whether the ``Authorization`` header carries one of the ``accepted`` bearer tokens."""
    token = bearer_token(authorization)
    return token is not None and token_accepted(token, accepted)
