"""The gwcore command: version, check (exit 0/1 with file and key path), and the demo that a
newcomer runs first (sample origin + gateway on 127.0.0.1:8080, Ctrl-C stops both)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx
import pytest
from conftest import PYTHON, Proc, free_port, wait_for_port

from gwcore.demo import GATEWAY_PORT, ORIGIN_PORT


def gwcore(*args: str, python: tuple[str, ...] = (), cwd: str | None = None
           ) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, *python, "-m", "gwcore", *args], capture_output=True,
                          text=True, timeout=30, check=False, cwd=cwd)


def imported(out: subprocess.CompletedProcess) -> set[str]:
    """The modules a ``python -X importtime`` run imported (from its stderr)."""
    return {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:") and "[us]" not in line}


def test_version() -> None:
    out = gwcore("version")
    assert out.returncode == 0 and out.stdout.startswith("gwcore 0.")


def test_check_good_and_bad(tmp_path) -> None:
    good = tmp_path / "gateway.yaml"
    good.write_text("listeners: [{name: a, address: '127.0.0.1:8080'}]\n"
                    "clusters: [{name: video, endpoints: ['127.0.0.1:9001']}]\n"
                    "routes: [{match: {path_prefix: /}, cluster: video}, "
                    "{match: {path: /x}, cluster: video}, {cluster: vidoe}]\n")
    bad = gwcore("check", str(good))
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"{good}: routes[2].cluster: unknown cluster 'vidoe'"
    good.write_text(good.read_text().replace("vidoe", "video"))
    ok = gwcore("check", str(good))
    assert ok.returncode == 0 and ok.stdout.strip() == f"{good}: ok"
    assert gwcore("check", str(tmp_path / "missing.yaml")).returncode == 1


CHECKED = """\
listeners:
  - name: public
    address: 127.0.0.1:8080
    limits: {max_body_bytes: 10MiB}
