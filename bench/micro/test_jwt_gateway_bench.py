"""The gateway's JWT path per request (gwcore.filters.jwt_auth.Provider.check): a token seen
before (cache hit: a BLAKE2b digest and a dict lookup) vs a first sighting (full verify).

    /work/venv/bin/python -m pytest bench/micro/test_jwt_gateway_bench.py --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import json
import time

import jwt as pyjwt
import msgspec
import pytest

from gwcore.config import JwtProvider
from gwcore.filters.jwt_auth import Provider

SECRET = b"s" * 32


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    k = pyjwt.utils.base64url_encode(SECRET).decode()
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": k, "kid": "h1"}]}))
    cfg = msgspec.convert({"algorithms": ["HS256"], "issuer": "https://auth.test/",
                           "audiences": ["gateway"], "jwks": {"file": str(path)},
                           "forward_claims": {"sub": "x-user-id"}}, JwtProvider)
    return Provider("bench", cfg)


def make_token(i: int) -> bytes:
    now = int(time.time())
    return pyjwt.encode({"iss": "https://auth.test/", "aud": "gateway", "sub": f"u{i}",
                         "iat": now, "exp": now + 3600, "scope": "read write"}, SECRET,
                        algorithm="HS256", headers={"kid": "h1"}).encode()


def test_cached_repeat(benchmark, provider):
    benchmark.group = "gateway JWT check, HS256"
    tok = make_token(0)
    now = time.time()
    provider.check(tok, now)
    _claims, fields = benchmark(provider.check, tok, now)
    assert fields == [(b"x-user-id", b"u0")]


def test_first_sighting(benchmark, provider):
    benchmark.group = "gateway JWT check, HS256"
    tok = make_token(1)
    now = time.time()

    def uncached():
        provider.cache.clear()
        return provider.check(tok, now)

    assert benchmark(uncached)[0]["sub"] == "u1"
