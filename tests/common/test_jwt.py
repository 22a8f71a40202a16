"""JWT bearer tokens and principals: keys from a file or a URL, what a token may do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from common.jwt_keys import SigningKey, jwks, jwks_file
from slawatch_common.auth import ApiToken, Principal, Scope, TokenBook
from slawatch_common.jwt_auth import MIN_REFETCH_S, REFRESH_S, JwksError, JwksKeys, JwtVerifier
from slawatch_common.settings import ServiceSettings

KEY = SigningKey.rsa("k1")
NEXT = SigningKey.ec("k2")


def token(key: SigningKey = KEY, /, **claims: Any) -> str:
    return key.sign({"sub": "grafana", "exp": int(time.time()) + 60, **claims})


class JwksServer:
    """A JWKS endpoint on a real socket; counts the fetches."""

    def __init__(self) -> None:
        self.body = json.dumps(jwks(KEY)).encode()
        self.fetches = 0
        self.up = True
        self.hold = threading.Event()
        self.hold.set()
        """Cleared: each fetch waits until it is set again (a provider that is slow)."""
        self.held = threading.Event()
        """Set once a fetch is waiting on ``hold``."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                if not server.hold.is_set():
                    server.held.set()
                    server.hold.wait(30)
                if not server.up:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer()
    thread = threading.Thread(target=server.http.serve_forever, daemon=True)
    thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()


def book(keys: JwksKeys, **options: Any) -> TokenBook:
    return TokenBook.of(jwt=JwtVerifier(keys, **options))


def test_a_token_signed_by_a_key_of_the_file_is_its_subject_with_its_scopes(
    tmp_path: Path,
) -> None:
    tokens = book(JwksKeys(str(jwks_file(tmp_path / "k.json", KEY, NEXT))))
    found = tokens.principal(token(scope="sla:read reports:read unknown:scope"))
    assert found == Principal("grafana", frozenset({Scope.SLA_READ, Scope.REPORTS_READ}))
    as_list = tokens.principal(token(NEXT, scope=["acks:write"], slawatch_sources=["jira"]))
    assert as_list == Principal("grafana", frozenset({Scope.ACKS_WRITE}), frozenset({"jira"}))
    assert as_list.may_post_for("jira")
    assert not as_list.may_post_for("zammad")


