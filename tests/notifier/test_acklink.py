"""Signed, expiring acknowledgement links (pure, fake ``now``)."""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from datetime import timedelta
from urllib.parse import unquote

import pytest

from notifier.factories import NOW
from slawatch_notifier.acklink import (
    AckClaim,
    AckLinks,
    BadSignatureError,
    DigestClaim,
    ExpiredLinkError,
    MalformedTokenError,
    redact,
    sign,
    verify,
)

SECRET = b"test-secret"
CLAIM = AckClaim("jira:OPS-42:response", 2, "zhao.lei", NOW + timedelta(hours=1))


def test_a_signed_token_verifies_to_its_claim_until_it_expires() -> None:
    token = sign(CLAIM, SECRET)
    assert verify(token, SECRET, NOW) == CLAIM
    assert verify(token, SECRET, CLAIM.expires_at - timedelta(seconds=1)) == CLAIM
    with pytest.raises(ExpiredLinkError):
        verify(token, SECRET, CLAIM.expires_at)


def test_another_secret_or_a_changed_payload_is_a_bad_signature() -> None:
    token = sign(CLAIM, SECRET)
    with pytest.raises(BadSignatureError):
        verify(token, b"other-secret", NOW)
    forged = sign(AckClaim("jira:OPS-43:response", 2, "zhao.lei", CLAIM.expires_at), SECRET)
    spliced = f"{forged.split('.')[0]}.{token.split('.')[1]}"
    with pytest.raises(BadSignatureError):
        verify(spliced, SECRET, NOW)
    with pytest.raises(BadSignatureError):
        verify(f"{token.split('.')[0]}.$$$", SECRET, NOW)


@pytest.mark.parametrize("token", ["", "nodot", "a.", ".b", "é.x"])
def test_a_token_that_is_not_one_is_malformed(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        verify(token, SECRET, NOW)


def test_a_genuine_signature_over_a_payload_that_is_no_claim_is_malformed() -> None:
    good = sign(CLAIM, SECRET)
    body = "eyJjIjogMX0"  # {"c": 1}
    mac = urlsafe_b64encode(hmac.new(SECRET, body.encode(), hashlib.sha256).digest())
    token = f"{body}.{mac.rstrip(b'=').decode()}"
    assert token != good
    with pytest.raises(MalformedTokenError):
        verify(token, SECRET, NOW)


def test_the_link_is_the_public_url_and_the_token_valid_for_the_ttl() -> None:
    links = AckLinks(SECRET, "https://slawatch.example.com/", timedelta(hours=24))
    url = links.url("jira:OPS-42:response", 1, "group:l2", NOW)
    prefix = "https://slawatch.example.com/v1/acks/"
    assert url.startswith(prefix)
    claim = verify(unquote(url.removeprefix(prefix)), SECRET, NOW)
    assert claim == AckClaim("jira:OPS-42:response", 1, "group:l2", NOW + timedelta(hours=24))


def test_a_digest_link_claims_the_digest_and_cannot_pass_for_an_escalation() -> None:
    links = AckLinks(SECRET, "https://slawatch.example.com", timedelta(hours=24))
    digest = "digest:oncall:sms:2026-11-26T04:00:00.000000+00:00"
    url = links.digest_url(digest, "oncall", NOW)
    token = unquote(url.removeprefix("https://slawatch.example.com/v1/acks/"))
    assert verify(token, SECRET, NOW) == DigestClaim(digest, "oncall", NOW + timedelta(hours=24))
    with pytest.raises(ExpiredLinkError):
        verify(token, SECRET, NOW + timedelta(hours=24))
    escalation = sign(AckClaim(digest, 1, "oncall", NOW + timedelta(hours=1)), SECRET)
    spliced = f"{token.split('.')[0]}.{escalation.split('.')[1]}"
    with pytest.raises(BadSignatureError):
        verify(spliced, SECRET, NOW)


def test_redact_takes_the_token_out_of_every_link_path_in_a_line() -> None:
    links = AckLinks(SECRET, "https://slawatch.example.com", timedelta(hours=24))
    url = links.url("jira:OPS-42:response", 1, "zhao.lei", NOW)
    token = url.rsplit("/", 1)[1]
    line = (
        f'10.0.0.1:5000 - "GET /v1/acks/{token}?utm=x HTTP/1.1" 200; mail: {url}\n/V1/ACKS/{token}'
    )
    assert redact(line) == (
        '10.0.0.1:5000 - "GET /v1/acks/<token> HTTP/1.1" 200; '
        "mail: https://slawatch.example.com/v1/acks/<token>\n/v1/acks/<token>"
    )
    assert redact('"POST /v1/acks HTTP/1.1" 200') == '"POST /v1/acks HTTP/1.1" 200'
