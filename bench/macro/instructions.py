#!/usr/bin/env python3
"""Instructions per proxied request, counted by valgrind's callgrind: a cost figure that a
shared, noisy machine does not change (req/s and CPU time there move by 10-50% run to run).

For each variant, a gwcore (`workers: 1`, the master and worker under callgrind) proxies
sequential keep-alive GETs of /hello to tests/integration/origin.py; after a warm-up the
counters are zeroed, N requests are sent and the counters dumped. Printed per request:
every instruction the worker ran (loop, timer ticks and threads included: varies by a few
percent with wall time) and the request path alone — the downstream ``data_received``
(parse, exchange, trace context, routing, upstream head, send) plus ``_finish`` (the end:
on_log, span export) — which repeats to within a few instructions.

    python bench/macro/instructions.py                       # every variant, this tree
    python bench/macro/instructions.py --root /tmp/parent plain plain_fields   # another tree
    python bench/macro/instructions.py --requests 5000 trace_new

Variants: plain (no tracing); plain_fields (no tracing, requests carry a traceparent and a
tracestate, forwarded untouched); trace_new (`tracing: {sample_ratio: 0}`, no traceparent:
a new unsampled trace per request); trace_continue (the same with a valid unsampled
traceparent and a tracestate: continued); otlp_1pct / otlp_all (sample_ratio 0.01 / 1 with
`otlp` exporting to the origin, which answers 404: the export work is done all the same);
metrics (an admin listener: every request recorded in shared memory), access_log (a JSON
access log to a temporary file), metrics_log (both); rate_limited (a local source_ip limit
never reached, checked by the session in C).
Needs valgrind (`callgrind_control`, `callgrind_annotate`).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("plain", "plain_fields", "trace_new", "trace_continue", "otlp_1pct", "otlp_all",
            "metrics", "access_log", "metrics_log", "rate_limited")
TRACE_FIELDS = ("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n"
                "tracestate: congo=t61rcWkgMzE\r\n")


def config(variant: str, port: int, origin_port: int) -> str:
    cfg = (f"workers: 1\npin_cpus: false\n"
           f"listeners: [{{name: p, address: \"127.0.0.1:{port}\"}}]\n"
           f"clusters: [{{name: o, endpoints: [\"127.0.0.1:{origin_port}\"]}}]\n"
           f"routes: [{{match: {{path_prefix: /}}, cluster: o}}]\n")
    if variant in ("trace_new", "trace_continue"):
        cfg += "tracing: {sample_ratio: 0.0}\n"
    if variant in ("metrics", "metrics_log"):
        cfg += f"admin: {{address: \"127.0.0.1:{free_port()}\"}}\n"
    if variant in ("access_log", "metrics_log"):
        log = os.path.join(tempfile.gettempdir(), f"gwcore-instr-{os.getpid()}-{port}.log")
        cfg += f"access_log: {{path: \"{log}\", format: json}}\n"
    if variant == "rate_limited":        # a local limit so high it is never reached
        cfg = cfg.replace("cluster: o}]", "cluster: o, rate_limit: [bench]}]")
        cfg += "rate_limits: {bench: {key: source_ip, rate: 100000000/s}}\n"
    if variant.startswith("otlp"):
        ratio = "1.0" if variant == "otlp_all" else "0.01"
        cfg += (f"tracing:\n  sample_ratio: {ratio}\n  otlp: {{endpoint: "
                f"\"http://127.0.0.1:{origin_port}/v1/traces\"}}\n")
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(conn: socket.socket, request: bytes) -> None:
    conn.sendall(request)
    data = b""
    while True:
        piece = conn.recv(65536)
        if not piece:
            raise RuntimeError("the gateway closed the connection")
        data += piece
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            if len(body) >= length:
                return


def inclusive(annotation: str, function: str) -> int:
    m = re.search(r"^\s*([\d,]+) \([ \d.]+%\)  \S*" + re.escape(function) + r" \[",
                  annotation, re.MULTILINE)
    return int(m.group(1).replace(",", "")) if m else 0


def measure(root: Path, variant: str, requests: int, work: Path) -> str:
    d = work / variant
    d.mkdir()
    log = open(d / "log", "w")      # noqa: SIM115 (the gateway's stderr while it runs)
    origin = subprocess.Popen([sys.executable, str(REPO / "tests/integration/origin.py"),
                               "--port", "0"], stdout=subprocess.PIPE)
    gw = None
    try:
        origin_port = int(origin.stdout.readline().split()[1])
        port = free_port()
        (d / "gw.yaml").write_text(config(variant, port, origin_port))
        gw = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             f"--callgrind-out-file={d}/cg.%p", sys.executable, "-m", "gwcore", "serve",
             "--config", str(d / "gw.yaml")],
            cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), stdout=subprocess.DEVNULL,
            stderr=log, start_new_session=True)
        deadline = time.monotonic() + 600
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline or gw.poll() is not None:
                    raise RuntimeError(f"gwcore did not start: {(d / 'log').read_text()}")
                time.sleep(0.5)
        fields = TRACE_FIELDS if variant in ("plain_fields", "trace_continue") else ""
        request = f"GET /hello HTTP/1.1\r\nHost: gw.test\r\n{fields}\r\n".encode()
        for _ in range(300):                    # warm-up: imports, free lists, the pool
            get(conn, request)
        pids = subprocess.run(["pgrep", "-s", str(gw.pid)], capture_output=True, text=True,
                              check=False).stdout.split()
        subprocess.run(["callgrind_control", "-z", *pids], capture_output=True, check=True)
        for _ in range(requests):
            get(conn, request)
        time.sleep(1)                           # the export thread's batch, if any
        subprocess.run(["callgrind_control", "-d", *pids], capture_output=True, check=True)
        conn.close()
    finally:
        if gw is not None:
            os.killpg(gw.pid, signal.SIGKILL)
        origin.kill()
        log.close()
    dump = max(glob.glob(f"{d}/cg.*.*"), key=os.path.getsize)     # the worker's
    summary = re.search(r"^summary: (\d+)", Path(dump).read_text(), re.MULTILINE)
    total = int(summary.group(1))
    annotation = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump],
                                capture_output=True, text=True, check=True).stdout
    path = (inclusive(annotation, "Http1Connection_13data_received")
            + inclusive(annotation, "Downstream__finish"))
    return (f"{variant:15} {total / requests:10,.0f} per request in all, "
            f"{path / requests:9,.0f} on the request path")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", metavar="VARIANT",
                    help=f"some of {', '.join(VARIANTS)} (default: all)")
    ap.add_argument("--root", type=Path, default=REPO, help="the gwcore tree to run (built)")
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args(argv)
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r} ({', '.join(VARIANTS)})")
    print(f"instructions per request, {args.requests} requests, gwcore from {args.root}")
    with tempfile.TemporaryDirectory(prefix="gwcore-callgrind-") as tmp:
        for variant in args.variants or VARIANTS:
            print(measure(args.root.resolve(), variant, args.requests, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
