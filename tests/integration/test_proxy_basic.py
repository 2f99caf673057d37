"""Basic proxying: real clients (httpx, curl, raw sockets), forwarded fields, routing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def fields(info: dict) -> dict[str, list[str]]:
    """/headers' field list as lower-case name -> values in order."""
    out: dict[str, list[str]] = {}
    for name, value in info["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def forwarded(gw, headers: dict[str, str] | None = None, target: str = "/headers") -> dict:
    r = httpx.get(gw.url + target, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_get_with_httpx(gw) -> None:
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            r = client.get(gw.url + "/hello")
            assert r.status_code == 200
            assert r.json() == {"hello": "world"}
            assert r.headers["content-type"] == "application/json"
            assert r.http_version == "HTTP/1.1"


def test_post_with_httpx(gw, pattern) -> None:
    body = pattern(7, 300_000)
    r = httpx.post(gw.url + "/echo", content=body, timeout=10)
    assert r.status_code == 200
    assert r.content == body


@needs_curl
def test_get_with_curl(gw) -> None:
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-D", "-", gw.url + "/hello"],
        capture_output=True, check=True,
    ).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(body) == {"hello": "world"}


@needs_curl
@pytest.mark.parametrize("extra", [
    ["-H", "Transfer-Encoding: chunked"],
    ["-H", "Expect: 100-continue"],
    [],
], ids=["chunked", "expect", "content-length"])
def test_upload_with_curl(gw, pattern, tmp_path: Path, extra: list[str]) -> None:
    body = pattern(3, 200_000)
    src = tmp_path / "body.bin"
    src.write_bytes(body)
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "10", "--data-binary", f"@{src}", *extra,
         gw.url + "/echo"],
        capture_output=True, check=True,
    ).stdout
    assert out == body


def test_head_has_no_body(gw, raw, req) -> None:
    with raw(gw.port) as c:
        # The GET after the HEAD shows that no body bytes followed the HEAD response.
        c.send(req("HEAD", "/big?size=1000000") + req("GET", "/hello"))
        head = c.read_response(method=b"HEAD")
        assert head.status == 200
        assert head.header("content-length") == "1000000"
        assert head.body == b""
        after = c.read_response()
        assert after.status == 200 and after.json() == {"hello": "world"}
    r = httpx.head(gw.url + "/hello", timeout=10)
    assert r.status_code == 200 and r.content == b""


def test_forwarded_fields(gw) -> None:
    info = forwarded(gw, {"Host": "front.example:8443"}, target="/headers?a=1&b=%20x")
    assert info["method"] == "GET"
    assert info["target"] == "/headers?a=1&b=%20x"
    assert info["http_version"] == "1.1"
    f = fields(info)
    assert f.get("x-forwarded-for") == ["127.0.0.1"]
    assert f.get("x-forwarded-proto") == ["http"]
    assert f.get("x-forwarded-host") == ["front.example:8443"]
    assert any("gwcore" in v for v in f.get("via", [])), f.get("via")
    assert len(f.get("x-request-id", [])) == 1
    assert REQUEST_ID.fullmatch(f["x-request-id"][0]), f["x-request-id"]


def test_forwarded_for_is_appended(gw) -> None:
    f = fields(forwarded(gw, {"X-Forwarded-For": "203.0.113.7"}))
    joined = ", ".join(f.get("x-forwarded-for", []))
    assert re.fullmatch(r"203\.0\.113\.7\s*,\s*127\.0\.0\.1", joined), joined


def test_generated_request_ids_differ(gw) -> None:
    ids = {fields(forwarded(gw))["x-request-id"][0] for _ in range(5)}
    assert len(ids) == 5
    assert all(REQUEST_ID.fullmatch(i) for i in ids), ids


@pytest.mark.parametrize("rid", ["abc-123", "A.b_c:d-9", "x" * 128])
def test_well_formed_request_id_is_kept(gw, rid: str) -> None:
    assert fields(forwarded(gw, {"X-Request-Id": rid}))["x-request-id"] == [rid]


@pytest.mark.parametrize("rid", ["has space", "x" * 129, "<script>", "a/b", "é"],
                         ids=["space", "129-chars", "angle", "slash", "non-ascii"])
def test_malformed_request_id_is_replaced(gw, raw, rid: str) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: gw.test\r\nX-Request-Id: "
               + rid.encode("utf-8") + b"\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r.body
    got = fields(r.json()).get("x-request-id", [])
    assert len(got) == 1, got
    assert got[0] != rid and REQUEST_ID.fullmatch(got[0]), got


def test_hop_by_hop_fields_removed(gw, raw, req) -> None:
    with raw(gw.port) as c:
        c.send(req("GET", "/headers", {
            "Connection": "close, foo",
            "Foo": "bar",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "Upgrade": "websocket",
            "Proxy-Connection": "keep-alive",
            "X-Keep": "yes",
        }))
        r = c.read_response()
        assert r.status == 200
        f = fields(r.json())
        for gone in ("foo", "keep-alive", "te", "trailer", "upgrade", "proxy-connection"):
            assert gone not in f, (gone, r.json()["headers"])
        for value in f.get("connection", []):
            assert "foo" not in value.lower() and "close" not in value.lower(), value
        assert f.get("x-keep") == ["yes"]
        # The client asked to close: the response is the last one on this connection.
        assert c.is_closed(timeout=3)


def test_repeated_fields_keep_their_order(gw, raw, req) -> None:
    with raw(gw.port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: gw.test\r\nX-Dup: one\r\nX-Other: 1\r\n"
               b"X-Dup: two\r\n\r\n")
        f = fields(c.read_response().json())
    assert [v.strip() for v in ", ".join(f["x-dup"]).split(",")] == ["one", "two"]


def test_origin_status_passes_through(gw) -> None:
    r = httpx.get(gw.url + "/status/503", timeout=10)
    assert r.status_code == 503 and r.text == "status 503"
    r = httpx.get(gw.url + "/no-such-endpoint", timeout=10)
    assert r.status_code == 404 and r.text == "origin: no such endpoint"


def test_routes(gateway_factory, origin) -> None:
    gw = gateway_factory(routes=[
        {"match": {"path": "/hello", "methods": ["GET", "HEAD"]}, "cluster": "origin"},
        {"match": {"host": "*.wild.test", "path_prefix": "/headers"}, "cluster": "origin"},
    ])
    before = origin.stats()["requests"]
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        assert client.get("/hello").status_code == 200
        assert client.head("/hello").status_code == 200
        for method, target, host in [
            ("POST", "/hello", None),          # method not in the route
            ("GET", "/hello/x", None),         # exact path only
            ("GET", "/nothing", None),         # no route at all
            ("GET", "/headers", "wild.test"),  # *.wild.test needs a label before the suffix
            ("GET", "/headers", "wild.test.evil"),
        ]:
            headers = {"Host": host} if host else {}
            r = client.request(method, target, headers=headers)
            assert r.status_code == 404, (method, target, host, r.status_code)
            assert r.headers.get("content-type", "").startswith("text/plain")
        for host in ("a.wild.test", "a.b.wild.test", "A.Wild.Test", "a.wild.test:8080"):
            r = client.get("/headers", headers={"Host": host})
            assert r.status_code == 200, (host, r.status_code)
    # Only the 2 + 4 routed requests reached the origin.
    assert origin.stats()["requests"] - before == 6


def test_sigterm_stops_the_gateway_cleanly(gateway_factory) -> None:
    gw = gateway_factory()
    assert httpx.get(gw.url + "/hello", timeout=10).status_code == 200
    assert gw.proc.stop(grace=10) == 0
