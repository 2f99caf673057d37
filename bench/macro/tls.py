"""TLS benchmark: gwcore vs NGINX terminating TLS 1.3 (ECDSA P-256) in front of the same origin.

Three measurements per proxy, in alternating rounds, with run.py's one-worker layout (origin and
wrk on CPU 0, the proxy under test with 1 worker on CPU 1):
  keep-alive 1k    wrk -t1 -c64 over https, GET /1k (1 KiB body): req/s on reused connections
  keep-alive 64k   the same, GET /64k (64 KiB body)
  handshakes       GET /1k with ``Connection: close``: every request a new TCP connection and a
                   full TLS 1.3 handshake (wrk resumes no session): handshakes/s
  plain-close      (only when named in ``--modes``) the same without TLS, on a plain listener
                   of the same proxy: what a connection per request costs without a handshake
With ``--floor`` a third server is measured alongside: bench/macro/tls_floor.py, uvloop
terminating TLS with the context gwcore.tls builds and answering every request itself (1 KiB,
no proxying, no gwcore code per request): the floor of uvloop's TLS transport plus OpenSSL.
Each run also gives the proxy's CPU time per request (µs, its process group's utime + stime
from /proc), which moves less with the machine's load than req/s, and the CPU the rest of the
machine used meanwhile. The load average is printed at start and end.

``--perf SECONDS`` (0: off) then profiles each proxy under a load (``--perf-modes``) with
``perf record -g`` for that many seconds and prints where its CPU time went by shared object
(libssl/libcrypto, the Python interpreter, uvloop, gwcore's modules, the kernel) and the top
symbols; the reports are kept in ``--perf-dir`` if given.

The certificate is made at run time with ``cryptography`` (never committed). Usage, from the
repository root: ``.venv/bin/python bench/macro/tls.py [--duration 8s] [--rounds 2]
[--modes keep-alive-1k,keep-alive-64k,handshakes] [--perf 5]
[--perf-modes keep-alive-1k,handshakes] [--perf-dir DIR]``; with ``--rounds 0 --perf N`` it
only profiles.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # bench/macro/run.py: tools, origin, spawn, wrk parsing

# the same proxying on the TLS and the plain server
NGINX_LOCATION = """        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_busy_buffers_size 32k;
            proxy_max_temp_file_size 0;
        }"""
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
@LOCATION@
    }
    server {
        listen 127.0.0.1:@PLAIN_PORT@;
@LOCATION@
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
  - name: plain
    address: 127.0.0.1:@PLAIN_PORT@
""" + run.GWCORE_TO_ORIGIN


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


# tls_floor.py's arguments (--floor); paths of the run's temporary directory have no spaces
FLOOR_ARGS = "--cert @CERT@ --key @KEY@ --port @PORT@ --plain-port @PLAIN_PORT@"

PLAIN_PORTS: dict[str, int] = {}     # proxy name → its plain-HTTP listener's port


def start(name: str, d: Path, text: str, values: dict[str, str],
          argv_for: Callable[[Path, str], list[str]], cpus: str) -> run.Server:
    """Start a proxy from its config template in ``d`` (TLS and plain ports picked here) and
    wait up to 20 s for it to serve /1k over TLS 1.3; BenchError with its log if not."""
    port = run.free_port()
    PLAIN_PORTS[name] = run.free_port()
    for k, v in {**values, "PORT": str(port), "PLAIN_PORT": str(PLAIN_PORTS[name])}.items():
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


MODES = {     # name → (path, body bytes, Connection: close, over TLS)
    "keep-alive-1k": ("/1k", 1024, False, True),
    "keep-alive-64k": ("/64k", 65536, False, True),
    "handshakes": ("/1k", 1024, True, True),
    "plain-close": ("/1k", 1024, True, False),
}


def url(server: run.Server, mode: str) -> str:
    """The URL wrk asks of ``server`` in ``mode``."""
    path, _size, _close, over_tls = MODES[mode]
    if over_tls:
        return f"https://127.0.0.1:{server.port}{path}"
    return f"http://127.0.0.1:{PLAIN_PORTS[server.name]}{path}"


def wrk(server: run.Server, duration: str, mode: str, cpus: str) -> tuple[float, int]:
    """One wrk run of ``mode`` against ``server``: (req/s, failed requests)."""
    _path, size, close, _tls = MODES[mode]
    argv = ["wrk", "-t1", "-c64", f"-d{duration}", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url(server, mode))
    out = run.subprocess.run(run.pinned(cpus, argv), capture_output=True, text=True,
                             check=False, timeout=run.parse_duration_s(duration) + 30)
    res = run.parse_wrk(out.stdout + out.stderr, size)
    errors = sum(res.socket_errors.values()) + res.non_2xx_3xx
    return res.rps or 0.0, errors


