"""The operations kit in deploy/: Prometheus rules, their promtool unit tests, the Grafana
dashboard and docs/runbook.md, checked against each other and against docs/metrics.md.

Needs ``promtool``: taken from PATH, else installed from Debian's ``prometheus`` package (we
only want the binary; a prometheus daemon the install starts is stopped again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from apt_packages import apt_install

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "gwcore-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "gwcore-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gwcore-dashboard.json"
CATALOG = ROOT / "docs" / "metrics.md"
RUNBOOK = ROOT / "docs" / "runbook.md"

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
# Labels whose values are config names (free text), not enumerated in the catalog.
FREE_LABELS = {"route", "cluster", "endpoint", "listener", "provider", "version", "python"}

# installing may need an apt-get update: allow for it (the checks themselves take seconds)
pytestmark = pytest.mark.timeout(1500)


# --- promtool -------------------------------------------------------------------------------


def _prometheus_pids() -> set[int]:
    """Pids of processes named prometheus (``pgrep -x prometheus``, without needing procps)."""
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "prometheus":
                pids.add(int(comm.parent.name))
        except OSError:             # gone meanwhile
            pass
    return pids


def _stop(pids: set[int]) -> None:
    """Stop prometheus daemons that the package install started (by pid)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while pids & _prometheus_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids & _prometheus_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _install_promtool() -> None:
    before = _prometheus_pids()
    try:
        apt_install("prometheus", "promtool")
    finally:
        # the package may start its daemon (where services may start): only promtool is wanted
        _stop(_prometheus_pids() - before)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _install_promtool()
        path = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(path).exists(), "promtool missing after installing the prometheus package"
    return path


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


# --- the files ----------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(RULES)["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _records() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


def _dashboard() -> dict[str, Any]:
    with open(DASHBOARD) as f:
        return json.load(f)


def _catalog() -> dict[str, dict[str, Any]]:
    """docs/metrics.md's tables: series name -> {type, labels, meaning}. A histogram gives its
    _bucket (with le), _sum and _count series."""
    row = re.compile(r"^\|\s*`(gwcore_[a-z0-9_]+)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|"
                     r"([^|]*)\|(.*)\|\s*$")
    out: dict[str, dict[str, Any]] = {}
    for line in CATALOG.read_text().splitlines():
        m = row.match(line)
        if not m:
            continue
        name, kind, labels, meaning = m.groups()
        info = {"type": kind, "meaning": meaning,
                "labels": {x.strip() for x in labels.split(",") if x.strip()}}
        if kind == "histogram":
            out[name + "_bucket"] = {**info, "labels": info["labels"] | {"le"}}
            out[name + "_sum"] = info
            out[name + "_count"] = info
        else:
            out[name] = info
    return out


# --- PromQL: the metric names, label matchers and grouping labels of an expression ---------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\x00(\d+)\x00")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.$\x00])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan", "atan2"}


def parse_promql(expr: str) -> dict[str, Any]:
    """A light PromQL scan (not a parser; promtool checks the syntax): ``metrics`` the metric
    names, ``selectors`` (metric or None, [(label, op, value)]), ``grouping`` the labels of
    by/without/on/ignoring/group_left/group_right."""
    strings: list[str] = []

    def keep(m: re.Match[str]) -> str:
        strings.append(m.group(0)[1:-1])
        return f"\x00{len(strings) - 1}\x00"

    text = _STRING.sub(keep, expr)
    selectors: list[tuple[str | None, list[tuple[str, str, str]]]] = []
    metrics: set[str] = set()

    def selector(m: re.Match[str]) -> str:
        name, kept = m.group(1), ""
        if name in _KEYWORDS:       # `... or {__name__="x"}`: the keyword is no metric
            name, kept = None, name
        matchers = [(lbl, op, strings[int(i)]) for lbl, op, i in _MATCHER.findall(m.group(2))]
        selectors.append((name, matchers))
        if name is not None:
            metrics.add(name)
        metrics.update(v for lbl, op, v in matchers if lbl == "__name__" and op == "=")
        return f" {kept} "

    text = _BRACES.sub(selector, text)
    text = re.sub(r"\[[^\]]*\]", " ", text)             # ranges and subqueries
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(text):
        grouping |= {x.strip() for x in labels.split(",") if x.strip()}
    text = _GROUPING.sub(" ", text)
    for m in _IDENT.finditer(text):
        word = m.group(0)
        if word in _KEYWORDS or re.match(r"\s*\(", text[m.end():]):
            continue                                    # keyword, or a function's name
        metrics.add(word)
        selectors.append((word, []))
    return {"metrics": metrics, "selectors": selectors, "grouping": grouping}


