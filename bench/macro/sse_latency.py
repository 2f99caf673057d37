"""Streamed-response latency (inference issue, item 6): the time from an upstream write of a
server-sent event to the client's read of it through gwcore, against the same stream read
straight from the origin.

The origin is tests/integration/sse_origin.py: ``--streams`` concurrent event streams (chunked
``text/event-stream``), one event every ``--gap-ms`` per stream, each event's ``data:`` the
origin's ``time.monotonic_ns()`` read just before its write (CLOCK_MONOTONIC is system-wide on
Linux, so this process can subtract it). The client is this process, one thread, one epoll
over all streams: a read is stamped with ``time.monotonic_ns()`` as soon as ``recv`` returns,
and every event in it gets latency = read stamp − write stamp. Direct and through-gwcore runs
alternate (``--rounds``), after a warm-up stream each. gwcore runs with 1 worker, unpinned,
as does the origin (uvloop); nothing is pinned. Usage, from the repository root:

    .venv/bin/python bench/macro/sse_latency.py                  # 20,000 events per path
    .venv/bin/python bench/macro/sse_latency.py --events 5000 --rounds 1
    .venv/bin/python bench/macro/sse_latency.py --write-results  # update bench/RESULTS.md

Target: p99 ≤ 1 ms through gwcore on loopback. Every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # bench/macro/run.py: free_port, spawn, stop, results file, load average

ORIGIN = run.REPO / "tests" / "integration" / "sse_origin.py"
EVENT = re.compile(rb"data: (\d+)\n\n")
TARGET = 1_000_000          # the p99 target, nanoseconds

GWCORE = """workers: 1
pin_cpus: false
listeners:
  - name: bench
    address: 127.0.0.1:@PORT@
""" + run.GWCORE_TO_ORIGIN


def start_origin(d: Path) -> run.Server:
    """The SSE origin, once it printed ``READY <port>``."""
    log = d / "sse_origin.log"
    proc = subprocess.Popen([sys.executable, str(ORIGIN), "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=log.open("wb"), start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"READY "):
        proc.kill()
        raise run.BenchError(f"sse origin did not start: {line!r}\n{run.tail_file(log)}")
    return run.Server("sse-origin", int(line.split()[1]), proc, log)


def start_gwcore(d: Path, origin_port: int) -> run.Server:
    """gwcore (1 worker) in front of the origin, once a stream passes through it."""
    port = run.free_port()
    cfg = d / "gwcore.yaml"
    cfg.write_text(GWCORE.replace("@PORT@", str(port)).replace("@ORIGIN_PORT@",
                                                                 str(origin_port)))
    server = run.spawn("gwcore", [sys.executable, "-m", "gwcore", "serve", "--config",
                                  str(cfg)], None, d / "gwcore.log", port)
    deadline = time.monotonic() + run.START_TIMEOUT_S
    while True:
        try:
            measure(port, 1, 3, 1.0, "ready")
            return server
        except OSError as exc:
            if server.exited() or time.monotonic() > deadline:
                run.stop(server)
                raise run.BenchError(f"gwcore did not serve: {exc}\n{server.log_tail()}") \
                    from exc
            time.sleep(0.1)


def measure(port: int, streams: int, per_stream: int, gap_ms: float, tag: str,
            timeout_s: float = 120.0) -> list[int]:
    """``streams`` concurrent streams of ``per_stream`` events from 127.0.0.1:port; returns
    every event's latency in nanoseconds (read stamp − write stamp)."""
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, list] = {}       # sock -> [buffer, head seen, events]
    t0 = time.monotonic_ns()
    for i in range(streams):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"GET /stream?id={tag}-{t0}-{i}&framing=chunked&kind=sse&pace=auto"
                  f"&count={per_stream}&gap={gap_ms / 1000}&stamp=1 HTTP/1.1\r\n"
                  f"Host: bench.test\r\n\r\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        state[s] = [b"", False, 0]
    out: list[int] = []
    open_streams = streams
    deadline = time.monotonic() + timeout_s
    try:
        while open_streams:
            if time.monotonic() > deadline:
                raise OSError(f"streams not done after {timeout_s}s")
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                data = s.recv(65536)
                now = time.monotonic_ns()
                if not data:
                    raise OSError("a stream ended early")
                st = state[s]
                buf = st[0] + data
                if not st[1]:
                    if b"\r\n\r\n" not in buf:
                        st[0] = buf
                        continue
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise OSError(f"unexpected answer: {head[:100]!r}")
                    st[1] = True
                end = 0
                for m in EVENT.finditer(buf):
                    out.append(now - int(m.group(1)))
                    end = m.end()
                    st[2] += 1
                st[0] = buf[end:]
                if st[2] == per_stream:
                    sel.unregister(s)
                    s.close()
                    open_streams -= 1
    finally:
        for s in list(state):
            if s.fileno() >= 0:
                s.close()
        sel.close()
    return out


def schedstat(pids: list[int]) -> tuple[int, int, int]:
    """(nanoseconds on a CPU, nanoseconds runnable but waiting for a CPU, timeslices run)
    summed over pids, from /proc/PID/schedstat: the wait is how much the machine's other load
    delayed these processes."""
    cpu = wait = slices = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/schedstat") as f:
                c, w, n = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        cpu, wait, slices = cpu + c, wait + w, slices + n
    return cpu, wait, slices