def measured(server: run.Server, origin: run.Server, duration: str, mode: str, cpus: str
             ) -> tuple[float, int, float, dict[str, float]]:
    """wrk as above with CPU accounting: (req/s, failed requests, proxy CPU µs per request,
    cores used by the proxy, the origin, wrk and the rest of the machine)."""
    pg, og = server.proc.pid, origin.proc.pid
    before = run.cpu_sample([pg, og])
    rps, errors = wrk(server, duration, mode, cpus)
    after = run.cpu_sample([pg, og])
    shares = run.cpu_shares(before, after, pg, og)
    wall = after.wall - before.wall
    us = (after.groups[pg] - before.groups[pg]) / (rps * wall) * 1e6 if rps else 0.0
    return rps, errors, us, shares


GWCORE_SO = {p.name for p in (HERE.parent.parent / "gwcore").rglob("*.so")}


def dso_class(dso: str) -> str:
    """A coarse owner for a shared object in a perf report: OpenSSL's two libraries, the
    kernel, the Python interpreter, uvloop's loop, the ``_ssl`` module, gwcore's compiled
    modules, libc; anything else by its own name."""
    if dso in GWCORE_SO:
        return "gwcore (Cython/C)"
    for key, label in (("libssl", "OpenSSL libssl"), ("libcrypto", "OpenSSL libcrypto"),
                       ("kernel", "kernel"), ("vmlinux", "kernel"),
                       ("libpython", "Python interpreter"), ("python3", "Python interpreter"),
                       ("loop.cpython", "uvloop"), ("_ssl.cpython", "Python _ssl module"),
                       ("libc.so", "libc")):
        if key in dso:
            return label
    return dso


def profile(server: run.Server, seconds: int, cpus: str, out_dir: Path,
            mode: str = "keep-alive-1k") -> str:
    """perf record -g of the proxy's processes for ``seconds`` under a wrk load of
    ``mode``; returns a text summary (self time by shared object, top symbols)."""
    perf = shutil.which("perf")
    if perf is None:
        return f"{server.name}: perf not found, no profile"
    data = out_dir / f"{server.name}.{mode}.perf.data"
    pids = ",".join(str(p) for p in run.group_pids(server.proc.pid))
    close = MODES[mode][2]
    load = run.subprocess.Popen(
        run.pinned(cpus, ["wrk", "-t1", "-c64", f"-d{seconds + 3}s",
                          *(["-H", "Connection: close"] if close else []),
                          url(server, mode)]),
        stdout=run.subprocess.DEVNULL, stderr=run.subprocess.DEVNULL)
    try:
        time.sleep(1)
        run.subprocess.run([perf, "record", "-q", "-g", "-F", "999", "-p", pids, "-o",
                            str(data), "--", "sleep", str(seconds)],
                           capture_output=True, check=False, timeout=seconds + 30)
    finally:
        load.wait(timeout=seconds + 30)
    rep = run.subprocess.run([perf, "report", "-i", str(data), "--stdio", "--no-children",
                              "-g", "none", "--sort", "dso,sym", "--percent-limit", "0.5"],
                             capture_output=True, text=True, check=False, timeout=120)
    (out_dir / f"{server.name}.{mode}.perf.txt").write_text(rep.stdout)
    by_class: collections.Counter[str] = collections.Counter()
    top = []
    raw = run.subprocess.run([perf, "report", "-i", str(data), "--stdio", "--no-children",
                              "-g", "none", "--sort", "dso", "--percent-limit", "0"],
                             capture_output=True, text=True, check=False, timeout=120)
    for line in raw.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%") and not line.startswith("#"):
            by_class[dso_class(parts[1])] += float(parts[0].rstrip("%"))
    for line in rep.stdout.splitlines():
        if line.strip() and not line.startswith("#") and len(top) < 25:
            top.append("    " + line.strip())
    lines = [f"perf profile of {server.name} (pids {pids}), {seconds} s of {mode}:",
             "  self time by owner: " + ", ".join(f"{k} {v:.1f}%"
                                                  for k, v in by_class.most_common())]
    return "\n".join(lines + ["  top symbols (self %, shared object, symbol):"] + top)


