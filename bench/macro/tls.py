"""TLS benchmark: gwcore vs NGINX terminating TLS 1.3 (ECDSA P-256) in front of the same origin.

Two measurements per proxy, in alternating rounds, with run.py's one-worker layout (origin and
wrk on CPU 0, the proxy under test with 1 worker on CPU 1):
  keep-alive   wrk -t1 -c64 over https, GET /1k (1 KiB body): req/s on reused connections
  handshakes   the same with ``Connection: close``: every request a new TCP connection and a
               full TLS 1.3 handshake (wrk resumes no session): handshakes/s
The certificate is made at run time with ``cryptography`` (never committed). Usage, from the
repository root: ``.venv/bin/python bench/macro/tls.py [--duration 8s] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # bench/macro/run.py: tools, origin, spawn, wrk parsing

NGINX_TLS = """worker_processes 1;
daemon off;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path tmp/client;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    upstream origin { server 127.0.0.1:@ORIGIN_PORT@; keepalive 64;
                      keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:@PORT@ ssl;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        ssl_protocols TLSv1.3;
        ssl_session_tickets on;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
        }
    }
}
"""

GWCORE_TLS = """workers: 1
pin_cpus: false
listeners:
  - name: bench
    address: 127.0.0.1:@PORT@
    tls:
      certificates: [{cert: "@CERT@", key: "@KEY@"}]
      min_version: TLSv1.3
clusters:
  - name: origin
    endpoints: ["127.0.0.1:@ORIGIN_PORT@"]
    pool: {max_idle: 64, idle_timeout: 60s}
routes:
  - match: {path_prefix: /}
    cluster: origin
"""


def make_cert(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.test")]), False)
            .sign(key, hashes.SHA256()))
    c, k = d / "cert.pem", d / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    for p in (d, c, k):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return c, k


def ready(port: int) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                ctx.wrap_socket(raw, server_hostname="bench.test") as s:
            version = s.version()
            s.sendall(b"GET /1k HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and len(data) > 1024 and version == "TLSv1.3"
    except (OSError, ssl.SSLError):
        return False


def start(name: str, d: Path, text: str, values: dict[str, str], argv_for, cpus: str):
    port = run.free_port()
    for k, v in {**values, "PORT": str(port)}.items():
        text = text.replace(f"@{k}@", v)
    argv = argv_for(d, text)
    server = run.spawn(name, argv, cpus, d / "stdout.log", port)
    deadline = time.monotonic() + 20
    while not ready(port):
        if server.exited() or time.monotonic() > deadline:
            run.stop(server)
            raise run.BenchError(f"{name} did not serve TLS:\n{server.log_tail()}\n"
                                 f"{run.tail_file(d / 'error.log')}")
        time.sleep(0.1)
    return server


def wrk(port: int, duration: str, close: bool, cpus: str) -> tuple[float, int]:
    argv = ["wrk", "-t1", "-c64", f"-d{duration}", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"https://127.0.0.1:{port}/1k")
    out = run.subprocess.run(run.pinned(cpus, argv), capture_output=True, text=True,
                             check=False, timeout=run.parse_duration_s(duration) + 30)
    res = run.parse_wrk(out.stdout + out.stderr, 1024)
    errors = sum(res.socket_errors.values()) + res.non_2xx_3xx
    return res.rps or 0.0, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", default="8s")
    ap.add_argument("--warmup", default="2s")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tools = run.ensure_tools(want_haproxy=False, install=False)
    layout = run.layout_for(1)
    servers = []
    with tempfile.TemporaryDirectory(prefix="gwcore-tls-bench-") as tmp_s:
        tmp = Path(tmp_s)
        tmp.chmod(0o755)
        try:
            origin = run.start_origin(tmp, tools, layout)
            servers.append(origin)
            (tmp / "pki").mkdir()
            cert, key = make_cert(tmp / "pki")
            values = {"ORIGIN_PORT": str(origin.port), "CERT": str(cert), "KEY": str(key)}

            def nginx_argv(d: Path, text: str) -> list[str]:
                (d / "nginx.conf").write_text(text)
                return run.nginx_argv(str(tools["nginx"]), d)

            def gwcore_argv(d: Path, text: str) -> list[str]:
                (d / "gwcore.yaml").write_text(text)
                return [sys.executable, "-m", "gwcore", "serve", "--config",
                        str(d / "gwcore.yaml")]

            proxies = {}
            for name, text, argv_for in (("gwcore", GWCORE_TLS, gwcore_argv),
                                         ("nginx", NGINX_TLS, nginx_argv)):
                d = tmp / name
                d.mkdir()
                proxies[name] = start(name, d, text, values, argv_for, layout.proxy_cpus)
                servers.append(proxies[name])
            results: dict[tuple[str, str], list[float]] = {}
            errors = 0
            for r in range(args.rounds):
                for mode, close in (("keep-alive", False), ("handshakes", True)):
                    for name, server in proxies.items():
                        wrk(server.port, args.warmup, close, layout.wrk_cpus)
                        rps, err = wrk(server.port, args.duration, close, layout.wrk_cpus)
                        errors += err
                        results.setdefault((name, mode), []).append(rps)
                        print(f"round {r + 1} {mode:10} {name:6} {rps:10.0f}/s errors {err}",
                              flush=True)
            print(f"\nTLS 1.3, ECDSA P-256, 1 KiB, wrk -t1 -c64, {args.rounds} rounds of "
                  f"{args.duration}; {layout.describe()}; errors {errors}")
            for mode in ("keep-alive", "handshakes"):
                g = statistics.median(results[("gwcore", mode)])
                n = statistics.median(results[("nginx", mode)])
                unit = "req/s" if mode == "keep-alive" else "handshakes/s"
                print(f"{mode:10}  gwcore {g:9.0f} {unit}  nginx {n:9.0f} {unit}  "
                      f"ratio {g / n:.2f}")
        finally:
            for server in reversed(servers):
                run.stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
