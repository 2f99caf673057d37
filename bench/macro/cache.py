#!/usr/bin/env python3
"""gwcore's edge cache against NGINX proxy_cache under wrk: cache hits only, one worker each.

The proxies sit in front of the same origin NGINX, which sends `Cache-Control: max-age=60` with
both bodies (1 KiB `return 200`, 64 KiB static file), so each proxy stores them:

    gwcore   `workers: 1`, its one route with `cache: {}` (RFC 9111 shared cache; a hit carries
             `X-Cache: HIT`), top-level `cache: {max_bytes: 256MiB, max_object_bytes: 64MiB,
             policy: s3fifo}`
    NGINX    nginx_cache.conf.tmpl: 1 worker, `proxy_cache_path` in a directory on tmpfs
             (/dev/shm; checked), `proxy_cache_valid 200 1m`, `add_header X-Cache-Status
             $upstream_cache_status`, sendfile on; the same upstream keep-alive and 16 KiB
             buffers as run.py's NGINX
    nginx-ofc the same NGINX plus `open_file_cache max=1000 inactive=60s` (a tuning beyond the
             issue's configuration: a hit then reuses the cache file's open descriptor
             instead of open/fstat/close; NGINX checks that the file was not replaced)

The layout is run.py's one-worker layout: the origin and wrk on CPU 0, the proxy under test alone
on CPU 1. Before measuring, each proxy must answer every size, after a warm-up request, with the
origin's exact body and its HIT mark, several times in a row. While measuring, the origin logs
every request it gets: a request for /1k or /64k reaching it during a proxy's runs is a miss (an
entry expires 60 s after it was stored, so a run spanning that moment refreshes it); their
counts are reported next to the req/s. Rounds alternate mirrored (A B C, C B A,
...), each run after a warm-up; the tables give medians and gwcore's req/s over NGINX's with the
issue's targets (≥ 1.2× at 1 KiB, ≥ 1.0× at 64 KiB), which are reported, never asserted; the
targets are the issue's, for its NGINX configuration, and are shown for nginx-ofc as well.

    .venv/bin/python bench/macro/cache.py                       # 5 rounds of 10 s, 1k and 64k
    .venv/bin/python bench/macro/cache.py --duration 2s --warmup 1s --rounds 1   # smoke
    .venv/bin/python bench/macro/cache.py --write-results       # its section of bench/RESULTS.md
    .venv/bin/python bench/macro/cache.py --proxies gwcore,nginx  # without nginx-ofc

Exit status as run.py: 0 all measured cleanly, 1 a proxy skipped or a run flagged, 2 setup
failed (a proxy that does not serve hits included), 130 interrupted. See bench/macro/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import run as macro
from routes import ratio_text
from run import BenchError, Results, Server, Summary, Variant

GWCORE = Variant("gwcore", 1)
NGINX = Variant("nginx", 1)
NGINX_OFC = Variant("nginx-ofc", 1)
VARIANTS = {v.proxy: v for v in (GWCORE, NGINX, NGINX_OFC)}
LABELS = {GWCORE: "gwcore (`cache: {}`)", NGINX: "NGINX (`proxy_cache`)",
          NGINX_OFC: "NGINX (`proxy_cache` + `open_file_cache`)"}
HIT_FIELDS = {GWCORE: "X-Cache", NGINX: "X-Cache-Status", NGINX_OFC: "X-Cache-Status"}
OPEN_FILE_CACHE = "open_file_cache max=1000 inactive=60s;"
# the targets, gwcore's cache hits req/s over NGINX proxy_cache's, by size
TARGETS = {"1k": 1.2, "64k": 1.0}
MAX_AGE = 60
HIT_CHECKS = 3              # requests in a row that must be hits, per proxy and size

GWCORE_ROUTE = "    cache: {}\n"
GWCORE_TOP = "cache: {max_bytes: 256MiB, max_object_bytes: 64MiB, policy: s3fifo}\n"
# the origin's server block: freshness for both proxies, and a log of what reaches it
ORIGIN_OPTS = (f'        add_header Cache-Control "max-age={MAX_AGE}";\n'
               f"        access_log access.log;\n")
SHM = Path("/dev/shm")


# --------------------------------------------------------------------------------------------
# Setup


def mount_type(path: Path) -> str:
    """The file system type of the mount holding path (/proc/mounts), '?' if unknown."""
    path = path.resolve()
    best, fstype = -1, "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return fstype
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if path.is_relative_to(point) and len(point.parts) > best:
            best, fstype = len(point.parts), fields[2]
    return fstype


@contextmanager
def tmpfs_dir() -> Iterator[Path]:
    """A new directory under /dev/shm (must be tmpfs), removed on exit; NGINX's cache
    directory is made inside it by NGINX (owned by its worker user)."""
    if not SHM.is_dir() or mount_type(SHM) != "tmpfs":
        raise BenchError(f"{SHM} is not a tmpfs mount ({mount_type(SHM)}): NGINX's cache "
                         f"must be in memory like gwcore's")
    d = Path(tempfile.mkdtemp(prefix="gwcore-bench-cache-", dir=SHM))
    d.chmod(0o755)          # NGINX workers started by root run as nobody
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_nginx_cache(tools: dict[str, str | None], cache_dir: Path, http_opts: str = ""
                      ) -> macro.Builder:
    def build(d: Path, port: int, origin_port: int, workers: int) -> list[str]:
        macro.render("nginx_cache.conf.tmpl", d / "nginx.conf",
                     {"PORT": str(port), "ORIGIN_PORT": str(origin_port),
                      "WORKERS": str(workers), "LISTEN_OPTS": macro.nginx_listen_opts(workers),
                      "CACHE_DIR": str(cache_dir), "HTTP_OPTS": http_opts})
        return macro.nginx_argv(str(tools["nginx"]), d)
    return build


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes] | str:
    """(status, fields, body) of GET path, or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {path}: {type(exc).__name__}: {exc}"
    finally:
        conn.close()


