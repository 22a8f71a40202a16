"""Bearer-token authentication of ``POST /v1/events`` senders.

Checked before the body is read, so an unauthenticated client costs no parsing.
Plain functions over the ``Authorization`` header (``slawatch_common.auth``):
the intake calls them itself (it is served ahead of FastAPI, see
``events_api``); ``BEARER`` only describes the scheme in the OpenAPI document.
"""

from __future__ import annotations

from fastapi.security import HTTPBearer

from slawatch_common.auth import authorised, bearer_token, token_accepted

__all__ = ["BEARER", "authorised", "bearer_token", "token_accepted"]

BEARER = HTTPBearer(
    auto_error=False,
    description="A token with the scope events:write: one of SLAWATCH_INGEST_TOKENS, or of "
    "SLAWATCH_API_TOKENS with that scope (or admin). 401 without a known token, 403 without "
    "the scope.",
)
