"""Load balancing with three real origins (issue 5): stickiness by header, passive ejection
of a killed origin and its return, active health checks probed once per generation, and the
retry budget during an outage, counted at the origins."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    HERE,
    HOST,
    PYTHON,
    Proc,
    free_port,
    gateway_config,
    start_gateway,
    start_origin,
    tree_pids,
    wait_for,
    wait_for_port,
)

pytestmark = pytest.mark.timeout(120)


def targets(origin) -> list[str]:
    return origin.stats(targets=True)["targets"]


def served(origin, path: str) -> int:
    return sum(1 for t in targets(origin) if t.startswith(path))


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def logged_by_every_worker(gw, text: str) -> bool:
    """Every worker of the gateway (the master's children) has logged a line with text."""
    workers = set(tree_pids(gw.pid)) - {gw.pid}
    pids = {int(line.split("gwcore[", 1)[1].split("]", 1)[0])
            for line in gw.proc.log().splitlines() if text in line and "gwcore[" in line}
    return bool(workers) and workers <= pids


@pytest.fixture
def origins(tmp_path: Path):
    made = []
    try:
        for i in range(3):
            made.append(start_origin(tmp_path, f"origin{i}"))
        yield made
    finally:
        for o in made:
            o.proc.stop()


def three(origins, tmp_path: Path, name: str = "gateway", workers: int = 1, **cluster):
    cfg = gateway_config(free_port(), origins[0].port, free_port(), clusters=[
        {"name": "three", "endpoints": [f"{HOST}:{o.port}" for o in origins], **cluster}],
        routes=[{"match": {"path_prefix": "/"}, "cluster": "three"}])
    cfg["workers"] = workers
    return start_gateway(cfg, tmp_path, name)


def test_hash_on_header_is_sticky_and_spreads_users(origins, tmp_path) -> None:
    gw = three(origins, tmp_path, balancer={"policy": "ring_hash", "hash_on": {
        "header": "X-User"}})
    try:
        owners = {}
        for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
            for i in range(5):
                assert get(gw.port, f"/hello?u={user}&i={i}", {"X-User": user})[0] == 200
            owners[user] = [o for o in origins if served(o, f"/hello?u={user}&")]
        assert all(len(v) == 1 for v in owners.values()), owners      # all 5 on one origin
        assert len({id(v[0]) for v in owners.values()}) >= 2           # users spread
    finally:
        gw.proc.stop()


def test_killed_origin_is_ejected_and_comes_back(origins, tmp_path) -> None:
    # no retries, so every request that still went to the dead origin shows as a 502; the
    # ejection (5 s) only has to outlast the dozen requests sent while it lasts
    gw = three(origins, tmp_path, retries={"attempts": 1}, outlier_detection={
        "consecutive_failures": 2, "base_ejection_time": "5s"})
    try:
        victim = origins[1]
        port = victim.port
        victim.proc.stop()
        ejected = f"{HOST}:{port} ejected"
        statuses = []
        for i in range(30):
            statuses.append(get(gw.port, f"/hello?n={i}")[0])
            if ejected in gw.proc.log():
                break
        else:
            raise AssertionError(f"never ejected: {statuses}")
        # round robin sends every third request to it: 2 failures in a row eject it
        assert statuses.count(502) == 2 and set(statuses) == {200, 502}, statuses
        # during the ejection the dead endpoint is not tried at all: no 5xx
        after = [get(gw.port, f"/hello?after={i}")[0] for i in range(9)]
        assert "back from ejection" not in gw.proc.log(), "too slow to observe the ejection"
        assert after == [200] * 9, after
        # the origin comes back on the same port; after the ejection time, traffic returns
        back = Proc("origin1-back", [PYTHON, str(HERE / "origin.py"), "--port", str(port)],
                    tmp_path / "origin1-back.log")
        try:
            wait_for_port(port, back)

            def returned() -> bool:
                get(gw.port, "/hello?back")
                return back_count(port) > 0
            wait_for(returned, timeout=30, what="traffic back at the returned origin")
            assert "back from ejection" in gw.proc.log()
        finally:
            back.stop()
    finally:
        gw.proc.stop()


def test_connect_failures_are_retried_so_clients_see_no_5xx(origins, tmp_path) -> None:
    gw = three(origins, tmp_path)          # default: 2 tries on connect failure
    try:
        origins[2].proc.stop()
        statuses = [get(gw.port, f"/hello?r={i}")[0] for i in range(60)]
        assert statuses == [200] * 60, statuses
    finally:
        gw.proc.stop()


FAILING_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(500)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"boom")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_5xx_answers_eject_an_endpoint(origins, tmp_path) -> None:
    script = tmp_path / "failing.py"
    script.write_text(FAILING_SERVER)
    bad_port = free_port()
    bad = Proc("failing", [PYTHON, str(script), str(bad_port)], tmp_path / "failing.log")
    try:
        wait_for_port(bad_port, bad)
        cfg = gateway_config(free_port(), origins[0].port, free_port(), clusters=[
            {"name": "c", "endpoints": [f"{HOST}:{origins[0].port}", f"{HOST}:{bad_port}"],
             "retries": {"attempts": 1},
             "outlier_detection": {"consecutive_failures": 3, "base_ejection_time": "30s"}}],
            routes=[{"match": {"path_prefix": "/"}, "cluster": "c"}])
        gw = start_gateway(cfg, tmp_path, "gw-5xx")
        try:
            statuses = [get(gw.port, f"/hello?x={i}")[0] for i in range(20)]
            assert statuses.count(500) == 3, statuses      # then ejected
            assert f"{HOST}:{bad_port} ejected" in gw.proc.log_path.read_text()
            assert [get(gw.port, "/hello")[0] for _ in range(10)] == [200] * 10
        finally:
            gw.proc.stop()
    finally:
        bad.stop()


