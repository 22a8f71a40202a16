"""Reading the bearer token of ``POST /v1/events``, as FastAPI's ``HTTPBearer`` reads it."""

from __future__ import annotations

import pytest

from slawatch_ingest.auth import authorised, bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_the_token_is_what_follows_the_bearer_scheme(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_only_an_accepted_token_is_authorised() -> None:
    assert authorised("Bearer two", ("one", "two"))
    assert not authorised("Bearer three", ("one", "two"))
    assert not authorised("Bearer twoo", ("one", "two"))
    assert not authorised("Basic two", ("one", "two"))
    assert not authorised("Bearer ünï", ("one",))  # not ASCII: compared as bytes, refused