def origin_problem(origin: Server, sizes: list[str]) -> str | None:
    """None if the origin sends each body with `Cache-Control: max-age=60`."""
    for size in sizes:
        answer = get(origin.port, f"/{size}")
        if isinstance(answer, str):
            return answer
        cc = answer[1].get("Cache-Control")
        if cc != f"max-age={MAX_AGE}":
            return f"origin GET /{size}: Cache-Control {cc!r}, not max-age={MAX_AGE}"
    return None


def hit_problem(variant: Variant, server: Server, sizes: list[str]) -> str | None:
    """None if, after a warm-up request, HIT_CHECKS requests in a row for each size are hits
    (the proxy's HIT mark) with the origin's body byte for byte."""
    field = HIT_FIELDS[variant]
    for size in sizes:
        path = f"/{size}"
        get(server.port, path)              # warm-up (a miss if wait_ready's did not store)
        for i in range(HIT_CHECKS):
            answer = get(server.port, path)
            if isinstance(answer, str):
                return answer
            status, fields, body = answer
            mark = fields.get(field)
            if status != 200 or mark != "HIT":
                return (f"GET {path} (request {i + 1} after the warm-up): status {status}, "
                        f"{field}: {mark!r}; expected 200 and HIT")
            if body != macro.BODIES[size]:
                return (f"GET {path}: body of {len(body)} bytes differs from the origin's "
                        f"{len(macro.BODIES[size])}")
    return None


class OriginLog:
    """Counts the requests for a body the origin logged (access.log in its directory)."""

    def __init__(self, origin_dir: Path) -> None:
        self.path = origin_dir / "access.log"

    def count(self, size: str) -> int:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        return text.count(f'"GET /{size} '.encode())


# --------------------------------------------------------------------------------------------
# Report


def cache_table(misses: dict[tuple[Variant, str], list[int]]
                ) -> Callable[[str, list[Summary], macro.Layout], str]:
    """run.report's table function: the summary table, gwcore / NGINX with the target, and
    the requests that reached the origin."""
    def table(size: str, summaries: list[Summary], _layout: macro.Layout) -> str:
        lines = macro.summary_table(["proxy"], [([LABELS[s.variant]], s) for s in summaries])
        by = {s.variant: s for s in summaries}
        notes = []
        gw = by.get(GWCORE)
        for peer, what in ((NGINX, "NGINX proxy_cache (the issue's configuration)"),
                           (NGINX_OFC, "NGINX proxy_cache + open_file_cache")):
            other = by.get(peer)
            text = ratio_text(gw, other, TARGETS[size]) if gw and other else None
            if text:
                notes.append(f"gwcore / {what}, cache hits: {text}")
        cells = []
        for s in summaries:
            counts = misses.get((s.variant, size), [])
            cells.append(f"{LABELS[s.variant]} {sum(counts)} "
                         f"(per round: {', '.join(map(str, counts))})")
        if cells:
            notes.append("Requests for this body that reached the origin during the runs "
                         "(warm-ups included; misses, e.g. when an entry's 60 s ran out): "
                         + "; ".join(cells))
        out = f"**{macro.SIZE_TITLES[size]}, cache hits**\n\n" + "\n".join(lines) + "\n"
        if notes:
            out += "\n" + "  \n".join(notes) + "\n"
        return out
    return table