def back_count(port: int) -> int:
    return back_count_path(port, "/hello?back")


def back_count_path(port: int, prefix: str) -> int:
    """Requests whose target starts with prefix, from the origin on port's own /stats."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/stats?targets=1", headers={"Connection": "close"})
        return sum(1 for t in json.loads(conn.getresponse().read())["targets"]
                   if t.startswith(prefix))
    finally:
        conn.close()


def test_active_health_check_one_prober_per_generation(origins, tmp_path) -> None:
    # endpoint 3 is a plain stdlib server: GET /hello is a 404 there, so it fails the check
    odd_port = free_port()
    odd = subprocess.Popen([sys.executable, "-m", "http.server", str(odd_port), "--bind", HOST,
                            "--directory", str(tmp_path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        cfg = gateway_config(free_port(), origins[0].port, free_port(), clusters=[
            {"name": "c", "endpoints": [f"{HOST}:{origins[0].port}", f"{HOST}:{odd_port}"],
             "health_check": {"path": "/hello", "interval": "200ms", "timeout": "500ms",
                              "unhealthy_threshold": 2, "healthy_threshold": 1}}],
            routes=[{"match": {"path_prefix": "/"}, "cluster": "c"}])
        cfg["workers"] = 2
        gw = start_gateway(cfg, tmp_path, "gw-hc")
        try:
            # each worker logs the change when it applies the shared board
            wait_for(lambda: logged_by_every_worker(gw, "is unhealthy"), timeout=15,
                     what="both workers applying 'unhealthy'")
            assert [get(gw.port, f"/hello?hc={i}")[0] for i in range(30)] == [200] * 30
            # probes: one prober for the whole gateway, not one per worker. A prober sleeps
            # 200 ms after each round, so its probes reach the origin at least 200 ms apart:
            # at most T / 0.2 + 1 in a window of T seconds (two probers: about twice that)
            started = time.monotonic()
            probes0 = sum(1 for t in targets(origins[0]) if t == "/hello")
            time.sleep(2.0)                  # the measuring window, not a wait for anything
            probes = sum(1 for t in targets(origins[0]) if t == "/hello") - probes0
            window = time.monotonic() - started
            print(f"{probes} probes in {window:.2f} s at a 200 ms interval with 2 workers")
            assert 3 <= probes <= window / 0.2 + 1, (probes, window)
            # the endpoint starts answering /hello with 200: healthy again, traffic returns
            odd.terminate()
            odd.wait(5)
            fixed = Proc("fixed", [PYTHON, str(HERE / "origin.py"), "--port", str(odd_port)],
                         tmp_path / "fixed.log")
            try:
                wait_for_port(odd_port, fixed)
                wait_for(lambda: logged_by_every_worker(gw, "is healthy"), timeout=15,
                         what="both workers applying 'healthy' again")
                for i in range(20):     # round robin in each worker: half go to it
                    get(gw.port, f"/hello?again={i}")
                assert back_count_path(odd_port, "/hello?again=") > 0
            finally:
                fixed.stop()
        finally:
            gw.proc.stop()
    finally:
        if odd.poll() is None:
            odd.terminate()
            odd.wait(5)


def test_retry_budget_limits_attempts_during_an_outage(origins, tmp_path) -> None:
    """Every endpoint answers 503: 5 tries each would mean 5× the requests at the origins;
    the budget (0%, i.e. the floor of 3 retries in flight) keeps it near 1×."""
    gw = three(origins, tmp_path, retries={"attempts": 5, "on": ["503"], "budget": "0%",
                                           "retry_after_max": "0s"},
               outlier_detection={"consecutive_failures": 1000})
    try:
        before = sum(served(o, "/slow") for o in origins)
        results: list[int] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            status, _ = get(gw.port, f"/slow?delay=0.3&status=503&i={i}")
            with lock:
                results.append(status)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        attempts = sum(served(o, "/slow") for o in origins) - before
        print(f"30 requests, {attempts} upstream attempts, statuses {sorted(set(results))}")
        assert len(results) == 30
        assert attempts <= 30 + 3 * 4 + 6, attempts      # no retry storm (5× would be 150)
        assert attempts > 30                              # but some retries did happen
    finally:
        gw.proc.stop()


def test_endpoint_given_by_dns_name_is_re_resolved(origin, tmp_path) -> None:
    """api.test names 127.0.0.1, then 127.0.0.2 (the gateway's resolver reads a hosts file the
    test rewrites): the gateway re-resolves it every dns_refresh and connects to the new
    address. Two origins listen on the same port, one on each address."""
    for attempt in range(5):
        first = start_origin(tmp_path, f"dns-a{attempt}")
        try:
            second = start_origin(tmp_path, f"dns-b{attempt}", host="127.0.0.2",
                                  port=first.port)
            break
        except RuntimeError:        # that port is taken on 127.0.0.2: another pair
            first.proc.stop()
    else:
        raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"{HOST} api.test\n")
    cfg = gateway_config(free_port(), origin.port, free_port(), clusters=[
        {"name": "named", "endpoints": [f"api.test:{first.port}"], "dns_refresh": "200ms"}],
        routes=[{"match": {"path_prefix": "/"}, "cluster": "named"}])
    gw = start_gateway(cfg, tmp_path, "gw-dns", hosts=hosts)
    try:
        # Connection: close from the origin: no pooled connection to the old address stays
        assert get(gw.port, "/hello?dns=1&conn_close=1")[0] == 200
        hosts.write_text("127.0.0.2 api.test\n")
        gw.proc.wait_for_log("api.test now resolves to 127.0.0.2")
        assert get(gw.port, "/hello?dns=2")[0] == 200
        assert (first.served("/hello?dns="), second.served("/hello?dns=")) == (1, 1)
    finally:
        gw.proc.stop()
        first.proc.stop()
        second.proc.stop()


def test_retry_after_is_honoured_up_to_its_bound(origins, tmp_path) -> None:
    gw = three(origins, tmp_path, retries={"attempts": 3, "on": ["503"],
                                           "retry_after_max": "1s"},
               outlier_detection={"consecutive_failures": 1000})
    try:
        def attempts(query: str) -> tuple[int, int, float]:
            before = sum(served(o, "/slow") for o in origins)
            started = time.monotonic()
            status, _ = get(gw.port, f"/slow?delay=0&status=503&{query}")
            took = time.monotonic() - started
            return status, sum(served(o, "/slow") for o in origins) - before, took
        status, n, took = attempts("retry_after=1")     # within the bound: wait, then retry
        assert (status, n) == (503, 3) and took >= 2.0, (status, n, took)
        status, n, took = attempts("retry_after=30")    # over the bound: the 503 is final
        assert (status, n) == (503, 1) and took < 10.0, (status, n, took)   # not 30 s
        status, n, _ = attempts("x=1")                  # no Retry-After: retried at once
        assert (status, n) == (503, 3)
    finally:
        gw.proc.stop()


@pytest.mark.parametrize("hash_on", [{"cookie": "sid"}, "path"])
def test_hash_on_cookie_and_path_are_sticky(origins, tmp_path, hash_on) -> None:
    gw = three(origins, tmp_path, balancer={"policy": "maglev", "hash_on": hash_on})
    try:
        owners = set()
        for v in range(12):     # 12 keys on 3 origins: all on one by chance is 3 / 3**12
            if hash_on == "path":
                path, headers = f"/hello/{v}/", {}
            else:
                path, headers = f"/hello?k={v}&", {"Cookie": f"theme=dark; sid=user{v}"}
            for i in range(3):
                get(gw.port, f"{path}?i={i}" if hash_on == "path" else f"{path}i={i}",
                    headers)
            seen = [o for o in origins if served(o, path)]
            assert len(seen) == 1, (hash_on, v, seen)          # all 3 on one origin
            owners.add(id(seen[0]))
        assert len(owners) >= 2
    finally:
        gw.proc.stop()


def test_503_is_retried_only_for_idempotent_requests(origins, tmp_path) -> None:
    import httpx
    gw = three(origins, tmp_path, retries={"attempts": 3, "on": ["503"]},
               outlier_detection={"consecutive_failures": 1000})
    try:
        def attempts(method: str, tag: str) -> int:
            r = httpx.request(method, f"{gw.url}/slow?delay=0&status=503&t={tag}", timeout=10)
            assert r.status_code == 503
            return sum(served(o, f"/slow?delay=0&status=503&t={tag}") for o in origins)
        assert attempts("GET", "get") == 3
        assert attempts("POST", "post") == 1          # not idempotent: never replayed
    finally:
        gw.proc.stop()
