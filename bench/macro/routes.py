#!/usr/bin/env python3
"""gwcore route variants under wrk, side by side in one run (issue 9): what JWT and Python
filters cost per request, and what a code change costs (other builds of gwcore).

Each variant is a gwcore process (1 worker; pinned to CPU 1, wrk and the NGINX origin on CPU 0,
as bench/macro/run.py does) with one route `path_prefix: /` to the same origin; the variants
differ only in that route's options:

    plain          nothing on the route
    jwt            `jwt: bench`: an HS256 provider with its key in a JWKS file and
                   `forward_claims: {sub: x-user-id}`; every request carries the same valid
                   token (minted here with PyJWT), so after the first the gateway's token
                   cache answers
    on_request     `filters: [{use: "bench_filters:OnRequest"}]`: on_request returns None
    three_phases   `filters: [{use: "bench_filters:ThreePhases"}]`: on_request,
                   on_response_head and on_log, each doing nothing
    metrics        `admin: {address: ...}`: metrics recorded (the plain route has no admin
                   listener, so it records none)
    access_log     `access_log: {path: FILE, format: json}`, a file in the bench directory
    metrics_log    both
    trace_new      `tracing: {sample_ratio: 0}`, requests without traceparent: a new
                   (unsampled) trace and span id per request, traceparent sent upstream
    trace_continue the same, every request with a valid unsampled traceparent and a
                   tracestate: checked, continued, both forwarded (the plain route's requests
                   lack these two fields)
    otlp_1pct      `tracing: {sample_ratio: 0.01, otlp: ...}` exporting to the origin
                   (NGINX answers POST /v1/traces with 200): 1% of requests make a span
    otlp_all       the same with sample_ratio 1: every request makes and exports a span
    rate_limited   `rate_limit: [bench]`: a local limit keyed by source_ip so high
                   (100000000/s) that it never refuses: the shared-memory GCRA check and the
                   filter call per request

`--build PATH` (repeatable) adds another build of gwcore: a git worktree (e.g. of the parent
commit) with its own `.venv` (`pip install -e PATH`), run as `PATH/.venv/bin/python -m gwcore
serve` from PATH; its variants are `--build-variants` (default: plain). This build is the one
that imports as `gwcore` with the interpreter running the script, from the repository root.
All variants of all builds are measured in mirrored alternating rounds (A B C D, D C B A, ...);
per size the table gives medians, each variant's req/s relative to the plain route of its
build, and this build's plain route relative to each other build's, with issue 9's targets.

    .venv/bin/python bench/macro/routes.py                             # 5 rounds of 10 s, 1 KiB
    .venv/bin/python bench/macro/routes.py --build /tmp/gwcore-parent  # + the parent's plain route
    .venv/bin/python bench/macro/routes.py --duration 2s --warmup 1s --rounds 1   # smoke

Exit status as run.py: 0 all measured cleanly, 1 a variant skipped or a run flagged, 2 setup
failed, 130 interrupted. See bench/macro/README.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import run as macro
from run import BenchError, Server, Spawn, Summary, Variant

ROUTES = ("plain", "jwt", "on_request", "three_phases", "metrics", "access_log", "metrics_log",
          "trace_new", "trace_continue", "otlp_1pct", "otlp_all", "rate_limited")
DEFAULT_ROUTES = ROUTES[:4]     # issue 9's; the others when named (--variants)
# issues 9 and 12: a variant's req/s over the plain route of the same build must be at least
# this (access_log alone has no target of its own: the issue bounds metrics + access log)
TARGETS = {"jwt": 0.90, "on_request": 0.85, "three_phases": 0.75, "metrics": 0.97,
           "access_log": 0.90, "metrics_log": 0.90, "rate_limited": 0.97}
# issue 9: this build's plain route over the parent commit's
BUILD_TARGET = 0.97
FILTER_CLASSES = {"on_request": "bench_filters:OnRequest",
                  "three_phases": "bench_filters:ThreePhases"}

JWT_SECRET = b"gwcore-bench-hs256-secret-32-byt"     # 32 bytes, HS256's minimum
JWT_ISSUER = "https://bench.gwcore.invalid/"
JWT_CLAIM, JWT_FIELD = "sub", "x-user-id"
TRACE_FIELDS = (("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
                ("tracestate", "congo=t61rcWkgMzE"))


@dataclass(frozen=True)
class Build:
    """A gwcore build: its source tree (run from there, so `-m gwcore` imports it) and the
    interpreter of its venv."""

    label: str
    root: Path
    python: str

    def commit(self) -> str:
        commit = macro.command_output(["git", "-C", str(self.root), "rev-parse", "--short",
                                       "HEAD"]) or "?"
        if macro.command_output(["git", "-C", str(self.root), "status", "--porcelain",
                                 "--untracked-files=no"]):
            commit += " with uncommitted changes"
        return commit

    def problem(self) -> str | None:
        """None if this build's gwcore, compiled modules included, imports from its own tree
        with its interpreter; else what is wrong and how to make the build."""
        if not Path(self.python).exists():
            return f"no interpreter {self.python}"
        probe = "import gwcore, gwcore.http._connection as c; print(gwcore.__file__)"
        proc = subprocess.run([self.python, "-c", probe], cwd=self.root, check=False,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return f"`{self.python} -c 'import gwcore.http._connection'` failed: {last}"
        where = Path(proc.stdout.strip()).resolve()
        if not where.is_relative_to(self.root.resolve()):
            return f"{self.python} imports gwcore from {where}, not from {self.root}"
        return None


def this_build() -> Build:
    return Build(macro.REPO.name, macro.REPO, sys.executable)


def other_build(path: str, taken: set[str]) -> Build:
    root = Path(path).resolve()
    label = root.name
    while label in taken:
        label += "'"
    return Build(label, root, str(root / ".venv" / "bin" / "python"))


@dataclass(frozen=True)
class RouteVariant(Variant):
    """A route variant of a build (always gwcore with 1 worker)."""

    build: Build
    route: str

    @property
    def key(self) -> str:
        return f"{self.build.label}-{self.route}"


def mint_token() -> str:
    """A valid HS256 token for the jwt variant, good for a day (PyJWT)."""
    import jwt  # PyJWT: only the jwt variant needs it

    now = int(time.time())
    return jwt.encode({"iss": JWT_ISSUER, "aud": "gateway", JWT_CLAIM: "bench-user",
                       "iat": now, "exp": now + 86400}, JWT_SECRET, algorithm="HS256",
                      headers={"kid": "bench"})


def route_config(route: str, d: Path, origin_port: int
                 ) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """(YAML lines of the route, top-level YAML sections, fields every request carries) of a
    variant; writes the files they refer to into d."""
    if route == "plain":
        return "", "", ()
    if route == "rate_limited":
        return ("    rate_limit: [bench]\n",
                "rate_limits:\n  bench: {key: source_ip, rate: 100000000/s}\n", ())
    if route in ("metrics", "access_log", "metrics_log"):
        top = ""
        if route != "access_log":
            top += f"admin: {{address: 127.0.0.1:{macro_free_port()}}}\n"
        if route != "metrics":
            top += f"access_log: {{path: {json.dumps(str(d / 'access.log'))}, format: json}}\n"
        return "", top, ()
    if route in ("trace_new", "trace_continue"):
        fields = TRACE_FIELDS if route == "trace_continue" else ()
        return "", "tracing: {sample_ratio: 0.0}\n", fields
    if route in ("otlp_1pct", "otlp_all"):
        ratio = "0.01" if route == "otlp_1pct" else "1.0"
        return "", (f"tracing:\n  sample_ratio: {ratio}\n  otlp: {{endpoint: "
                    f"\"http://127.0.0.1:{origin_port}/v1/traces\"}}\n"), ()
    if route == "jwt":
        jwks = d / "jwks.json"
        key = {"kty": "oct", "kid": "bench", "alg": "HS256",
               "k": base64.urlsafe_b64encode(JWT_SECRET).rstrip(b"=").decode()}
        jwks.write_text(json.dumps({"keys": [key]}))
        top = (f"jwt_providers:\n  bench:\n    algorithms: [HS256]\n"
               f"    issuer: {JWT_ISSUER}\n    audiences: [gateway]\n"
               f"    jwks: {{file: {json.dumps(str(jwks))}}}\n"
               f"    forward_claims: {{{JWT_CLAIM}: {JWT_FIELD}}}\n")
        return "    jwt: bench\n", top, (("Authorization", f"Bearer {mint_token()}"),)
    mark = json.dumps(str(d / "filters-built"))
    return (f'    filters: [{{use: "{FILTER_CLASSES[route]}", config: {{mark: {mark}}}}}]\n',
            "", ())


def macro_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_env() -> tuple[tuple[str, str], ...]:
    """What the gateway's environment adds: bench/macro on PYTHONPATH (bench_filters)."""
    path = os.pathsep.join(p for p in (str(macro.HERE), os.environ.get("PYTHONPATH")) if p)
    return (("PYTHONPATH", path),)