def test_parse_promql_finds_names_matchers_and_grouping() -> None:
    p = parse_promql('histogram_quantile(0.99, sum by (le, route) (rate('
                     'gwcore_request_duration_seconds_bucket{route=~"$route",le="0.25"}'
                     '[$__rate_interval]))) / on (route) group_left '
                     'sum without (state) (gwcore_workers offset 5m) > 1e-3 and '
                     'job_route:x:ratio_rate5m unless time() - foo{a!="}b"}')
    assert p["metrics"] == {"gwcore_request_duration_seconds_bucket", "gwcore_workers",
                            "job_route:x:ratio_rate5m", "foo"}
    assert p["grouping"] == {"le", "route", "state"}
    assert ("gwcore_request_duration_seconds_bucket",
            [("route", "=~", "$route"), ("le", "=", "0.25")]) in p["selectors"]
    assert ("foo", [("a", "!=", "}b")]) in p["selectors"]


def _check_names(exprs: dict[str, str], allowed_extra: set[str]) -> list[str]:
    """Problems with the metric names and labels of ``exprs`` (where -> PromQL)."""
    catalog = _catalog()
    problems = []
    for where, expr in exprs.items():
        p = parse_promql(expr)
        known_labels = set(TARGET_LABELS)
        for name in p["metrics"]:
            if name in catalog:
                known_labels |= catalog[name]["labels"]
            elif name in allowed_extra:
                known_labels |= {"job", "route"}        # the recording rules' labels
            else:
                problems.append(f"{where}: {name} is not in docs/metrics.md")
        for name, matchers in p["selectors"]:
            row = catalog.get(name or "")
            if row is None:
                continue
            for label, op, value in matchers:
                if label not in row["labels"] | TARGET_LABELS:
                    problems.append(f"{where}: {name} has no label {label}")
                elif (op in ("=", "!=") and label not in FREE_LABELS | TARGET_LABELS | {"le"}
                      and f"`{value}`" not in row["meaning"]):
                    problems.append(f"{where}: {name}{{{label}{op}{value!r}}}: docs/metrics.md "
                                    f"does not name that value")
        for label in p["grouping"] - known_labels:
            problems.append(f"{where}: groups by {label}, a label of none of its metrics")
    return problems


# --- Prometheus rules -------------------------------------------------------------------------