def setup_text(variants: list[Variant]) -> str:
    ofc = (f"; NGINX + open_file_cache: the same with `{OPEN_FILE_CACHE}` (a tuning beyond the "
           f"issue's configuration)" if NGINX_OFC in variants else "")
    return (
        f"The origin adds `Cache-Control: max-age={MAX_AGE}` to both bodies (and logs the "
        f"requests it gets, to count misses). Proxies: gwcore (`workers: 1`, its one route "
        f"with `cache: {{}}`, top-level `{GWCORE_TOP.strip()}`); NGINX (1 worker, "
        f"`proxy_cache_path` on tmpfs (/dev/shm) `levels=1:2 keys_zone=gw:10m max_size=256m`, "
        f"`proxy_cache_valid 200 1m`, `add_header X-Cache-Status $upstream_cache_status`, "
        f"sendfile on, upstream keepalive 64, 16 KiB proxy buffers){ofc}. Before measuring, "
        f"each proxy answered each size, after a warm-up request, {HIT_CHECKS} times in a row "
        f"with HIT (`X-Cache` / `X-Cache-Status`) and the origin's exact body. Rounds "
        f"alternate mirrored (A B C, C B A). Targets (the issue's, reported not asserted): "
        f"gwcore ≥ 1.2× NGINX proxy_cache at 1 KiB, ≥ 1.0× at 64 KiB.")


# --------------------------------------------------------------------------------------------
# Main


def benchmark(args: argparse.Namespace) -> int:
    layout, tools, machine, started, load_start = macro.begin_gwcore_bench(
        not args.no_install)
    variants = [VARIANTS[p] for p in args.proxy_list]
    skipped: dict[str, str] = {}
    misses: dict[tuple[Variant, str], list[int]] = {}

    with tmpfs_dir() as shm, macro.bench_dir(args.keep_temp) as (tmp, servers):
        origin = macro.start_origin(tmp, tools, layout, server_opts=ORIGIN_OPTS)
        servers.append(origin)
        print(f"origin: ready on 127.0.0.1:{origin.port} (pid {origin.proc.pid})", flush=True)
        problem = origin_problem(origin, args.size_list)
        if problem:
            raise BenchError(problem)
        builders = {
            GWCORE: macro.build_gwcore(pin_cpus=True, route_opts=GWCORE_ROUTE,
                                       top_opts=GWCORE_TOP),
            NGINX: build_nginx_cache(tools, shm / NGINX.key),
            NGINX_OFC: build_nginx_cache(tools, shm / NGINX_OFC.key,
                                         f"    {OPEN_FILE_CACHE}"),
        }
        proxies: dict[Variant, Server] = {}
        for variant in variants:
            server = macro.start_proxy(variant, builders[variant], tmp, origin.port, layout)
            if server is None:
                raise BenchError(f"{variant.key} did not start (see above)")
            servers.append(server)
            problem = hit_problem(variant, server, args.size_list)
            if problem:
                raise BenchError(f"{variant.key} does not serve cache hits: {problem}")
            print(f"{variant.key}: every check request a HIT with the origin's body", flush=True)
            proxies[variant] = server

        log = OriginLog(Path(origin.log).parent)

        def measure_counting(wrk: str, variant: Variant, server: Server, origin: Server,
                             size: str, rnd: int, args: argparse.Namespace,
                             layout: macro.Layout, results: Results, warmups: Results) -> None:
            before = log.count(size)
            macro.measure(wrk, variant, server, origin, size, rnd, args, layout, results,
                          warmups)
            n = log.count(size) - before
            misses.setdefault((variant, size), []).append(n)
            if n:
                print(f"round {rnd} {size:>3} {variant.key:<15} {n} request(s) reached the "
                      f"origin (warm-up included)", flush=True)

        results, warmups = macro.measure_rounds(str(tools["wrk"]), origin, proxies, args,
                                                layout, skipped, mirror=True,
                                                measure_one=measure_counting)

    tables = macro.report(results, warmups, variants, args.size_list, layout,
                          cache_table(misses))
    script = "bench/macro/cache.py"
    return macro.conclude(
        args, results, tables, skipped, "bench/macro cache",
        lambda: macro.results_section(
            args, layout, machine, tables, skipped, (load_start, macro.load_average()),
            started, script=script,
            title="edge cache hits, gwcore `cache: {}` vs NGINX `proxy_cache`, workers=1",
            setup=setup_text(variants)),
        script)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    macro.add_common_args(ap, rounds=5)
    ap.add_argument("--proxies", default=",".join(VARIANTS),
                    help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    args = ap.parse_args(argv)
    macro.check_common_args(ap, args, argv)
    args.proxy_list = [p.strip() for p in args.proxies.split(",") if p.strip()]
    for p in args.proxy_list:
        if p not in VARIANTS:
            ap.error(f"--proxies: unknown proxy {p!r} ({', '.join(VARIANTS)})")
    return args


def main(argv: list[str]) -> int:
    return macro.guarded(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