def config_problem(build: Build, cfg: Path) -> str | None:
    """None if `gwcore check` of this build accepts cfg, else its complaint (with what it
    means when the build does not know the filters key yet)."""
    proc = subprocess.run([build.python, "-m", "gwcore", "check", str(cfg)], cwd=build.root,
                          check=False, capture_output=True, text=True,
                          env=dict(os.environ, **dict(gateway_env())))
    if proc.returncode == 0:
        return None
    said = (proc.stdout + proc.stderr).strip()
    if "invalid choice" in said:
        return None         # a build without `gwcore check`: the start will tell
    if "filters" in said and "unknown key" in said:
        said += (" -- this gwcore build has no `filters` config key (per-route "
                 "`filters: [{use: pkg.mod:Class, config: {...}}]`, issue 9) yet")
    return said


def serving_problem(variant: RouteVariant, server: Server, d: Path) -> str | None:
    """None if the variant is what it claims: jwt refuses a request without a token, a
    filter variant's filter was built by the gateway."""
    if variant.route == "jwt":
        answer = macro.http_get(server.port, "/1k")
        status = answer if isinstance(answer, str) else answer[0]
        if status != 401:
            return f"GET /1k without a token: expected 401, got {status}"
    if variant.route in ("access_log", "metrics_log"):
        macro.http_get(server.port, "/1k")
        log = d / "access.log"
        if not wait_until(lambda: log.exists() and log.stat().st_size > 0):
            return f"a request was not logged to {log}"
    if variant.route in FILTER_CLASSES and not (d / "filters-built").exists():
        return (f"the gateway accepted the config but never built "
                f"{FILTER_CLASSES[variant.route]} (no {d / 'filters-built'})")
    return None


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_variant(variant: RouteVariant, tmp: Path, origin: Server, layout: macro.Layout
                  ) -> Server | str:
    """The variant's gwcore, started and checked, or why it is not measured."""
    d = tmp / variant.key
    d.mkdir()
    try:
        route_opts, top_opts, headers = route_config(variant.route, d, origin.port)
    except ImportError as exc:
        return f"cannot mint a token: {exc} (install PyJWT into {sys.executable})"
    build = macro.build_gwcore(pin_cpus=True, python=variant.build.python,
                               route_opts=route_opts, top_opts=top_opts)
    cfg = Path(build(d, 1, 2, 1)[-1])        # the config with placeholder ports, to check
    problem = config_problem(variant.build, cfg)
    if problem:
        print(f"SKIP {variant.key}: config refused: {problem}", flush=True)
        return f"config refused: {problem}"
    how = Spawn(cwd=variant.build.root, env=gateway_env(), headers=headers)
    server = macro.start_proxy(variant, build, tmp, origin.port, layout, how)
    if server is None:
        return "did not start (see the script's output)"
    problem = serving_problem(variant, server, d)
    if problem:
        macro.stop(server)
        print(f"SKIP {variant.key}: {problem}", flush=True)
        return problem
    return server


