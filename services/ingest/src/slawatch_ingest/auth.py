"""Bearer-token authentication of webhook senders.

Checked before the body is read, so an unauthenticated client costs no parsing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from slawatch_ingest.metrics import IngestMetrics, Rejection

_bearer = HTTPBearer(
    auto_error=False,  # we answer 401 ourselves, with the header and the metric
    description="One of the tokens in SLAWATCH_INGEST_TOKENS.",
)


def token_accepted(presented: str, accepted: Sequence[str]) -> bool:
    """Whether ``presented`` equals one of ``accepted``, in time independent of where they differ.

    Every accepted token is compared (no early exit), so the timing does not
    reveal which one came close either.
    """
    matches = [hmac.compare_digest(presented.encode(), token.encode()) for token in accepted]
    return any(matches)


def bearer_auth(
    accepted: Sequence[str], metrics: IngestMetrics
) -> Callable[..., Coroutine[Any, Any, None]]:
    """A FastAPI dependency that raises 401 (``WWW-Authenticate: Bearer``) unless authorised."""

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is not None and token_accepted(credentials.credentials, accepted):
            return
        metrics.requests_rejected.labels(reason=Rejection.UNAUTHORIZED).inc()
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return require_token
