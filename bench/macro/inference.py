#!/usr/bin/env python3
"""gwcore model routes under wrk (issue 15, the inference gateway): what reading the model
from a JSON body, and mirroring every request to a candidate cluster, cost per request.

Each variant is a gwcore process (1 worker; pinned to CPU 1, wrk and the NGINX origin on CPU 0,
as bench/macro/run.py does) whose route `path_prefix: /v1/` differs; wrk POSTs the same
~1 KiB OpenAI-style chat body (`{"model": "ranker", "messages": [...]}`, Content-Type
application/json) to /v1/chat/completions, where the origin answers 200 with run.py's 1 KiB
body:

    post_plain         `cluster: origin`: the same POST proxied without body inspection
    model              `model_from: {json_field: model}`; model `ranker`, one version `v1` on
                       the origin cluster: the body is buffered, its `model` field read
                       (msgspec), the version picked and sent in X-Model-Version
    model_mirror       the same model with `mirror: {cluster: candidate, percent: 100,
                       max_in_flight: 1024}`: a fire-and-forget copy of every request to the
                       origin NGINX's second server block (another port, same machine/CPU 0)
    model_mirror_down  the same, the candidate a port nothing listens on (connections refused)

The origin logs the POSTs it gets on each port (buffered access logs), so the copies the
candidate received during the model_mirror runs are counted next to the primary requests:
their difference is the number of copies dropped (max_in_flight or circuit breaker) or lost.
gwcore itself exposes no mirror counter yet (gwcore.inference._mirror.Mirror.dropped is not
in its metrics).

Before measuring, each variant must answer a POST with 200 and the origin's body, with
X-Model-Version: v1 exactly on the model variants, and a mirrored POST must reach the
candidate. Rounds alternate mirrored (A B C D, D C B A, ...); the table gives medians and each
variant's req/s over post_plain's with the issue's targets (model ≥ 0.90×, model_mirror
≥ 0.90×; no failed client request with the candidate down).

    .venv/bin/python bench/macro/inference.py                          # 3 rounds of 10 s
    .venv/bin/python bench/macro/inference.py --duration 2s --warmup 1s --rounds 1   # smoke
    .venv/bin/python bench/macro/inference.py --write-results --note "..."

Exit status as run.py: 0 all measured cleanly, 1 a variant skipped or a run flagged, 2 setup
failed, 130 interrupted. See bench/macro/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import run as macro
from routes import ratio_text, route_names
from run import BenchError, Results, Server, Spawn, Summary, Variant

VARIANTS = ("post_plain", "model", "model_mirror", "model_mirror_down")
# issue 15: a variant's req/s over post_plain's must be at least this
TARGETS: dict[str, float] = {"model": 0.90, "model_mirror": 0.90}
MIRRORED = ("model_mirror", "model_mirror_down")

PATH = "/v1/chat/completions"
MODEL, VERSION = "ranker", "v1"
VERSION_HEADER = "X-Model-Version"
MIRROR_MAX_IN_FLIGHT = 1024
# seconds the origin's buffered access logs take to reach their files (`flush=1s`), with slack
LOG_FLUSH_S = 1.3
SIZES = ("1k",)     # the response body; the request body is always BODY


def request_body(size: int = 1024) -> bytes:
    """An OpenAI-style chat request naming MODEL, padded to exactly size bytes (JSON)."""
    def body(pad: int) -> bytes:
        return json.dumps({"model": MODEL, "messages": [
            {"role": "system", "content": "You rank search results by relevance."},
            {"role": "user", "content": "Rank: " + "lorem ipsum " * (pad // 12)
             + "x" * (pad % 12)}], "temperature": 0.2, "max_tokens": 64}).encode()
    short = len(body(0))
    return body(max(0, size - short))


BODY = request_body()


@dataclass(frozen=True)
class InferenceVariant(Variant):
    """A route variant (always gwcore with 1 worker)."""

    route: str

    @property
    def key(self) -> str:
        return self.route


def wrk_script(path: Path) -> Path:
    """Write the wrk Lua script that makes every request a POST of BODY to PATH."""
    text = BODY.decode()
    if "]==]" in text:
        raise BenchError("the request body cannot be quoted as a Lua long string")
    path.write_text(
        "-- bench/macro/inference.py: every request a POST of the same JSON body\n"
        'wrk.method = "POST"\n'
        f'wrk.path = "{PATH}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{text}]==]\n")
    return path


def origin_opts(candidate_port: int) -> tuple[str, str]:
    """(directives of the origin's server block, a second server block for its http block):
    both log the POSTs they answer to their own file, buffered (64 KiB, flushed each second);
    the second, on candidate_port, is the mirror's candidate."""
    server = "        access_log primary.log combined buffer=64k flush=1s;\n"
    body = macro.BODIES["1k"].decode()
    second = (
        "    server {\n"
        f"        listen 127.0.0.1:{candidate_port};\n"
        "        access_log candidate.log combined buffer=64k flush=1s;\n"
        f"        location = {PATH} {{\n"
        "            default_type application/json;\n"
        f'            return 200 "{body}";\n'
        "        }\n"
        "    }\n")
    return server, second


class OriginLogs:
    """The POSTs the origin logged: to the primary port and to the candidate's."""

    def __init__(self, origin_dir: Path) -> None:
        self.dir = origin_dir

    def count(self, name: str) -> int:
        """POSTs to PATH in name.log (primary or candidate) so far."""
        try:
            text = (self.dir / f"{name}.log").read_bytes()
        except FileNotFoundError:
            return 0
        return text.count(f'"POST {PATH} '.encode())

    def counts(self) -> tuple[int, int]:
        """(primary, candidate) once the buffered lines written so far reached the files."""
        time.sleep(LOG_FLUSH_S)
        return self.count("primary"), self.count("candidate")


def route_config(route: str) -> tuple[str, str]:
    """(YAML lines of the /v1/ route, the top-level `models:` section) of a variant."""
    if route == "post_plain":
        return "    cluster: origin\n", ""
    mirror = (f"\n    mirror: {{cluster: candidate, percent: 100, "
              f"max_in_flight: {MIRROR_MAX_IN_FLIGHT}}}" if route in MIRRORED else "")
    models = (f"models:\n  {MODEL}:\n"
              f"    versions: [{{name: {VERSION}, cluster: origin}}]{mirror}\n")
    return "    model_from: {json_field: model}\n", models


def post(port: int) -> tuple[int, str | None, bytes] | str:
    """(status, X-Model-Version or None, body) of a POST of BODY to PATH, or what failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", PATH, body=BODY, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader(VERSION_HEADER), resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"POST {PATH}: {type(exc).__name__}: {exc}"
    finally:
        conn.close()


def refuses(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:port is refused (nothing listening)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def serving_problem(route: str, server: Server, logs: OriginLogs) -> str | None:
    """None if the variant routes as it claims: 200 with the origin's body, X-Model-Version:
    v1 on (and only on) the model variants, the copy at the candidate for model_mirror."""
    before = logs.counts()
    answer = post(server.port)
    if isinstance(answer, str):
        return answer
    status, version, body = answer
    if status != 200:
        return f"POST {PATH}: status {status}: {body[:200]!r}"
    if body != macro.BODIES["1k"]:
        return f"POST {PATH}: body of {len(body)} bytes is not the origin's"
    want = None if route == "post_plain" else VERSION
    if version != want:
        return f"POST {PATH}: {VERSION_HEADER} {version!r}, expected {want!r}"
    primary, candidate = logs.counts()
    if primary - before[0] != 1:
        return f"the origin logged {primary - before[0]} POSTs on its port for 1 request"
    copies = candidate - before[1]
    if copies != (1 if route == "model_mirror" else 0):
        return f"the candidate logged {copies} POSTs for 1 request"
    return None


def start_variant(variant: InferenceVariant, tmp: Path, origin: Server, layout: macro.Layout,
                  candidate: dict[str, int], script: Path, logs: OriginLogs
                  ) -> Server | str:
    """The variant's gwcore, started and checked, or why it is not measured."""
    d = tmp / variant.key
    d.mkdir()
    route_opts, top_opts = route_config(variant.route)
    port = candidate["dead" if variant.route == "model_mirror_down" else "live"]
    build = macro.build_gwcore(pin_cpus=True, route_opts=route_opts, top_opts=top_opts,
                               template="gwcore_inference.yaml.tmpl",
                               values={"CANDIDATE_PORT": str(port)})
    server = macro.start_proxy(variant, build, tmp, origin.port, layout,
                               Spawn(wrk_script=script))
    if server is None:
        return "did not start (see the script's output)"
    problem = serving_problem(variant.route, server, logs)
    if problem:
        macro.stop(server)
        print(f"SKIP {variant.key}: {problem}", flush=True)
        return problem
    print(f"{variant.key}: POST {PATH} answered 200 with the origin's body"
          + ("" if variant.route == "post_plain" else f", {VERSION_HEADER}: {VERSION}")
          + (", copy received by the candidate" if variant.route == "model_mirror" else ""),
          flush=True)
    return server


@dataclass
class MirrorCount:
    """What the origin logged during one warm-up + measured run of a variant."""

    sent: int           # requests wrk completed (warm-up and measured run)
    primary: int        # POSTs the origin answered on its port
    candidate: int      # POSTs the candidate answered (the mirrored copies)


def mirror_table(counts: dict[str, list[MirrorCount]]
                 ) -> Callable[[str, list[Summary], macro.Layout], str]:
    """run.report's table function: the summary table, the ratios to post_plain with the
    targets, the failed requests with the candidate down and the mirrored copies counted."""
    def table(size: str, summaries: list[Summary], _layout: macro.Layout) -> str:
        lines = macro.summary_table(["variant"], [([s.variant.key], s) for s in summaries])
        by = {s.variant.key: s for s in summaries}
        plain = by.get("post_plain")
        notes = []
        cells = []
        for route in VARIANTS[1:]:
            other = by.get(route)
            text = ratio_text(other, plain, TARGETS.get(route)) if other and plain else None
            if text:
                cells.append(f"{route} {text}")
        if cells:
            notes.append("req/s over post_plain: " + "; ".join(cells))
        down = by.get("model_mirror_down")
        if down:
            verdict = "met" if down.errors == 0 and not down.flagged_runs else "NOT met"
            notes.append(
                f"model_mirror_down, failed client requests (wrk socket errors "
                f"{macro.socket_error_text(down.socket_errors)}, non-2xx/3xx "
                f"{down.non_2xx_3xx}) in {down.requests:,} requests; target 0: {verdict}")
        mirrored = counts.get("model_mirror", [])
        if mirrored:
            primary = sum(c.primary for c in mirrored)
            copies = sum(c.candidate for c in mirrored)
            rounds = ", ".join(f"{c.primary - c.candidate}" for c in mirrored)
            notes.append(
                f"model_mirror, copies: the origin answered {primary:,} primary POSTs and the "
                f"candidate {copies:,} copies during the runs (warm-ups included; wrk "
                f"completed {sum(c.sent for c in mirrored):,}): **{primary - copies:,} "
                f"dropped or lost** (per round: {rounds}), max_in_flight "
                f"{MIRROR_MAX_IN_FLIGHT}")
        for route in ("post_plain", "model", "model_mirror_down"):
            got = counts.get(route, [])
            if any(c.candidate for c in got):
                notes.append(f"{route}: the candidate logged "
                             f"{sum(c.candidate for c in got)} POSTs (expected none)")
        out = (f"**POST of a {len(BODY)}-byte JSON body, {macro.SIZE_TITLES[size]} "
               f"answered**\n\n" + "\n".join(lines) + "\n")
        if notes:
            out += "\n" + "  \n".join(notes) + "\n"
        return out
    return table


def setup_text() -> str:
    return (
        f"wrk (a Lua script) POSTs the same {len(BODY)}-byte OpenAI-style JSON body "
        f'(`{{"model": "{MODEL}", "messages": [...]}}`, Content-Type application/json) to '
        f"{PATH}; the origin answers it with `return 200` and the 1 KiB body, and logs the "
        f"POSTs it answers (buffered access logs, to count the mirrored copies; all variants "
        f"alike). gwcore, 1 worker, route `path_prefix: /v1/` per variant: post_plain = "
        f"`cluster: origin`; model = `model_from: {{json_field: model}}`, model `{MODEL}` "
        f"with one version `{VERSION}` on the origin cluster; model_mirror = the same with "
        f"`mirror: {{cluster: candidate, percent: 100, max_in_flight: "
        f"{MIRROR_MAX_IN_FLIGHT}}}`, the candidate being a second server block of the origin "
        f"NGINX (another port, also on CPU 0, so the origin answers twice the requests); "
        f"model_mirror_down = the same with the candidate on a port nothing listens on. Each "
        f"variant answered a check POST with 200, the origin's body and "
        f"{VERSION_HEADER}: {VERSION} (model variants only) before it was measured. Rounds "
        f"alternate mirrored (A B C D, D C B A). Targets (issue 15, reported not asserted): "
        f"model ≥ 0.90× post_plain, model_mirror ≥ 0.90×, 0 failed client requests with "
        f"the candidate down.")


def benchmark(args: argparse.Namespace) -> int:
    layout, tools, machine, started, load_start = macro.begin_gwcore_bench(
        not args.no_install)
    variants = [InferenceVariant("gwcore", 1, route) for route in args.route_list]
    skipped: dict[str, str] = {}
    counts: dict[str, list[MirrorCount]] = {}

    with macro.bench_dir(args.keep_temp) as (tmp, servers):
        candidate = {"live": macro.free_port(), "dead": macro.free_port()}
        server_opts, http_opts = origin_opts(candidate["live"])
        origin = macro.start_origin(tmp, tools, layout, server_opts=server_opts,
                                    http_opts=http_opts)
        servers.append(origin)
        print(f"origin: ready on 127.0.0.1:{origin.port}, candidate on "
              f"127.0.0.1:{candidate['live']} (pid {origin.proc.pid}); dead candidate port "
              f"{candidate['dead']}", flush=True)
        if not refuses(candidate["dead"]):
            raise BenchError(f"port {candidate['dead']} (the dead candidate) accepts "
                             f"connections")
        logs = OriginLogs(Path(origin.log).parent)
        script = wrk_script(tmp / "post.lua")
        proxies = macro.start_variants(
            variants, lambda v: start_variant(v, tmp, origin, layout, candidate, script, logs),
            servers, skipped)

        def measure_counting(wrk: str, variant: Variant, server: Server, origin: Server,
                             size: str, rnd: int, args: argparse.Namespace,
                             layout: macro.Layout, results: Results, warmups: Results) -> None:
            before = logs.counts()
            macro.measure(wrk, variant, server, origin, size, rnd, args, layout, results,
                          warmups)
            after = logs.counts()
            sent = results[(variant, size)][-1].requests + warmups[(variant, size)][-1].requests
            count = MirrorCount(sent, after[0] - before[0], after[1] - before[1])
            counts.setdefault(variant.key, []).append(count)
            if variant.key in MIRRORED:
                print(f"round {rnd} {size:>3} {variant.key:<15} origin: {count.primary} "
                      f"primary, {count.candidate} copies (wrk completed {count.sent})",
                      flush=True)

        results, warmups = macro.measure_rounds(str(tools["wrk"]), origin, proxies, args,
                                                layout, skipped, mirror=True,
                                                measure_one=measure_counting)

    tables = macro.report(results, warmups, list(variants), args.size_list, layout,
                          mirror_table(counts))
    script_name = "bench/macro/inference.py"
    return macro.conclude(
        args, results, tables, skipped, "bench/macro inference",
        lambda: macro.results_section(
            args, layout, machine, tables, skipped, (load_start, macro.load_average()),
            started, script=script_name,
            title="model routes and mirroring (issue 15), workers=1", setup=setup_text()),
        script_name)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    macro.add_common_args(ap, rounds=3, sizes="1k")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    args = ap.parse_args(argv)
    macro.check_common_args(ap, args, argv)
    if args.size_list != list(SIZES):
        ap.error("--sizes: only 1k (the origin's answer to the POST)")
    args.route_list = route_names(ap, "--variants", args.variants, tuple(VARIANTS))
    return args


def main(argv: list[str]) -> int:
    return macro.guarded(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