def ratio_text(a: Summary, b: Summary, target: float | None) -> str | None:
    """'**0.93×** (per round ...; target ≥ 0.90×: met; proxy CPU +1.2 µs/req)' for a over b
    (no target part when target is None)."""
    ratio = macro.rps_ratio(a, b)
    if ratio is None:
        return None
    rounds = ", ".join(f"{x:.2f}" for x in macro.per_round_ratios(a, b))
    verdict = ("" if target is None else
               f"; target ≥ {target:.2f}×: {'met' if ratio[0] >= target else 'NOT met'}")
    cost_a, cost_b = a.median("proxy_us_per_request"), b.median("proxy_us_per_request")
    cost = (f"; proxy CPU {cost_a - cost_b:+.2f} µs/req"
            if cost_a is not None and cost_b is not None else "")
    return f"**{ratio[0]:.3f}×** (per round: {rounds}{verdict}{cost}){ratio[1]}"


def routes_table(size: str, summaries: list[Summary], _layout: macro.Layout) -> str:
    rows = [([s.variant.build.label, s.variant.route], s) for s in summaries]
    lines = macro.summary_table(["build", "route"], rows)
    by = {(s.variant.build, s.variant.route): s for s in summaries}
    builds = list(dict.fromkeys(s.variant.build for s in summaries))
    notes = []
    for build in builds:
        plain = by.get((build, "plain"))
        cells = []
        for route in ROUTES[1:]:
            other = by.get((build, route))
            text = (ratio_text(other, plain, TARGETS.get(route)) if other and plain
                    else None)
            if text:
                cells.append(f"{route} {text}")
        if cells:
            notes.append(f"{build.label}, req/s over its plain route: " + "; ".join(cells))
    first = by.get((builds[0], "plain")) if builds else None
    for build in builds[1:]:
        other = by.get((build, "plain"))
        text = ratio_text(first, other, BUILD_TARGET) if first and other else None
        if text:
            notes.append(f"plain route, {builds[0].label} / {build.label} (the target applies "
                         f"when {build.label} is the parent commit): {text}")
    text = f"**{macro.SIZE_TITLES[size]}**\n\n" + "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "  \n".join(notes) + "\n"
    return text