clusters: [{name: video, endpoints: ['127.0.0.1:9001']}]
routes: [{cluster: video}]
"""


@pytest.mark.parametrize("change, problem", [
    (("routes: [", "clusters: []\nroutes: ["),
     "clusters: duplicate key on line 6 (first on line 5)"),
    (("clusters:", "  - {name: all, address: '0.0.0.0:8080'}\nclusters:"),
     ("listeners[1].address: 0.0.0.0:8080 overlaps listeners[0] 'public' on 127.0.0.1:8080 "
      "(a wildcard address takes port 8080 on every IPv4 address)")),
    (("10MiB", "10mb"),
     ("listeners[0].limits.max_body_bytes: expected a size: a whole number of bytes, optionally "
      "with a unit: B, KiB, MiB, GiB (×1024) or kB/KB, MB, GB (×1000), e.g. 16KiB; "
      "got '10mb' (unknown unit 'mb')")),
])
def test_check_catches_what_serve_would_trip_on(tmp_path, change, problem) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CHECKED.replace(*change))
    out = gwcore("check", str(cfg))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == f"{cfg}: {problem}"
    cfg.write_text(CHECKED.replace("10MiB", "10MB"))    # SI units: accepted, 10,000,000 bytes
    assert gwcore("check", str(cfg)).returncode == 0


HEAVY = ("uvloop", "gwcore.process.worker", "gwcore.http._connection", "gwcore.proxy._session",
         "gwcore.proxy._upstream",
         "gwcore.proxy._router")


def test_version_and_check_load_neither_uvloop_nor_the_compiled_proxy(tmp_path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CHECKED)
    for args in (("version",), ("check", str(cfg))):
        out = gwcore(*args, python=("-X", "importtime"))
        assert out.returncode == 0, out.stderr
        modules = imported(out)
        assert "gwcore.cli" in modules                  # the probe sees gwcore's imports
        assert not modules & set(HEAVY), (args, sorted(modules & set(HEAVY)))
        assert not [m for m in modules if m.startswith(("gwcore.jwt", "gwcore.proxy"))], args


def test_check_reads_jwt_key_files_relative_to_the_config(tmp_path) -> None:
    conf = tmp_path / "conf"
    (conf / "keys").mkdir(parents=True)
    cfg = conf / "gateway.yaml"
    cfg.write_text(CHECKED.replace("routes: [{cluster: video}]",
                                   "routes: [{cluster: video, jwt: p}]") +
                   "jwt_providers:\n  p: {algorithms: [HS256], jwks: {file: keys/jwks.json}}\n")
    missing = gwcore("check", str(cfg), cwd=str(tmp_path))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == (
        f"{cfg}: jwt_providers.p.jwks.file: [Errno 2] No such file or directory: "
        f"'{conf / 'keys/jwks.json'}'")
    (conf / "keys/jwks.json").write_text('{"keys": 5}')
    bad = gwcore("check", str(cfg), cwd=str(tmp_path))
    assert bad.returncode == 1
    assert bad.stderr.strip() == (f"{cfg}: jwt_providers.p.jwks.file: a JWK Set is a JSON "
                                  'object with a "keys" array')
    (conf / "keys/jwks.json").write_text(
        '{"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldA"}]}')
    ok = gwcore("check", "conf/gateway.yaml", cwd=str(tmp_path), python=("-X", "importtime"))
    assert ok.returncode == 0 and ok.stdout.strip() == "conf/gateway.yaml: ok", ok.stderr
    assert "gwcore.jwt" in imported(ok) and "uvloop" not in imported(ok)


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_free(*ports: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_free(p) for p in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.timeout(60)
def test_demo_serves_and_ctrl_c_stops_both(tmp_path) -> None:
    port, origin_port = free_port(), free_port()
    demo = Proc("demo", [PYTHON, "-m", "gwcore", "demo", "--port", str(port),
                         "--origin-port", str(origin_port)], tmp_path / "demo.log")
    try:
        wait_for_port(port, demo)
        base = f"http://127.0.0.1:{port}"
        items = httpx.get(f"{base}/api/items", timeout=10)
        assert items.status_code == 200 and items.json()[0]["id"] == 1
        seg = httpx.get(f"{base}/video/segment0.ts", timeout=30)
        assert seg.status_code == 200 and len(seg.content) == 10 * 1024 * 1024
        assert f"curl -i {base}/api/items" in demo.log_tail()
        demo.popen.send_signal(signal.SIGINT)           # the master alone, not its group
        assert demo.popen.wait(10) == 0
        assert _wait_free(origin_port, port)            # the origin child is gone too
    finally:
        demo.stop()


def test_demo_ports_default_and_taken(tmp_path) -> None:
    usage = gwcore("demo", "--help").stdout
    assert f"default {GATEWAY_PORT}" in usage and f"default {ORIGIN_PORT}" in usage
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        origin_port = free_port()
        gw = gwcore("demo", "--port", str(port), "--origin-port", str(origin_port))
        origin = gwcore("demo", "--port", str(free_port()), "--origin-port", str(port))
    assert gw.returncode == 1
    assert gw.stderr.strip() == (f"gwcore demo: gateway: cannot listen on 127.0.0.1:{port}: "
                                 "Address already in use")
    assert _wait_free(origin_port)                      # the origin it had started is stopped
    assert origin.returncode == 1
    assert origin.stderr.strip() == (f"gwcore demo: sample origin: cannot listen on "
                                     f"127.0.0.1:{port}: Address already in use")
    bad = gwcore("demo", "--port", "70000")
    assert bad.returncode == 2 and "expected a port number 1-65535" in bad.stderr


def test_serve_on_a_taken_port_names_the_listener(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "gw.yaml"
        cfg.write_text(f"listeners: [{{name: public, address: '127.0.0.1:{port}'}}]\n"
                       "clusters: [{name: c, endpoints: ['127.0.0.1:9']}]\n"
                       "routes: [{cluster: c}]\n")
        out = gwcore("serve", "--config", str(cfg))
    assert out.returncode == 1
    assert out.stderr.strip() == (f"gwcore: listeners: public: cannot listen on "
                                  f"127.0.0.1:{port}: Address already in use")


def test_a_second_gateway_cannot_join_a_running_ones_port(tmp_path) -> None:
    port = free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"workers: 2\nlisteners: [{{name: public, address: '127.0.0.1:{port}'}}]\n"
                   "clusters: [{name: c, endpoints: ['127.0.0.1:9']}]\n"
                   "routes: [{cluster: c}]\n")
    first = Proc("first", [PYTHON, "-m", "gwcore", "serve", "--config", str(cfg)],
                 tmp_path / "first.log")
    try:
        wait_for_port(port, first)
        second = gwcore("serve", "--config", str(cfg))     # same address, SO_REUSEPORT or not
        assert second.returncode == 1
        assert "cannot listen on" in second.stderr and "in use" in second.stderr
    finally:
        first.stop()
