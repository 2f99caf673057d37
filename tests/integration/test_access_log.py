"""The access log in a real gateway (gwcore/observability/_access_log.pyx): one JSON line per
request with every field right for each way a request ends (proxied, no route, JWT refusal,
upstream down, upstream timeout, client gone), two workers logging into one file, 2xx
sampling, secrets never written, NGINX's combined format, SIGUSR1 after logrotate's rename,
a FIFO nobody reads (requests are still answered at once; dropped lines are reported), and
stdout with the last lines written on a clean stop. Requests are told apart by a ``t=``
query parameter."""

from __future__ import annotations

import base64
import calendar
import itertools
import json
import os
import re
import secrets
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
from conftest import (
    HOST,
    RawConn,
    gateway_config,
    start_gateway_on_free_port,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

FIELDS = ["ts", "request_id", "trace_id", "client", "method", "path", "query", "status",
          "request_bytes", "response_bytes", "duration", "upstream_duration", "endpoint",
          "route", "cluster", "tries", "end", "cache", "auth"]
ISSUER = "https://auth.test/"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def access_config(port: int, origin_port: int, dead_port: int, tmp: Path, access_log: dict,
                  workers: int = 1) -> dict:
    """Routes by Host: gw.test → origin, dead.test → nothing listening, slow.test → origin
    with a 500 ms response timeout, secure.test → origin behind HS256 JWT; any other Host
    matches no route (404)."""
    cfg = gateway_config(port, origin_port, dead_port, clusters=[
        {"name": "origin", "endpoints": [f"{HOST}:{origin_port}"]},
        {"name": "dead", "endpoints": [f"{HOST}:{dead_port}"]},
        {"name": "slow", "endpoints": [f"{HOST}:{origin_port}"],
         "timeouts": {"connect": "1s", "response": "500ms"}},
    ], routes=[
        {"name": "main", "match": {"host": "gw.test"}, "cluster": "origin"},
        {"name": "dead", "match": {"host": "dead.test"}, "cluster": "dead"},
        {"name": "slow", "match": {"host": "slow.test"}, "cluster": "slow"},
        {"name": "secure", "match": {"host": "secure.test"}, "cluster": "origin", "jwt": "main"},
    ])
    cfg["workers"] = workers
    cfg["jwt_providers"] = {"main": {"issuer": ISSUER, "audiences": ["gateway"],
                                     "algorithms": ["HS256"],
                                     "jwks": {"file": str(tmp / "jwks.json")}}}
    cfg["access_log"] = access_log
    return cfg


def start(origin, dead_port: int, tmp: Path, name: str, access_log: dict, workers: int = 1):
    """A gateway with this access_log section; returns it and the HS256 secret of its JWT
    provider."""
    secret = secrets.token_bytes(32)
    k = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    (tmp / "jwks.json").write_text(json.dumps(
        {"keys": [{"kty": "oct", "k": k, "kid": "k1", "alg": "HS256"}]}))
    gw = start_gateway_on_free_port(
        lambda port: access_config(port, origin.port, dead_port, tmp, access_log, workers),
        tmp, name)
    return gw, secret


def token(secret: bytes, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "gateway", "sub": "user-1", "iat": now, "exp": now + 300,
            **claims}
    return pyjwt.encode(body, secret, algorithm="HS256", headers={"kid": "k1"})


def fetch(port: int, target: str, host: str = "gw.test", headers: dict | None = None,
          body: bytes = b"", method: str = "GET", version: str = "1.1") -> bytes:
    """One request on a new connection with ``Connection: close``; every byte the gateway
    sent back, until it closed."""
    h = {"Host": host, "Connection": "close", **(headers or {})}
    if body:
        h["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    with RawConn(port) as c:
        c.send(head.encode() + body)
        data, closed = c.read_until_close(timeout=15)
    assert closed, data[:300]
    return data


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def records(path: Path) -> list[dict]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines()]


def marked(recs: list[dict], marker: str) -> list[dict]:
    return [r for r in recs if f"t={marker}" in r["query"].split("&")]


def logged(path: Path, marker: str, timeout: float = 10.0) -> dict:
    """The one line of the request whose query has t=marker (fails if there are two)."""
    def find() -> dict | None:
        mine = marked(records(path), marker)
        assert len(mine) <= 1, mine
        return mine[0] if mine else None
    return wait_for(find, timeout, f"the access log line of t={marker}")


@pytest.fixture(scope="module")
def gw_json(origin, dead_port, tmp_path_factory) -> Iterator[tuple[object, Path, bytes]]:
    tmp = tmp_path_factory.mktemp("access-json")
    path = tmp / "access.log"
    gw, secret = start(origin, dead_port, tmp, "gw-access-json", {"path": str(path)},
                       workers=2)
    yield gw, path, secret
    gw.proc.stop()


def test_a_proxied_request_has_every_field(gw_json, origin) -> None:
    gw, path, _ = gw_json
    data = fetch(gw.port, "/echo?t=ok200", headers={"X-Request-Id": "req-abc.1"},
                 body=b"hello", method="POST")
    assert status_of(data) == 200 and data.endswith(b"hello")
    rec = logged(path, "ok200")
    assert list(rec) == FIELDS
    assert TS.match(rec["ts"])
    assert abs(calendar.timegm(time.strptime(rec["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
               - time.time()) < 30
    assert 0 < rec["upstream_duration"] <= rec["duration"] < 5
    assert {k: v for k, v in rec.items() if k not in ("ts", "duration", "upstream_duration")} \
        == {"request_id": "req-abc.1", "trace_id": None, "client": "127.0.0.1",
            "method": "POST", "path": "/echo", "query": "t=ok200", "status": 200,
            "request_bytes": 5, "response_bytes": len(data),
            "endpoint": f"{HOST}:{origin.port}", "route": "main", "cluster": "origin",
            "tries": 1, "end": "ok", "cache": None, "auth": None}


def test_generated_request_id_is_the_one_sent_upstream_and_path_is_normalised(gw_json) -> None:
    gw, path, _ = gw_json
    data = fetch(gw.port, "/headers?t=rid", headers={"X-Request-Id": "bad id!"})
    seen = json.loads(data.split(b"\r\n\r\n", 1)[1])
    sent = [v for k, v in seen["headers"] if k.lower() == "x-request-id"]
    rec = logged(path, "rid")
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", rec["request_id"])
    assert sent == [rec["request_id"]]
    # the target goes upstream as received (the origin has no such path), the log has the
    # normalised path routes matched
    assert status_of(fetch(gw.port, "/x/..//head%65rs?t=norm")) == 404
    rec = logged(path, "norm")
    assert (rec["path"], rec["status"], rec["end"]) == ("/headers", 404, "ok")


def test_no_route_is_a_local_404(gw_json) -> None:
    gw, path, _ = gw_json
    data = fetch(gw.port, "/nowhere?t=nr", host="other.test")
    assert status_of(data) == 404
    rec = logged(path, "nr")
    assert (rec["status"], rec["end"], rec["route"], rec["cluster"], rec["endpoint"],
            rec["tries"], rec["upstream_duration"], rec["request_id"]) == (
        404, "local", None, None, None, 0, None, None)
    assert rec["response_bytes"] == len(data) and rec["path"] == "/nowhere"


def test_jwt_outcomes_are_logged_and_tokens_never_are(gw_json) -> None:
    gw, path, secret = gw_json
    good = token(secret)
    forged = token(b"another secret that is 32 bytes!")
    cases = [("jm", {}, 401, "missing"),
             ("jx", {"Authorization": "Bearer not.a.token"}, 401, "header"),  # its code
             ("jf", {"Authorization": f"Bearer {forged}"}, 401, "bad_signature"),
             ("jok", {"Authorization": f"Bearer {good}"}, 200, "ok")]
    for marker, headers, status, auth in cases:
        assert status_of(fetch(gw.port, f"/hello?t={marker}", "secure.test", headers)) == status
        rec = logged(path, marker)
        assert (rec["status"], rec["auth"], rec["route"]) == (status, auth, "secure")
        assert rec["end"] == ("ok" if status == 200 else "local")
    text = path.read_text()
    for secret_text in (good, forged, "not.a.token", "Bearer"):
        assert secret_text not in text


def test_query_secrets_and_authorization_are_never_logged(gw_json) -> None:
    gw, path, _ = gw_json
    fetch(gw.port, "/hello?t=red&access_token=SECRET1&x=1&Sig=SECRET2",
          headers={"Authorization": "Basic SECRET3"})
    assert logged(path, "red")["query"] == "t=red&access_token=REDACTED&x=1&Sig=REDACTED"
    assert "SECRET" not in path.read_text()


def test_an_unreachable_upstream_is_a_502(gw_json, dead_port) -> None:
    gw, path, _ = gw_json
    assert status_of(fetch(gw.port, "/x?t=dead", "dead.test")) == 502
    rec = logged(path, "dead")
    assert (rec["status"], rec["end"], rec["cluster"], rec["endpoint"], rec["route"],
            rec["upstream_duration"]) == (502, "upstream_error", "dead",
                                          f"{HOST}:{dead_port}", "dead", None)
    assert rec["tries"] >= 1


def test_an_upstream_timeout_is_a_504(gw_json) -> None:
    gw, path, _ = gw_json
    assert status_of(fetch(gw.port, "/slow?delay=5&t=slow", "slow.test")) == 504
    rec = logged(path, "slow")
    assert (rec["status"], rec["end"], rec["cluster"], rec["upstream_duration"]) == (
        504, "timeout", "slow", None)
    assert 0.4 < rec["duration"] < 5


def test_a_client_gone_before_the_response_is_a_client_abort(gw_json, origin) -> None:
    gw, path, _ = gw_json
    key = f"al-{os.getpid()}-{time.monotonic_ns()}"
    s = socket.create_connection((HOST, gw.port))
    try:
        s.sendall(f"GET /hold?key={key}&t=abort HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
        wait_for(lambda: any(key in t for t in origin.stats()["in_flight"]),
                 what="the held request at the origin")
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()       # RST: the client is gone
    try:
        rec = logged(path, "abort")
    finally:
        origin.release(key)
    assert (rec["status"], rec["end"], rec["response_bytes"], rec["route"]) == (
        0, "client_abort", 0, "main")
    assert rec["upstream_duration"] is None


def test_two_workers_log_every_request_once(gw_json) -> None:
    gw, path, _ = gw_json
    n = 40
    for i in range(n):          # a connection each: SO_REUSEPORT spreads them over both
        assert status_of(fetch(gw.port, f"/hello?t=w{i}")) == 200

    def all_there() -> list[dict] | None:
        recs = records(path)
        mine = [r for i in range(n) for r in marked(recs, f"w{i}")]
        return mine if len(mine) >= n else None
    mine = wait_for(all_there, what=f"{n} lines")
    assert sorted(r["query"] for r in mine) == sorted(f"t=w{i}" for i in range(n))
    workers = {r["request_id"].split("-")[0] for r in mine}     # per-worker id prefixes
    assert len(workers) == 2, workers


def test_sample_2xx_zero_logs_errors_only(origin, dead_port, tmp_path) -> None:
    path = tmp_path / "access.log"
    gw, _ = start(origin, dead_port, tmp_path, "gw-access-sample",
                  {"path": str(path), "sample_2xx": 0})
    try:
        assert status_of(fetch(gw.port, "/hello?t=s200")) == 200
        assert status_of(fetch(gw.port, "/status/204?t=s204")) == 204
        assert status_of(fetch(gw.port, "/status/503?t=s503")) == 503
        assert status_of(fetch(gw.port, "/x?t=s404", "other.test")) == 404
        assert status_of(fetch(gw.port, "/x?t=s502", "dead.test")) == 502
        logged(path, "s502")    # the last one: the earlier ones went before it (one worker)
        recs = records(path)
        assert [r["query"] for r in recs] == ["t=s503", "t=s404", "t=s502"]
    finally:
        gw.proc.stop()


def test_combined_format(origin, dead_port, tmp_path) -> None:
    path = tmp_path / "access.log"
    gw, _ = start(origin, dead_port, tmp_path, "gw-access-combined",
                  {"path": str(path), "format": "combined"})
    try:
        fetch(gw.port, "/hello?t=c1&access_token=SECRET1&x=%22", headers={
            "Referer": "http://ref.test/page?code=SECRET2&y=2",
            "User-Agent": 'agent/1.0 "quoted"', "Authorization": "Bearer SECRET3"})
        fetch(gw.port, "/nowhere?t=c2", "other.test", version="1.0")
        lines = wait_for(lambda: (x := path.read_text().splitlines()) and len(x) >= 2 and x,
                         what="two combined lines")
    finally:
        gw.proc.stop()
    assert len(lines) == 2
    date = r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"
    first = (r'127\.0\.0\.1 - - DATE "GET /hello\?t=c1&access_token=REDACTED&x=%22 HTTP/1\.1" '
             r'200 \d+ "http://ref\.test/page\?code=REDACTED&y=2" "agent/1\.0 \\x22quoted\\x22"')
    second = r'127\.0\.0\.1 - - DATE "GET /nowhere\?t=c2 HTTP/1\.0" 404 \d+ "-" "-"'
    assert re.fullmatch(first.replace("DATE", date), lines[0]), lines[0]
    assert re.fullmatch(second.replace("DATE", date), lines[1]), lines[1]
    assert "SECRET" not in path.read_text()


def test_sigusr1_reopens_the_file_after_a_rename(origin, dead_port, tmp_path) -> None:
    path = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    gw, _ = start(origin, dead_port, tmp_path, "gw-access-rotate", {"path": str(path)},
                  workers=2)
    try:
        fetch(gw.port, "/hello?t=r0")
        logged(path, "r0")
        path.rename(rotated)
        os.kill(gw.pid, signal.SIGUSR1)
        n = itertools.count()

        def both_workers_reopened() -> bool:
            fetch(gw.port, f"/hello?t=after{next(n)}")
            return len({r["request_id"].split("-")[0] for r in records(path)}) == 2
        wait_for(both_workers_reopened, 20, "lines of both workers in the new file",
                 period=0.05)
        before = len(records(rotated))
        for i in range(10):
            fetch(gw.port, f"/hello?t=final{i}")
        for i in range(10):
            logged(path, f"final{i}")
        old = records(rotated)
        assert len(old) == before and not any(r["query"].startswith("t=final") for r in old)
        assert marked(old, "r0")
        assert gw.proc.alive()
    finally:
        gw.proc.stop()


def test_a_log_nobody_reads_never_holds_requests_up(origin, dead_port, tmp_path) -> None:
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)     # open, never read until the end
    try:
        gw, _ = start(origin, dead_port, tmp_path, "gw-access-fifo",
                      {"path": str(fifo), "buffer_bytes": "64KiB"})
        try:
            fill = "f" * 2000           # ~2.2 KB lines: the pipe and the buffer fill quickly
            slowest = 0.0
            with RawConn(gw.port) as c:
                for i in range(400):
                    t0 = time.monotonic()
                    c.send(f"GET /hello?t=p{i}&fill={fill} HTTP/1.1\r\nHost: gw.test\r\n\r\n"
                           .encode())
                    assert c.read_response().status == 200
                    slowest = max(slowest, time.monotonic() - t0)
            # answered although nothing reads the log (a blocked loop would answer none);
            # the bound only leaves room for a loaded machine
            assert slowest < 5.0, f"a request took {slowest:.2f}s"
            gw.proc.wait_for_log("lines dropped")
            got = bytearray()
            try:
                while chunk := os.read(reader, 1 << 16):
                    got.extend(chunk)
            except BlockingIOError:
                pass
            whole = bytes(got).split(b"\n")[:-1]        # the last piece may be cut
            assert whole and all(json.loads(x)["path"] == "/hello" for x in whole)
        finally:
            os.close(reader)        # the writer's next write fails: the worker exits at once
            reader = -1
            assert gw.proc.stop() == 0
    finally:
        if reader >= 0:
            os.close(reader)


def test_stdout_and_the_last_lines_on_a_clean_stop(origin, dead_port, tmp_path) -> None:
    gw, _ = start(origin, dead_port, tmp_path, "gw-access-stdout", {"path": "-"})
    try:
        for i in range(3):
            assert status_of(fetch(gw.port, f"/hello?t=out{i}")) == 200
    finally:
        assert gw.proc.stop() == 0
    lines = [json.loads(x) for x in gw.proc.log().splitlines() if x.startswith("{")]
    assert [r["query"] for r in lines] == ["t=out0", "t=out1", "t=out2"]