ROUTE_TEXTS = {
    "plain": "plain = nothing on the route",
    "jwt": ("jwt = HS256 provider (JWKS file, forward_claims {sub: x-user-id}), every request "
            "with the same valid token (cached after the first)"),
    "on_request": "on_request = one Python filter whose on_request returns None",
    "three_phases": ("three_phases = one Python filter with on_request, on_response_head and "
                     "on_log, each doing nothing"),
    "metrics": "metrics = an admin listener, so every request is recorded in shared memory",
    "access_log": "access_log = a JSON access log to a file",
    "metrics_log": "metrics_log = both",
    "trace_new": "trace_new = `tracing: {sample_ratio: 0}`, no traceparent received",
    "trace_continue": ("trace_continue = `tracing: {sample_ratio: 0}`, every request with a "
                       "valid unsampled traceparent and a tracestate"),
    "otlp_1pct": "otlp_1pct = `tracing: {sample_ratio: 0.01, otlp}` (spans to the origin)",
    "otlp_all": "otlp_all = `tracing: {sample_ratio: 1, otlp}`: a span per request",
    "rate_limited": ("rate_limited = `rate_limit: [bench]`, a local source_ip limit of "
                     "100000000/s (never refuses)"),
}


def setup_text(builds: list[Build], args: argparse.Namespace) -> str:
    where = "; ".join(f"{b.label} = {b.root} at {b.commit()}" for b in builds)
    routes = dict.fromkeys(args.route_list + (args.build_route_list if args.build else []))
    return (f"gwcore, 1 worker, one route `path_prefix: /` per variant: "
            f"{'; '.join(ROUTE_TEXTS[r] for r in routes)}. Builds: {where}; variants "
            f"{', '.join(args.route_list)} of {builds[0].label}"
            + (f", {', '.join(args.build_route_list)} of the others" if args.build else "")
            + ". Rounds alternate mirrored (A B C, C B A).")


