"""JWK Sets (RFC 7517 section 5) and PEM key files as gwcore.jwt key sets.

A JWKSet is immutable: key rotation builds a new one and assigns it to ``Verifier.keys``.
Members of a JWKS document that cannot be used for verification (unknown kty or crv, ``use``
other than "sig", ``key_ops`` without "verify", malformed or private material) are skipped, as
RFC 7517 section 5 advises, and listed in ``skipped`` so the caller can log them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from gwcore.jwt._jws import Key, KeySet
from gwcore.jwt.exceptions import InvalidKeyError

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


class JWKSet(KeySet):
    """Verification keys chosen by ``kid`` (see KeySet for the selection rule).

    ``skipped`` is a tuple of ``(index, kid or None, reason)`` for the unusable JWKs.
    """

    skipped: tuple[tuple[int, str | None, str], ...]

    def __init__(
        self, keys: Iterable[Key] = (), skipped: Iterable[tuple[int, str | None, str]] = ()
    ) -> None:
        super().__init__(keys)
        self.skipped = tuple(skipped)

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> JWKSet:
        """From a parsed JWKS document ``{"keys": [JWK, ...]}``.

        Raises InvalidKeyError if ``keys`` is missing or not an array.
        """
        members = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(members, list):
            raise InvalidKeyError('a JWK Set is a JSON object with a "keys" array')
        keys: list[Key] = []
        skipped: list[tuple[int, str | None, str]] = []
        for index, jwk in enumerate(members):
            try:
                keys.append(Key.from_jwk(jwk))
            except InvalidKeyError as exc:
                kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
                skipped.append((index, kid if isinstance(kid, str) else None, str(exc)))
        return cls(keys, skipped)

    @classmethod
    def from_json(cls, data: bytes | str) -> JWKSet:
        """From JWKS JSON text (UTF-8 bytes or str). Raises InvalidKeyError."""
        try:
            document = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidKeyError(f"JWK Set is not JSON: {exc}") from None
        return cls.from_dict(document)

    @classmethod
    def from_pem(cls, *pems: bytes | str) -> JWKSet:
        """From PEM texts, each holding one or more PUBLIC KEY / RSA PUBLIC KEY / CERTIFICATE
        blocks. The keys have no kid, so every one fitting a token's alg is tried.

        Raises InvalidKeyError for a text without a PEM block or a block that is no usable key.
        """
        keys = []
        for pem in pems:
            data = pem.encode() if isinstance(pem, str) else bytes(pem)
            blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
            if not blocks:
                raise InvalidKeyError("no PEM block found")
            keys.extend(Key.from_pem(block) for block in blocks)
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> JWKSet:
        """From a file holding a JWKS document or PEM blocks (chosen by its content)."""
        data = Path(path).read_bytes()
        if b"-----BEGIN " in data:
            return cls.from_pem(data)
        return cls.from_json(data)

    def __getitem__(self, kid: str) -> Key:
        """The first key with this kid; KeyError if none."""
        for key in self.keys:
            if key.kid == kid:
                return key
        raise KeyError(kid)

    def __repr__(self) -> str:
        return f"<JWKSet {len(self.keys)} keys, kids={sorted(self.kids())}>"


def fetch(url: str, timeout: float) -> JWKSet:
    """GET a JWKS document over http(s) (blocking; run it in an executor). Raises OSError
    (network, HTTP status other than 200) or InvalidKeyError (not a usable JWK Set)."""
    import urllib.request

    req = urllib.request.Request(url, headers={"Accept": "application/json",
                                               "User-Agent": "gwcore-jwks"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if resp.status != 200:
            raise OSError(f"{url}: HTTP {resp.status}")
        return JWKSet.from_json(resp.read(1 << 20))
