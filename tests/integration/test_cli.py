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


def gwcore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "gwcore", *args], capture_output=True, text=True,
                          timeout=30, check=False)


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


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.timeout(60)
def test_demo_serves_and_ctrl_c_stops_both(tmp_path) -> None:
    if not (_free(GATEWAY_PORT) and _free(ORIGIN_PORT)):
        pytest.skip(f"ports {GATEWAY_PORT}/{ORIGIN_PORT} are taken on this machine")
    demo = Proc("demo", [PYTHON, "-m", "gwcore", "demo"], tmp_path / "demo.log")
    try:
        wait_for_port(GATEWAY_PORT, demo)
        base = f"http://127.0.0.1:{GATEWAY_PORT}"
        items = httpx.get(f"{base}/api/items", timeout=10)
        assert items.status_code == 200 and items.json()[0]["id"] == 1
        seg = httpx.get(f"{base}/video/segment0.ts", timeout=30)
        assert seg.status_code == 200 and len(seg.content) == 10 * 1024 * 1024
        assert "curl" in demo.log_tail()
        demo.popen.send_signal(signal.SIGINT)
        assert demo.popen.wait(10) == 0
        time.sleep(0.2)
        assert _free(ORIGIN_PORT) and _free(GATEWAY_PORT)      # the origin child is gone too
    finally:
        demo.stop()


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
