"""Key material shared by the JWT differential tests."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization


def key_pair(private: object) -> tuple[object, bytes]:
    """(the private key, for signing with PyJWT; its public key as PEM, for verifying)."""
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public
