"""Signing keys of a test identity provider: RS256 and ES256 keys, their JWKS, signed tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            found = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            found = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**found, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, payload: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            payload, self.private, self.algorithm, headers={"kid": self.kid, **header}
        )

    def unsigned(self, payload: dict[str, Any]) -> str:
        """``alg: none`` under this key's ``kid``: no signature at all."""
        return jwt.encode(payload, "", "none", headers={"kid": self.kid})


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def jwks_file(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps(jwks(*keys)))
    return path
