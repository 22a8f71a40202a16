"""JWT bearer tokens (RS256, ES256) verified against a JWKS, the second way to authenticate.

An identity provider signs short-lived tokens; each service checks them with
the provider's public keys and reads the scopes from a claim:

    SLAWATCH_JWT_JWKS=https://idp.example.com/.well-known/jwks.json   (or a file path)
    SLAWATCH_JWT_ISSUER=https://idp.example.com/
    SLAWATCH_JWT_AUDIENCE=slawatch
    SLAWATCH_JWT_SCOPE_CLAIM=scope            space-separated string or list
    SLAWATCH_JWT_SOURCES_CLAIM=slawatch_sources   the sources an events:write token may post

A token is accepted when its signature verifies with the key its ``kid``
names, its algorithm is RS256 or ES256 (``none`` and HMAC are never accepted:
a public key must not become an HMAC secret), it has not expired (``exp`` is
required; 30 s of leeway for clocks), and its issuer and audience are the
configured ones (when configured; outside development mode the audience must
be). Anything else is ``None``: a 401. Only the RSA keys for RS256 and the
P-256 keys for ES256 of the key set are used.

Keys from a file are read once, at start (a missing or malformed file stops
the service, naming the setting). Keys from a URL are fetched on first use and
again after ``REFRESH_S``; a token whose ``kid`` is unknown fetches them again,
but at most once per ``MIN_REFETCH_S``, so tokens with invented key ids cannot
make the service hammer the provider. A fetch that fails keeps the keys it
had; one fetch runs at a time, and the others use the keys held meanwhile.
The fetch blocks: callers on an event loop verify in a thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_S = 30
REFRESH_S = 300.0
MIN_REFETCH_S = 30.0
FETCH_TIMEOUT_S = 5.0
FETCH_DEADLINE_S = 10.0
MAX_JWKS_BYTES = 1 << 20


class JwksError(ValueError):
    """The configured key set cannot be read."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who, which scopes (as written), which sources."""

    subject: str
    scopes: tuple[str, ...]
    sources: tuple[str, ...] | None


def _key_set(text: str | bytes, origin: str) -> PyJWKSet:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise JwksError(f"{origin}: not a JSON object with 'keys'")
        return PyJWKSet.from_dict(data)
    except (ValueError, jwt.PyJWTError) as exc:
        raise JwksError(f"{origin}: not a usable JWKS ({exc})") from exc


class JwksKeys:
    """The signing keys of one JWKS source (a file path or an http(s) URL), by ``kid``.

    One fetch at a time, outside the lock: while it runs, callers use the keys
    held (waiting for it only when none are held yet), so a slow provider
    delays no verification that the keys held can answer. A fetch ends within
    ``FETCH_DEADLINE_S`` however slowly the provider sends.
    """

    def __init__(self, source: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched = threading.Event()
        self._fetching = False
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._url = source.startswith(("https://", "http://"))
        if not self._url:
            try:
                text = Path(source).read_bytes()
            except OSError as exc:
                raise JwksError(f"SLAWATCH_JWT_JWKS: cannot read {source}: {exc}") from exc
            self._keys = _by_kid(_key_set(text, f"SLAWATCH_JWT_JWKS ({source})"))
            if not self._keys:
                raise JwksError(f"SLAWATCH_JWT_JWKS ({source}): no RS256 or ES256 key in it")

    def key(self, kid: str | None) -> PyJWK | None:
        """The key named ``kid`` (or the only key when the token names none)."""
        if self._url:
            self._refresh(kid)
        keys = self._keys
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def _refresh(self, kid: str | None) -> None:
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= REFRESH_S
            unknown = kid is not None and kid not in self._keys
            due = stale or (unknown and age is not None and age >= MIN_REFETCH_S)
            if self._fetching or not due:
                wait = self._fetching and not self._keys
                fetch = False
            else:
                self._fetching, self._fetched_at = True, now
                self._fetched.clear()
                wait, fetch = False, True
        if wait:
            self._fetched.wait(FETCH_DEADLINE_S)
        if not fetch:
            return
        try:
            keys = _by_kid(_key_set(self._download(), self._source))
            if not keys:
                raise JwksError(f"{self._source}: no RS256 or ES256 key in it")
            self._keys = keys
        except (OSError, JwksError) as exc:
            kept = len(self._keys)
            log.warning("JWKS %s not fetched (%s); keeping %d keys", self._source, exc, kept)
        finally:
            with self._lock:
                self._fetching = False
            self._fetched.set()

    def _download(self) -> bytes:
        deadline = time.monotonic() + FETCH_DEADLINE_S
        chunks: list[bytes] = []
        size = 0
        with urllib.request.urlopen(self._source, timeout=FETCH_TIMEOUT_S) as answer:
            while chunk := answer.read(65536):
                size += len(chunk)
                if size > MAX_JWKS_BYTES:
                    raise JwksError(f"{self._source}: larger than {MAX_JWKS_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise JwksError(f"{self._source}: not read within {FETCH_DEADLINE_S} s")
                chunks.append(chunk)
        return b"".join(chunks)


_ALGORITHM_OF_KEY = {("RSA", "RS256"), ("EC", "ES256")}


def _by_kid(keys: PyJWKSet) -> dict[str, PyJWK]:
    """The RS256 and ES256 keys of ``keys`` by ``kid`` (a key for any other algorithm is
    left out, so a token can never be checked with it)."""
    usable = [
        key
        for key in keys.keys
        if (key.key_type, key.algorithm_name) in _ALGORITHM_OF_KEY
        and getattr(key, "public_key_use", None) in (None, "sig")
    ]
    return {str(key.key_id or ""): key for key in usable}


class JwtVerifier:
    """Verifies bearer JWTs against ``keys``; ``claims`` is ``None`` for any refusal."""

    def __init__(
        self,
        keys: JwksKeys,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        scope_claim: str = "scope",
        sources_claim: str = "slawatch_sources",
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._scope_claim = scope_claim
        self._sources_claim = sources_claim

    def claims(self, token: str) -> Claims | None:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                return None
            kid = header.get("kid")
            key = self._keys.key(kid if isinstance(kid, str) else None)
            if key is None:
                return None
            payload = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={
                    "require": ["exp"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return Claims(
            subject=_text(payload.get("sub")) or "jwt",
            scopes=_words(payload.get(self._scope_claim)),
            sources=_sources(payload, self._sources_claim),
        )


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _sources(payload: Mapping[str, Any], claim: str) -> tuple[str, ...] | None:
    if claim not in payload:
        return None
    return _words(payload[claim])


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: worth a signature check."""
    return token.count(".") == 2