def pct(values: list[int], p: float) -> float:
    """The p-th percentile (nearest rank) of values, nanoseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def row(name: str, lat: list[int]) -> str:
    us = 1000.0
    return (f"| {name} | {len(lat):,} | {pct(lat, 50) / us:.0f} µs | {pct(lat, 99) / us:.0f} µs"
            f" | {pct(lat, 99.9) / us:.0f} µs | {max(lat) / us:.0f} µs |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events per path, all rounds")
    ap.add_argument("--streams", type=int, default=8, help="concurrent streams")
    ap.add_argument("--gap-ms", type=float, default=2.0, help="ms between a stream's events")
    ap.add_argument("--rounds", type=int, default=2, help="direct/gwcore alternations")
    ap.add_argument("--write-results", action="store_true",
                    help=f"write the table into {run.RESULTS_FILE.relative_to(run.REPO)}")
    ap.add_argument("--note", default="", help="a remark for RESULTS.md")
    args = ap.parse_args()
    per_stream = max(1, args.events // (args.streams * args.rounds))
    servers: list[run.Server] = []
    lat: dict[str, list[int]] = {"direct": [], "gwcore": []}
    queued: dict[str, list[int]] = {"direct": [0, 0], "gwcore": [0, 0]}
    gw_cpu = 0                  # ns on a CPU of the gwcore processes in the measured rounds
    load_before = run.load_average()
    started = time.monotonic()
    with run.terminate_on_signals(), tempfile.TemporaryDirectory(prefix="gwcore-sse-") as tmp:
        try:
            origin = start_origin(Path(tmp))
            servers.append(origin)
            gw = start_gwcore(Path(tmp), origin.port)
            servers.append(gw)
            ports = {"direct": origin.port, "gwcore": gw.port}
            for name, port in ports.items():        # warm-up, discarded
                measure(port, args.streams, 100, args.gap_ms, f"warm-{name}")
            for r in range(args.rounds):
                for name, port in ports.items():
                    # both started with start_new_session: a process group each
                    pids = [os.getpid(), *run.group_pids(origin.proc.pid),
                            *([] if name == "direct" else run.group_pids(gw.proc.pid))]
                    gw_pids = run.group_pids(gw.proc.pid)
                    _, w0, n0 = schedstat(pids)
                    c0 = schedstat(gw_pids)[0]
                    got = measure(port, args.streams, per_stream, args.gap_ms, f"{name}{r}")
                    _, w1, n1 = schedstat(pids)
                    queued[name][0] += w1 - w0
                    queued[name][1] += n1 - n0
                    if name == "gwcore":
                        gw_cpu += schedstat(gw_pids)[0] - c0
                    lat[name] += got
                    print(f"round {r + 1} {name:6} {len(got):6} events  p50 "
                          f"{pct(got, 50) / 1e3:7.0f} µs  p99 {pct(got, 99) / 1e3:7.0f} µs  "
                          f"max {max(got) / 1e3:7.0f} µs", flush=True)
        finally:
            for server in reversed(servers):
                run.stop(server)
    load_after = run.load_average()
    seconds = time.monotonic() - started
    p99 = pct(lat["gwcore"], 99)
    extra = [statistics.median(lat["gwcore"]) - statistics.median(lat["direct"])]
    table = [
        "| path | events | p50 | p99 | p99.9 | max |",
        "|---|---:|---:|---:|---:|---:|",
        row("origin → client (direct)", lat["direct"]),
        row("origin → gwcore → client", lat["gwcore"]),
    ]
    verdict = (f"p99 through gwcore {p99 / 1e3:.0f} µs: target ≤ 1 ms "
               f"{'met' if p99 <= TARGET else 'NOT met'}; gwcore adds {extra[0] / 1e3:.0f} µs "
               f"at the median")
    waits = {name: q[0] / max(1, q[1]) / 1e3 for name, q in queued.items()}
    contention = (f"Run-queue wait (/proc/PID/schedstat) of the processes on the path during "
                  f"the measured rounds, per timeslice: {waits['direct']:.0f} µs direct (client, "
                  f"origin), {waits['gwcore']:.0f} µs through gwcore (client, origin, gwcore); "
                  f"gwcore's CPU time per event {gw_cpu / max(1, len(lat['gwcore'])) / 1e3:.0f} "
                  f"µs")
    print("\n".join(["", *table, "", verdict, contention]))
    cpu = run.command_output(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"]) or "?"
    commit = run.command_output(["git", "-C", str(run.REPO), "rev-parse", "--short", "HEAD"])
    note = f"- Note: {args.note}\n" if args.note else ""
    when = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    section = (
        "## Streamed responses: SSE event latency, upstream write → client read "
        "(bench/macro/sse_latency.py)\n\n"
        f"- Date: {when}; commit {commit}; {seconds:.0f} s\n"
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}; load average (1, 5, 15 min) {load_before} before, "
        f"{load_after} after\n"
        f"- Load: {args.streams} concurrent chunked `text/event-stream` streams, one event "
        f"every {args.gap_ms:g} ms per stream (asyncio timer), {args.rounds} rounds "
        f"alternating direct and through gwcore; gwcore 1 worker, origin and client 1 process "
        f"each, nothing pinned\n"
        "- Latency: the client's `time.monotonic_ns()` after `recv` returned minus the "
        "origin's just before its write (the event's `data:`)\n"
        f"- {contention}\n"
        f"{note}\n" + "\n".join(table) + f"\n\n{verdict}.\n")
    if args.write_results:
        run.update_results_file(run.RESULTS_FILE, "bench/macro sse_latency", section,
                                "bench/macro/sse_latency.py")
        print(f"written to {run.RESULTS_FILE}")
    return 0 if p99 <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