def main() -> int:
    """Run the benchmark (module docstring); 0 when every run completed without errors."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", default="8s", help="each measured wrk run (default 8s)")
    ap.add_argument("--warmup", default="2s", help="wrk warm-up before each run (default 2s)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="keep-alive-1k,keep-alive-64k,handshakes",
                    help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--perf", type=int, default=0, metavar="SECONDS",
                    help="then profile each proxy with perf for SECONDS (0: no profile)")
    ap.add_argument("--perf-modes", default="keep-alive-1k",
                    help="the loads to profile under, comma-separated (default keep-alive-1k)")
    ap.add_argument("--floor", action="store_true",
                    help="also measure tls_floor.py: uvloop TLS with gwcore's context, "
                         "answering every request itself (no proxying)")
    ap.add_argument("--perf-dir", type=Path, default=None,
                    help="keep the perf data and reports here (default: discarded)")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    perf_modes = [m for m in args.perf_modes.split(",") if m]
    unknown = [m for m in modes + perf_modes if m not in MODES]
    if unknown:
        ap.error(f"unknown mode(s) {', '.join(unknown)}")
    tools = run.ensure_tools(want_haproxy=False, install=False)
    layout = run.layout_for(1)
    servers = []
    load_start = run.load_average()
    print(f"load average at start: {load_start}", flush=True)
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

            def floor_argv(d: Path, text: str) -> list[str]:
                return [sys.executable, str(HERE / "tls_floor.py"), *text.split()]

            proxies = {}
            chosen = [("gwcore", GWCORE_TLS, gwcore_argv),
                      ("nginx", NGINX_TLS.replace("@LOCATION@", NGINX_LOCATION), nginx_argv)]
            if args.floor:
                chosen.append(("floor", FLOOR_ARGS, floor_argv))
            for name, text, argv_for in chosen:
                d = tmp / name
                d.mkdir()
                proxies[name] = start(name, d, text, values, argv_for, layout.proxy_cpus)
                servers.append(proxies[name])
            results: dict[tuple[str, str], list[tuple[float, float]]] = {}
            errors = 0
            for r in range(args.rounds):
                for mode in modes:
                    for name, server in proxies.items():
                        wrk(server, args.warmup, mode, layout.wrk_cpus)
                        rps, err, us, shares = measured(server, origin, args.duration, mode,
                                                        layout.wrk_cpus)
                        errors += err
                        results.setdefault((name, mode), []).append((rps, us))
                        cores = " / ".join(f"{shares.get(k, 0.0):.2f}"
                                           for k in ("proxy", "origin", "wrk", "rest"))
                        print(f"round {r + 1} {mode:14} {name:6} {rps:10.0f}/s errors {err}"
                              f"  proxy CPU {us:6.1f} µs/req  cores proxy/origin/wrk/rest "
                              f"{cores}", flush=True)
            print(f"\nTLS 1.3, ECDSA P-256, wrk -t1 -c64, {args.rounds} rounds of "
                  f"{args.duration}; {layout.describe()}; errors {errors}")
            for mode in modes if args.rounds > 0 else ():
                g = statistics.median(x[0] for x in results[("gwcore", mode)])
                n = statistics.median(x[0] for x in results[("nginx", mode)])
                gu = statistics.median(x[1] for x in results[("gwcore", mode)])
                nu = statistics.median(x[1] for x in results[("nginx", mode)])
                unit = "handshakes/s" if mode == "handshakes" else "req/s"
                per_round = ", ".join(f"{a[0] / b[0]:.2f}" for a, b in
                                      zip(results[("gwcore", mode)], results[("nginx", mode)])
                                      if b[0])
                print(f"{mode:14}  gwcore {g:9.0f} {unit}  nginx {n:9.0f} {unit}  "
                      f"ratio {g / n:.2f} (per round {per_round})  "
                      f"CPU µs/req gwcore {gu:.1f} nginx {nu:.1f}")
                if args.floor:
                    f = statistics.median(x[0] for x in results[("floor", mode)])
                    fu = statistics.median(x[1] for x in results[("floor", mode)])
                    print(f"{'':14}  floor (uvloop TLS, answers itself) {f:9.0f} {unit}  "
                          f"CPU µs/req {fu:.1f}")
            if args.perf > 0:
                out_dir = args.perf_dir or tmp / "perf"
                out_dir.mkdir(parents=True, exist_ok=True)
                for mode in perf_modes:
                    for server in proxies.values():
                        print("\n" + profile(server, args.perf, layout.wrk_cpus, out_dir,
                                              mode), flush=True)
        finally:
            for server in reversed(servers):
                run.stop(server)
    print(f"load average at start: {load_start}; at end: {run.load_average()}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