def test_promtool_check_rules(promtool: str) -> None:
    done = _run([promtool, "check", "rules", str(RULES)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules(promtool: str) -> None:
    done = _run([promtool, "test", "rules", str(RULE_TESTS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_use_only_catalog_metrics() -> None:
    exprs = {r.get("alert") or r["record"]: r["expr"] for r in _rules()}
    assert _check_names(exprs, _records()) == []
    for name in _records():         # level:metric:operations, never a catalog-like name
        assert name.count(":") == 2 and ":gwcore_" in name, name


def test_every_alert_is_documented_and_labelled() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} >= {
        "GwcoreRoute5xxRatioHigh", "GwcoreLatencySLOBurnFast", "GwcoreLatencySLOBurnSlow",
        "GwcoreClusterNoAvailableEndpoint", "GwcoreWorkerCrashLoop",
        "GwcoreConfigReloadFailed", "GwcoreJwksRefreshFailing", "GwcoreAccessLogDropping"}
    for a in alerts:
        assert a["labels"]["severity"] in ("page", "ticket"), a["alert"]
        assert {"summary", "description", "runbook_url"} <= set(a["annotations"]), a["alert"]


def _runbook_anchors() -> set[str]:
    """GitHub's heading anchors of docs/runbook.md (and explicit <a id/name>)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        anchors |= set(re.findall(r'<a (?:id|name)="([^"]+)"', line))
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_runbook_urls_point_at_runbook_sections() -> None:
    anchors = _runbook_anchors()
    for a in _alerts():
        url = a["annotations"]["runbook_url"]
        m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", url)
        assert m, f"{a['alert']}: runbook_url {url!r} is not docs/runbook.md#<anchor>"
        assert m.group(1) in anchors, f"{a['alert']}: no section #{m.group(1)} in the runbook"


def _series_labels(series: str) -> dict[str, str]:
    body = re.search(r"\{(.*)\}", series)
    return dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', body.group(1) if body else ""))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert: a promtool test where it fires, and in such a test an input series (by the
    labels the alert keeps) for which it never fires."""
    tests = _load_yaml(RULE_TESTS)
    assert [str(f) for f in tests["rule_files"]] == [RULES.name]
    fired_in: dict[str, list[bool]] = {}
    for case in tests["tests"]:
        by_alert: dict[str, list[dict[str, str]]] = {}
        for t in case.get("alert_rule_test", []):
            fired = by_alert.setdefault(t["alertname"], [])
            fired += [{k: str(v) for k, v in e["exp_labels"].items()}
                      for e in t.get("exp_alerts") or []]
        for alert, fired in by_alert.items():
            if not fired:
                continue
            keys = set().union(*fired) - {"severity", "alertname"}
            ids = {tuple(sorted((k, v) for k, v in f.items() if k in keys)) for f in fired}
            inputs = {tuple(sorted((k, v) for k, v in _series_labels(s["series"]).items()
                                   if k in keys))
                      for s in case["input_series"]}
            quiet = {i for i in inputs if len(i) == len(keys)} - ids
            fired_in.setdefault(alert, []).append(bool(quiet))
    for a in _alerts():
        name = a["alert"]
        assert name in fired_in, f"no promtool test fires {name}"
        assert any(fired_in[name]), f"no promtool test of {name} has a series that stays quiet"


# --- Grafana dashboard --------------------------------------------------------------------------


def _panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out += p.get("panels", [])          # collapsed rows keep their panels inside
    return out


def _dashboard_exprs(d: dict[str, Any]) -> dict[str, str]:
    """Every PromQL of the dashboard: panel targets and annotations."""
    exprs = {}
    for p in _panels(d):
        for t in p.get("targets", []):
            exprs[f"panel {p['id']} {p['title']!r} {t['refId']}"] = t["expr"]
    for a in d["annotations"]["list"]:
        if "expr" in a:
            exprs[f"annotation {a['name']!r}"] = a["expr"]
    return exprs


def _variable_selectors(d: dict[str, Any]) -> dict[str, str]:
    out = {}
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        assert m, f"variable {v['name']}: {q!r} is not label_values(selector, label)"
        out[f"variable {v['name']}"] = m.group(1)
    return out


def test_dashboard_structure() -> None:
    d = _dashboard()
    assert d["schemaVersion"] == 39
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, label in (("route", "route"), ("cluster", "cluster")):
        assert variables[name]["type"] == "query"
        assert variables[name]["definition"].startswith("label_values(")
        assert variables[name]["definition"].endswith(f", {label})")
    panels = _panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", p["title"]
    exprs = "\n".join(_dashboard_exprs(d).values())
    assert any(p["type"] == "heatmap" and "gwcore_request_duration_seconds_bucket"
               in p["targets"][0]["expr"] and p["targets"][0]["format"] == "heatmap"
               for p in panels)
    for needle in ("histogram_quantile(0.5,", "histogram_quantile(0.99,",
                   "gwcore_upstream_ttfb_seconds_bucket", "gwcore_upstream_endpoint_healthy",
                   "gwcore_upstream_endpoint_ejected", "gwcore_upstream_errors_total",
                   "gwcore_upstream_overflows_total", "gwcore_downstream_connections",
                   "gwcore_worker_restarts_total", "gwcore_reloads_total",
                   "gwcore_access_log_dropped_lines_total", 'code_class="5xx"',
                   "by (route)", "by (cluster)"):
        assert needle in exprs, needle


def test_dashboard_shows_the_cache_and_rate_limit_families() -> None:
    text = json.dumps(_dashboard())
    assert 'gwcore_cache_requests_total{' in text
    assert 'gwcore_rate_limit_refused_total{' in text


def test_dashboard_uses_only_catalog_metrics() -> None:
    d = _dashboard()
    exprs = {**_dashboard_exprs(d), **_variable_selectors(d)}
    assert _check_names(exprs, set()) == []


def test_dashboard_promql_parses(promtool: str, tmp_path: Path) -> None:
    """Each dashboard query, Grafana's variables filled in, as a recording rule for promtool."""
    subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
    rules = []
    for i, expr in enumerate(_dashboard_exprs(_dashboard()).values()):
        for var, value in subst.items():
            expr = expr.replace(var, value)
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
        rules.append({"record": f"dashboard:query_{i}:check", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run([promtool, "check", "rules", str(path)])
    assert done.returncode == 0, done.stdout + done.stderr
