"""Routes match the normalised path (RFC 3986 §6.2.2), so no spelling of a protected path
reaches the origin unauthenticated (the class of Envoy's CVE-2019-9901).

The gateway: ``/v1/`` needs a JWT; a catch-all route goes to the same origin without one.
The origin reports the request-target it received; the test decodes it the way common
frameworks do (percent-decoding, ``//`` merged, dot segments resolved) to see what path the
origin's application would have served.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from urllib.parse import unquote

import pytest
from conftest import RawConn, free_port, gateway_config, start_gateway_on_free_port

SECRET = b"k" * 32


def _framework_path(target: str) -> str:
    path = unquote(target.partition("?")[0])
    path = re.sub(r"/+", "/", path)
    return posixpath.normpath(path) + ("/" if path.endswith("/") and path != "/" else "")


def _gateway(tmp_path, origin, escaped_slashes: str, forward_normalized: bool = False):
    jwks = {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256",
                      "k": base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()}]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))

    def config(port: int) -> dict:
        cfg = gateway_config(port, origin.port, free_port(), routes=[
            {"match": {"path_prefix": "/v1/"}, "cluster": "origin", "jwt": "main",
             "forward_normalized_path": forward_normalized},
            {"match": {"path_prefix": "/"}, "cluster": "origin",
             "forward_normalized_path": forward_normalized},
        ])
        cfg["listeners"][0]["path_normalization"] = {"merge_slashes": True,
                                                     "escaped_slashes": escaped_slashes}
        cfg["jwt_providers"] = {"main": {"algorithms": ["HS256"],
                                         "jwks": {"file": str(tmp_path / "jwks.json")}}}
        return cfg

    return start_gateway_on_free_port(config, tmp_path, f"gw-path-{escaped_slashes}")


@pytest.fixture(params=["decode", "reject"])
def path_gw(request, tmp_path, origin):
    g = _gateway(tmp_path, origin, request.param)
    yield request.param, g
    g.proc.stop()


def _get(port: int, target: str):
    with RawConn(port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        return c.read_response()


SPELLINGS = [
    "/v1/x", "/%76%31/x", "/%76%31%2Fx", "/v1%2Fx", "/v1%2fx", "//v1/x", "///v1//x",
    "/v1/./x", "/./v1/x", "/x/../v1/x", "/x/%2e%2e/v1/x", "/x/%2E./v1/x", "/../../v1/x",
    "/a/b/../../v1/x", "/v1/%7ex", "/%76%31/%7Ex", "/v%31/x?q=1", "/v1", "/v1/",
    "/x/..%2Fv1/x", "/v1/x/..", "/v1/.",
]


@pytest.mark.parametrize("target", SPELLINGS)
def test_no_spelling_of_a_protected_path_passes_unauthenticated(path_gw, origin, target):
    mode, gw = path_gw
    r = _get(gw.port, target)
    seen = _framework_path(target)
    protected = seen.startswith("/v1/")
    if r.status == 200:
        # it reached the origin: what the origin's application serves must be unprotected
        assert not protected, (mode, target, seen)
    elif mode == "reject" and ("%2f" in target.lower()):
        assert r.status == 400, (mode, target, r.status)
    else:
        assert r.status in (401, 404), (mode, target, r.status, r.body[:200])
        if seen.startswith("/v1/"):
            assert r.status == 401, (mode, target)


@pytest.mark.parametrize("target", ["/v1/%00", "/%00", "/x%zz", "/x%4", "/x%"])
def test_bad_escapes_are_400(path_gw, target):
    _, gw = path_gw
    r = _get(gw.port, target)
    assert r.status == 400, (target, r.status)


def test_keep_leaves_escaped_slashes_unmatched(tmp_path, origin):
    """escaped_slashes: keep — documented as the hole of CVE-2021-29492 for origins that
    decode %2F: the path stays /v1%2Fx, which the /v1/ route does not match."""
    gw = _gateway(tmp_path, origin, "keep")
    try:
        assert _get(gw.port, "/v1%2fx").status == 404      # origin: no such endpoint
        assert _get(gw.port, "/%76%31/x").status == 401
    finally:
        gw.proc.stop()


def test_target_forwarded_byte_for_byte_by_default(gw, origin):
    """RFC 9110 §7.7: the request-target goes upstream as received (this origin does not
    decode it, so it answers 404); routing used the normalised path."""
    target = "/x/../%68eaders?a=%2F&b=./.."
    r = _get(gw.port, target)
    assert r.status == 404 and b"origin: no such endpoint" in r.body, r.status
    assert origin.stats(targets=True)["targets"][-1] == target


def test_forward_normalized_path(tmp_path, origin):
    gw = _gateway(tmp_path, origin, "decode", forward_normalized=True)
    try:
        r = _get(gw.port, "//x/../%68eaders?a=%2F&b=./..")
        assert r.status == 200
        assert r.json()["target"] == "/headers?a=%2F&b=./.."    # the query as received
    finally:
        gw.proc.stop()
