"""Model routing end to end (gwcore/inference): a real gateway in front of real origin
processes that say which version they are (model_origin.py). The model is read from a JSON
body field, a path or a request field; versions split by weight (exactly, sticky per client,
or pinned), copies mirrored to a slow candidate without delaying the client, fallbacks taken
in order, and max_in_flight queues never exceeded at the origin."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    HOST,
    Origin,
    free_port,
    start_gateway,
    start_origin,
    wait_for,
)

WORKERS = 2
BODY = json.dumps({"model": "ranker", "messages": [
    {"role": "user", "content": "rank these " + "x" * 900}], "temperature": 0.2}).encode()


def body_for(model: str, pad: int = 900) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "y" * pad}],
                       "model": model}).encode()


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.origins: dict[str, Origin] = {}

    def origin(self, name: str, *args: str) -> Origin:
        o = start_origin(self.tmp, name, args=["--name", name, *args],
                         script="model_origin.py")
        self.origins[name] = o
        return o

    def stop(self) -> None:
        for o in self.origins.values():
            o.proc.stop()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, object, Path]]:
    tmp = tmp_path_factory.mktemp("inference")
    s = Setup(tmp)
    dead = free_port()
    try:
        for name in ("v7", "v8", "v6eu", "sticky-a", "sticky-b", "q"):
            s.origin(name)
        s.origin("v9", "--sleep", "2")                       # the mirror candidate: slow
        s.origin("busy", "--status", "503", "--retry-after", "30")
        s.origin("limited", "--status", "429")

        def cluster(name: str, port: int) -> dict:
            return {"name": name, "endpoints": [f"{HOST}:{port}"],
                    "timeouts": {"connect": "1s", "response": "5s"},
                    "retries": {"attempts": 1}}

        clusters = [cluster(f"ranker-{n}", o.port) for n, o in s.origins.items()]
        clusters.append(cluster("ranker-dead", dead))
        clusters.append(cluster("ranker-mirror-down", free_port()))
        port, admin = free_port(), free_port()
        access_log = tmp / "access.log"
        config = {
            "workers": WORKERS,
            "admin": {"address": f"{HOST}:{admin}"},
            "listeners": [{"name": "public", "address": f"{HOST}:{port}",
                           "limits": {"max_body_bytes": "4MiB"}}],
            "clusters": clusters,
            "access_log": {"path": str(access_log), "format": "json"},
            "models": {
                "ranker": {"versions": [{"name": "v7", "cluster": "ranker-v7", "weight": 95},
                                        {"name": "v8", "cluster": "ranker-v8", "weight": 5}]},
                "sticky": {"versions": [{"name": "a", "cluster": "ranker-sticky-a",
                                         "weight": 50},
                                        {"name": "b", "cluster": "ranker-sticky-b",
                                         "weight": 50}],
                           "sticky_on": {"header": "X-User"}},
                "shadowed": {"versions": [{"name": "v7", "cluster": "ranker-v7"}],
                             "mirror": {"cluster": "ranker-v9", "percent": 100}},
                "shadow-down": {"versions": [{"name": "v7", "cluster": "ranker-v7"}],
                                "mirror": {"cluster": "ranker-mirror-down", "percent": 100}},
                "fallible": {"versions": [{"name": "v1", "cluster": "ranker-dead"}],
                             "fallback": ["ranker-busy", "ranker-limited", "ranker-v6eu"]},
                "queued": {"versions": [{"name": "v1", "cluster": "ranker-q"}],
                           "max_in_flight": 2, "queue": 2, "queue_timeout": "3s"},
            },
            "routes": [
                {"name": "canary", "match": {"path_prefix": "/canary/"},
                 "cluster": [{"name": "ranker-v7", "weight": 90},
                             {"name": "ranker-v8", "weight": 10}]},
                {"name": "by-path", "match": {"path_prefix": "/v1/models/"},
                 "model_from": {"path_regex": "^/v1/models/(?P<model>[^/:]+)"}},
                {"name": "by-header", "match": {"path_prefix": "/h/"},
                 "model_from": {"header": "X-Model"}},
                {"name": "small", "match": {"path_prefix": "/small/"},
                 "model_from": {"json_field": "model", "max_body_bytes": "2KiB"}},
                {"name": "by-body", "match": {"path_prefix": "/v1/"},
                 "model_from": {"json_field": "model"}, "version_header": "X-Model-Version"},
            ],
        }
        gw = start_gateway(config, tmp, "gateway")
        gw.admin = admin
        try:
            yield s, gw, access_log
        finally:
            gw.proc.stop()
    finally:
        s.stop()


def post(port: int, target: str, body: bytes | None, headers: dict | None = None,
         conn: http.client.HTTPConnection | None = None) -> tuple[int, dict, bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        c.request("POST", target, body=body, headers={"Host": "gw.test", **(headers or {})})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            c.close()


def served(s: Setup) -> dict[str, int]:
    return {n: o.stats()["requests"] for n, o in s.origins.items()}


def test_body_field_routes_and_forwards_the_body_byte_for_byte(setup):
    _s, gw, _ = setup
    status, fields, data = post(gw.port, "/v1/chat/completions", BODY)
    assert status == 200, data
    got = json.loads(data)
    assert got["served_by"] in ("v7", "v8")
    assert fields["x-model-version"] == got["served_by"]         # answered to the client
    assert got["version_field"] == got["served_by"]              # and sent upstream
    assert got["body_length"] == len(BODY)
    assert got["body_sha256"] == hashlib.sha256(BODY).hexdigest()
    assert got["path"] == "/v1/chat/completions"


def test_chunked_body_is_read_and_sent_with_its_length(setup):
    _s, gw, _ = setup
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(BODY), 100):
            yield BODY[i:i + 100]
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    c.request("POST", "/v1/completions", body=chunks(), encode_chunked=True,
              headers={"Host": "gw.test", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    got = json.loads(r.read())
    c.close()
    assert r.status == 200
    assert got["body_sha256"] == hashlib.sha256(BODY).hexdigest()


def test_path_and_header_routing(setup):
    _s, gw, _ = setup
    status, fields, data = post(gw.port, "/v1/models/sticky:predict", b'{"x": 1}',
                                {"X-User": "u1"})
    assert status == 200 and json.loads(data)["served_by"] in ("sticky-a", "sticky-b")
    # this route lets no request pin a version: a forged field is replaced upstream
    status, fields, data = post(gw.port, "/h/predict", b"",
                                {"X-Model": "ranker", "X-Model-Version": "forged"})
    got = json.loads(data)
    assert status == 200 and got["served_by"] in ("v7", "v8")
    assert fields["x-model-version"] == got["served_by"] == got["version_field"]


@pytest.mark.parametrize("target, body, headers, status, code", [
    ("/v1/chat", body_for("gpt-unknown"), {}, 404, "model_not_found"),
    ("/v1/chat", b'{"model": "ranker"', {}, 400, "invalid_body"),
    ("/v1/chat", b'["model", "ranker"]', {}, 400, "invalid_body"),
    ("/v1/chat", b'{"model": 7}', {}, 400, "invalid_body"),
    ("/v1/chat", b'{"prompt": "no model"}', {}, 400, "model_not_given"),
    ("/v1/chat", b"", {}, 400, "model_not_given"),
    ("/h/x", b"", {}, 400, "model_not_given"),
    ("/h/x", b"", {"X-Model": "nope"}, 404, "model_not_found"),
    ("/v1/models/nope:predict", b"{}", {}, 404, "model_not_found"),
    ("/small/x", body_for("ranker", 4000), {}, 413, "body_too_large"),
    ("/v1/chat", BODY, {"X-Model-Version": "v99"}, 404, "version_not_found"),
])
def test_bad_requests_get_openai_errors(setup, target, body, headers, status, code):
    s, gw, _ = setup
    before = served(s)
    got, fields, data = post(gw.port, target, body, headers)
    assert got == status, data
    assert fields["content-type"] == "application/json"
    err = json.loads(data)["error"]
    assert err["code"] == code and err["message"] and "type" in err
    assert served(s) == before          # nothing reached any origin


def test_oversized_chunked_body_is_413(setup):
    _s, gw, _ = setup
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    c.request("POST", "/small/x", body=iter([b"x" * 1500, b"y" * 1500]), encode_chunked=True,
              headers={"Host": "gw.test", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 413
    assert json.loads(data)["error"]["code"] == "body_too_large"


def test_split_95_5_over_10000_requests(setup):
    s, gw, _ = setup
    before = served(s)
    n, threads, lock = 10_000, 8, threading.Lock()
    statuses: Counter[int] = Counter()
    said: Counter[str] = Counter()

    def client(k: int) -> None:
        c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
        mine: Counter[int] = Counter()
        versions: Counter[str] = Counter()
        for _ in range(k):
            status, fields, _ = post(gw.port, "/v1/chat/completions", BODY, conn=c)
            mine[status] += 1
            versions[fields.get("x-model-version", "")] += 1
        c.close()
        with lock:
            statuses.update(mine)
            said.update(versions)

    workers = [threading.Thread(target=client, args=(n // threads,)) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    after = served(s)
    v7, v8 = after["v7"] - before["v7"], after["v8"] - before["v8"]
    assert statuses == {200: n}
    assert v7 + v8 == n
    assert abs(v8 / n - 0.05) <= 0.01, (v7, v8)
    assert said == {"v7": v7, "v8": v8}


def test_sticky_split_keeps_each_user_on_one_version(setup):
    _s, gw, _ = setup
    seen: dict[str, set[str]] = {}
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    for round_ in range(5):
        for u in range(200):
            status, _fields, data = post(gw.port, "/v1/x", body_for("sticky"),
                                        {"X-User": f"user-{u}"}, conn=c)
            assert status == 200
            seen.setdefault(f"user-{u}", set()).add(json.loads(data)["served_by"])
    c.close()
    assert all(len(v) == 1 for v in seen.values())
    shares = Counter(next(iter(v)) for v in seen.values())
    assert set(shares) == {"sticky-a", "sticky-b"}          # both versions serve users


def test_a_request_may_pin_a_version(setup):
    _s, gw, _ = setup
    for _ in range(20):
        status, fields, data = post(gw.port, "/v1/x", BODY, {"X-Model-Version": "v8"})
        assert status == 200 and json.loads(data)["served_by"] == "v8"
        assert json.loads(data)["version_field"] == "v8"       # the client's, replaced
        assert fields["x-model-version"] == "v8"


def test_mirror_copies_every_request_without_delaying_the_client(setup):
    s, gw, access_log = setup
    v9 = s.origins["v9"]
    before = v9.stats()["requests"]
    slowest = 0.0
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    for _ in range(10):
        t0 = time.monotonic()
        status, _fields, data = post(gw.port, "/v1/x", body_for("shadowed"), conn=c)
        slowest = max(slowest, time.monotonic() - t0)
        assert status == 200 and json.loads(data)["served_by"] == "v7"
    c.close()
    # the candidate sleeps 2 s per request: the client never waited for it
    assert slowest < 1.0, slowest
    wait_for(lambda: v9.stats()["requests"] - before == 10, 10, "10 copies at the candidate")
    wait_for(lambda: access_log.read_text().count('"mirror":true') >= 10, 10,
             "mirror lines in the access log")
    lines = [json.loads(x) for x in access_log.read_text().splitlines() if '"mirror":true' in x]
    assert all(x["status"] == 200 and x["duration"] >= 2.0 for x in lines[-10:])
    assert all(x["primary_status"] == 200 and x["cluster"] == "ranker-v9" for x in lines[-10:])


def test_mirror_down_fails_no_client_request(setup):
    _s, gw, access_log = setup
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    for _ in range(50):
        status, _, data = post(gw.port, "/v1/x", body_for("shadow-down"), conn=c)
        assert status == 200, data
    c.close()
    # the first copy fails to connect; then the mirror backs off and drops the rest
    wait_for(lambda: '"error":"connect_failed"' in access_log.read_text(), 10,
             "a failed copy logged")


def test_fallbacks_are_taken_in_order(setup):
    s, gw, access_log = setup
    before = served(s)
    status, fields, data = post(gw.port, "/v1/x", body_for("fallible"))
    assert status == 200, data
    got = json.loads(data)
    assert got["served_by"] == "v6eu"
    assert fields["x-model-version"] == "ranker-v6eu"          # the answer says who served
    assert got["version_field"] == "ranker-v6eu"                # sent upstream once
    # one request, one id: every try carried the id of the first
    assert s.origins["busy"].stats()["request_ids"][-1] == got["request_id"]
    after = served(s)
    # the dead version, then the 503 cluster, then the 429 one, then the one that answered
    assert after["busy"] - before["busy"] == 1
    assert after["limited"] - before["limited"] == 1
    assert after["v6eu"] - before["v6eu"] == 1
    # the 503 said Retry-After: 30, so the next request skips it
    status, fields, data = post(gw.port, "/v1/x", body_for("fallible"))
    assert status == 200 and json.loads(data)["served_by"] == "v6eu"
    again = served(s)
    assert again["limited"] - after["limited"] == 1
    wait_for(lambda: '"model_version":"ranker-v6eu"' in access_log.read_text(), 5,
             "the fallback logged")


def test_queue_bound_is_never_exceeded_at_the_origin(setup):
    s, gw, _ = setup
    q = s.origins["q"]
    before = q.stats()
    n = 12
    results: list[tuple[int, dict, bytes]] = []
    lock = threading.Lock()

    def one() -> None:
        got = post(gw.port, "/v1/x", body_for("queued"), {"X-Sleep": "0.4"})
        with lock:
            results.append(got)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = q.stats()
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(ok) + len(refused) == n
    # per worker: 2 under way and 2 waiting; the rest refused at once
    assert len(ok) <= 4 * WORKERS and len(refused) >= n - 4 * WORKERS
    assert after["max_in_flight"] <= 2 * WORKERS
    assert after["requests"] - before["requests"] == len(ok)
    for status, fields, data in refused:
        assert fields["retry-after"] == "1"
        assert json.loads(data)["error"]["code"] == "model_overloaded"


def test_weighted_cluster_split_on_a_plain_route(setup):
    s, gw, _ = setup
    before = served(s)
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    for _ in range(1000):
        c.request("GET", "/canary/x", headers={"Host": "gw.test"})
        r = c.getresponse()
        r.read()
        assert r.status == 200
    c.close()
    after = served(s)
    v7, v8 = after["v7"] - before["v7"], after["v8"] - before["v8"]
    assert v7 + v8 == 1000
    assert abs(v8 - 100) <= 2 * WORKERS, (v7, v8)      # smooth WRR: exact per 10 per worker


@pytest.fixture(scope="module")
def one_place(setup) -> Iterator[int]:
    """A one-worker gateway whose model ``queued`` has one place and one queue slot (so the
    worker's place and queue are the whole bound): its port."""
    s, _, _ = setup
    port = free_port()
    config = {
        "workers": 1,
        "listeners": [{"name": "public", "address": f"{HOST}:{port}"}],
        "clusters": [{"name": "q", "endpoints": [f"{HOST}:{s.origins['q'].port}"]}],
        "models": {"queued": {"versions": [{"name": "v1", "cluster": "q"}],
                              "max_in_flight": 1, "queue": 1, "queue_timeout": "5s"}},
        "routes": [
            {"name": "sheddable", "match": {"path_prefix": "/shed/"}, "priority": 2,
             "model_from": {"json_field": "model"}},
            {"name": "critical", "match": {"path_prefix": "/"}, "priority": 0,
             "model_from": {"json_field": "model"}},
        ],
    }
    gw = start_gateway(config, s.tmp, "gateway-one-place")
    try:
        yield port
    finally:
        gw.proc.stop()


def in_thread(results: dict, name: str, port: int, target: str, sleep: str
              ) -> threading.Thread:
    def run() -> None:
        results[name] = post(port, target, body_for("queued"), {"X-Sleep": sleep})
    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_more_important_route_displaces_a_queued_sheddable_one(setup, one_place):
    s, _, _ = setup
    q = s.origins["q"]
    results: dict[str, tuple[int, dict, bytes]] = {}
    wait_for(lambda: q.stats()["in_flight"] == 0, 10, "the origin idle")
    before = q.stats()["requests"]
    held = in_thread(results, "held", one_place, "/shed/x", "1.0")
    wait_for(lambda: q.stats()["in_flight"] == 1, 10, "the one place taken")
    queued = in_thread(results, "queued", one_place, "/shed/x", "0")
    time.sleep(0.3)     # ordering only: the sheddable request waits before the critical
    critical = in_thread(results, "critical", one_place, "/v1/x", "0")
    for t in (held, queued, critical):
        t.join()
    assert q.stats()["requests"] - before == 2
    assert results["held"][0] == 200 and results["critical"][0] == 200
    status, fields, data = results["queued"]
    assert status == 503 and fields["retry-after"] == "1"
    assert json.loads(data)["error"]["code"] == "model_overloaded"


@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_client_gone_while_queued_is_never_sent(setup, one_place, how):
    s, _, _ = setup
    q = s.origins["q"]
    results: dict[str, tuple[int, dict, bytes]] = {}
    wait_for(lambda: q.stats()["in_flight"] == 0, 10, "the origin idle")
    before = q.stats()
    held = in_thread(results, "held", one_place, "/v1/x", "1.0")
    wait_for(lambda: q.stats()["in_flight"] == 1, 10, "the one place taken")
    gone = socket.create_connection((HOST, one_place))
    body = body_for("queued")
    gone.sendall(b"POST /v1/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body)
    time.sleep(0.2)     # ordering only: it is queued before it goes
    if how == "reset":
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.close()        # RST, or FIN: either way the client has given up
    held.join()
    after = q.stats()
    assert results["held"][0] == 200
    assert after["requests"] - before["requests"] == 1      # the one that left never went


def test_models_and_mirrors_in_metrics(setup):
    _, gw, _ = setup

    def scrape() -> dict[str, float]:
        c = http.client.HTTPConnection(HOST, gw.admin, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    pinned = 'gwcore_model_requests_total{model="ranker",version="v8"}'
    fell = 'gwcore_model_fallbacks_total{model="fallible"}'
    mirrored = 'gwcore_mirror_requests_total{cluster="ranker-v9",model="shadowed",outcome="2xx"}'
    # let the counters settle (a mirror copy takes 2 s), then take a known step
    wait_for(lambda: scrape() == scrape(), 15, "metrics at rest")
    start = scrape()
    c = http.client.HTTPConnection(HOST, gw.port, timeout=15)
    for _ in range(20):
        assert post(gw.port, "/v1/x", body_for("ranker"), {"X-Model-Version": "v8"},
                    conn=c)[0] == 200
    for _ in range(3):
        assert post(gw.port, "/v1/x", body_for("fallible"), conn=c)[0] == 200
        assert post(gw.port, "/v1/x", body_for("shadowed"), conn=c)[0] == 200
    c.close()

    def stepped() -> bool:
        now = scrape()
        return (now.get(pinned, 0) - start.get(pinned, 0) == 20
                and now.get(fell, 0) - start.get(fell, 0) >= 3
                and now.get(mirrored, 0) - start.get(mirrored, 0) == 3)
    wait_for(stepped, 15, "model, fallback and mirror counts in /metrics")
    assert scrape()['gwcore_mirror_seconds_total{cluster="ranker-v9",model="shadowed"}'] >= 6