def benchmark(args: argparse.Namespace) -> int:
    layout = macro.layout_for(1)
    tools = macro.ensure_tools(False, install=not args.no_install)
    machine = macro.machine_description(tools)
    started = datetime.datetime.now(datetime.UTC)
    load_start = macro.load_average()

    builds = [this_build()]
    for path in args.build:
        builds.append(other_build(path, {b.label for b in builds}))
    for build in builds:
        problem = build.problem()
        if problem:
            raise BenchError(
                f"build {build.root}: {problem}. Make a build with: git worktree add "
                f"{build.root} <commit> && python3 -m venv {build.root}/.venv && "
                f"{build.root}/.venv/bin/pip install -e {build.root}")
    variants = [RouteVariant("gwcore", 1, build, route) for i, build in enumerate(builds)
                for route in (args.route_list if i == 0 else args.build_route_list)]

    skipped: dict[str, str] = {}
    with macro.bench_dir(args.keep_temp) as (tmp, servers):
        origin = macro.start_origin(tmp, tools, layout)
        servers.append(origin)
        print(f"origin: ready on 127.0.0.1:{origin.port} (pid {origin.proc.pid})", flush=True)
        proxies = macro.start_variants(
            variants, lambda v: start_variant(v, tmp, origin, layout), servers, skipped)
        results, warmups = macro.measure_rounds(str(tools["wrk"]), origin, proxies, args,
                                                layout, skipped, mirror=True)

    tables = macro.report(results, warmups, list(variants), args.size_list, layout,
                          routes_table)
    script = "bench/macro/routes.py"
    return macro.conclude(
        args, results, tables, skipped,
        # another set of variants gets a section of its own in bench/RESULTS.md
        "bench/macro routes" + ("" if args.route_list == list(DEFAULT_ROUTES)
                                else f" ({','.join(args.route_list)})"),
        lambda: macro.results_section(
            args, layout, machine, tables, skipped, (load_start, macro.load_average()),
            started, script=script,
            title=("gwcore route variants (issue 9), workers=1"
                   if args.route_list == list(DEFAULT_ROUTES) else
                   f"gwcore route variants {', '.join(args.route_list)}, workers=1"),
            setup=setup_text(builds, args)),
        script)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    macro.add_common_args(ap, rounds=5, sizes="1k")
    ap.add_argument("--variants", default=",".join(DEFAULT_ROUTES),
                    help=f"route variants of this build, of {','.join(ROUTES)} (default "
                         f"{','.join(DEFAULT_ROUTES)})")
    ap.add_argument("--build", action="append", default=[], metavar="PATH",
                    help="another gwcore build: a source tree with its own PATH/.venv "
                         "(repeatable)")
    ap.add_argument("--build-variants", default="plain",
                    help="route variants of the --build builds (default plain)")
    args = ap.parse_args(argv)
    macro.check_common_args(ap, args, argv)
    args.route_list = route_names(ap, "--variants", args.variants)
    args.build_route_list = route_names(ap, "--build-variants", args.build_variants)
    return args


def route_names(ap: argparse.ArgumentParser, option: str, text: str,
                known: Sequence[str] = ROUTES) -> list[str]:
    """The comma-separated variant names of ``option`` (argparse error for one not known)."""
    names = [r.strip() for r in text.split(",") if r.strip()]
    for r in names:
        if r not in known:
            ap.error(f"{option}: unknown variant {r!r} ({', '.join(known)})")
    return names


def main(argv: list[str]) -> int:
    return macro.guarded(benchmark, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