def hs256_keyed_with(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HS256 token whose HMAC key is ``secret``, built by hand (the library refuses to
    use a public key as an HMAC secret, which is the attack this stands for)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(payload).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"


def test_refused_tokens(tmp_path: Path) -> None:
    keys = JwksKeys(str(jwks_file(tmp_path / "k.json", KEY)))
    tokens = book(keys, issuer="https://idp/", audience="slawatch")
    good = {"iss": "https://idp/", "aud": "slawatch", "scope": "sla:read"}
    assert tokens.principal(token(**good)) is not None
    public_pem = KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    live = {"exp": int(time.time()) + 60, **good}
    refused = {
        "no exp": KEY.sign({"sub": "x", **good}),
        "expired beyond the leeway": token(**{**good, "exp": int(time.time()) - 31}),
        "wrong issuer": token(**{**good, "iss": "https://other/"}),
        "wrong audience": token(**{**good, "aud": "other"}),
        "no audience": token(iss="https://idp/", scope="sla:read"),
        "foreign key, known kid": token(SigningKey.rsa("k1"), **good),
        "unknown kid": token(SigningKey.rsa("k9"), **good),
        "alg none": KEY.unsigned(live),
        "HS256 keyed with the public key": hs256_keyed_with(public_pem, live, "k1"),
        "garbage": "a.b.c",
        "not base64": "%%%.%%%.%%%",
        "header not an object": "WzFd.e30.AAAA",
    }
    for why, presented in refused.items():
        assert tokens.principal(presented) is None, why
        assert tokens.authenticate(f"Bearer {presented}", Scope.SLA_READ) == 401, why
    assert tokens.authenticate(f"Bearer {token(**good)}", Scope.ACKS_WRITE) == 403


def test_a_jwks_file_that_cannot_be_read_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(JwksError, match="SLAWATCH_JWT_JWKS"):
        JwksKeys(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"keys": [{"kty": "nonsense"}]}')
    with pytest.raises(JwksError, match="SLAWATCH_JWT_JWKS"):
        JwksKeys(str(tmp_path / "bad.json"))
    with pytest.raises(JwksError, match="SLAWATCH_JWT_JWKS"):
        ServiceSettings(jwt_jwks=str(tmp_path / "missing.json")).token_book()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_from_a_url_are_fetched_again_when_stale_and_for_a_new_kid_not_more_often(
    idp: JwksServer,
) -> None:
    clock = Clock()
    tokens = book(JwksKeys(idp.url, clock=clock))
    assert tokens.principal(token(scope="sla:read")) is not None
    assert idp.fetches == 1
    for _ in range(20):  # invented key ids: one fetch at most per MIN_REFETCH_S
        assert tokens.principal(token(SigningKey.rsa(f"k{_ + 10}"), scope="sla:read")) is None
    assert idp.fetches == 1
    idp.body = json.dumps(jwks(KEY, NEXT)).encode()  # the provider adds a key
    assert tokens.principal(token(NEXT, scope="sla:read")) is None
    clock.now += MIN_REFETCH_S
    assert tokens.principal(token(NEXT, scope="sla:read")) is not None
    assert idp.fetches == 2
    idp.up = False  # a provider that is down: the keys held still verify
    clock.now += REFRESH_S
    assert tokens.principal(token(NEXT, scope="sla:read")) is not None
    assert idp.fetches == 3


def test_static_tokens_bound_to_sources_and_their_rotation() -> None:
    entries = [
        ApiToken(
            name="jira-old",
            token="jira-token-000000",
            scopes=(Scope.EVENTS_WRITE,),
            sources=("jira",),
        ),
        ApiToken(
            name="jira-new",
            token="jira-token-111111",
            scopes=(Scope.EVENTS_WRITE,),
            sources=("jira",),
        ),
        ApiToken(name="any", token="any-source-token-0", scopes=(Scope.EVENTS_WRITE,)),
    ]
    tokens = TokenBook.of(entries, {Scope.ADMIN: ["admin-token"]})
    for presented, name in (("jira-token-000000", "jira-old"), ("jira-token-111111", "jira-new")):
        found = tokens.principal(presented)
        assert found == Principal(name, frozenset({Scope.EVENTS_WRITE}), frozenset({"jira"}))
    unbound = tokens.principal("any-source-token-0")
    assert unbound is not None
    assert unbound.may_post_for("zammad")
    admin = tokens.principal("admin-token")
    assert admin is not None
    assert admin.scopes == frozenset(Scope)
    assert admin.sources is None


def test_keys_over_plain_http_are_a_development_value() -> None:
    settings = ServiceSettings(jwt_jwks="http://idp.example.com/jwks.json")
    assert any(v.startswith("SLAWATCH_JWT_JWKS") for v in settings.development_values())


def test_a_slow_provider_delays_no_verification_the_keys_held_can_answer(
    idp: JwksServer,
) -> None:
    clock = Clock()
    tokens = book(JwksKeys(idp.url, clock=clock))
    assert tokens.principal(token(scope="sla:read")) is not None
    clock.now += REFRESH_S  # stale: the next verification fetches them again
    idp.hold.clear()
    fetching = threading.Thread(target=tokens.principal, args=(token(scope="sla:read"),))
    fetching.start()
    assert idp.held.wait(10)  # that fetch is under way, and stuck
    assert tokens.principal(token(scope="sla:read")) is not None  # answered meanwhile
    assert idp.fetches == 2
    idp.hold.set()
    fetching.join(10)
    assert not fetching.is_alive()


def test_only_rs256_and_es256_keys_of_a_set_are_used(tmp_path: Path) -> None:
    other = SigningKey.rsa("ps")
    p384 = ec.generate_private_key(ec.SECP384R1())
    entries = [
        KEY.jwk(),
        {**other.jwk(), "alg": "PS256"},
        {**ECAlgorithm.to_jwk(p384.public_key(), as_dict=True), "kid": "p384"},
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "oct", "alg": "HS256"},
        {**NEXT.jwk(), "use": "enc", "kid": "enc"},
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"keys": entries}))
    keys = JwksKeys(str(path))
    assert keys.key("k1") is not None
    for kid in ("ps", "p384", "oct", "enc"):
        assert keys.key(kid) is None, kid
    only_others = tmp_path / "others.json"
    only_others.write_text(json.dumps({"keys": entries[1:]}))
    with pytest.raises(JwksError, match="no RS256 or ES256 key"):
        JwksKeys(str(only_others))


def test_production_wants_the_audience_of_jwts() -> None:
    found = ServiceSettings(jwt_jwks="https://idp.example.com/jwks.json").development_values()
    assert any(v.startswith("SLAWATCH_JWT_AUDIENCE") for v in found)
    given = ServiceSettings(jwt_jwks="https://idp.example.com/jwks.json", jwt_audience="slawatch")
    assert not any(v.startswith("SLAWATCH_JWT") for v in given.development_values())
