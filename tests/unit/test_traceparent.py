"""Trace context pieces the session uses (gwcore/proxy/_session.pyx over src_c/trace.c):
traceparent and tracestate checks against a table and, with hypothesis, against ``ref_*``
below (regular expressions written from W3C Trace Context Level 1 §3.2 / §3.3); per-process
span ids (a forked child does not repeat its parent's); the OTLP span exporter
(gwcore/observability/tracing.py) with the SDK's in-memory exporter; and ``gwcore check``
refusing ``tracing.otlp`` when the SDK is not installed."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwcore import runtime
from gwcore.config import ConfigError, Otlp
from gwcore.proxy._session import check_tracestate, new_span_id, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"

# ----- references ------------------------------------------------------------------------------

_TP = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?",
                 re.DOTALL)


def ref_traceparent(v: bytes) -> tuple[str, str, int] | None:
    m = _TP.fullmatch(v)
    if m is None:
        return None
    version, trace, parent, flags, rest = m.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace == b"0" * 32 or parent == b"0" * 16:
        return None
    return trace.decode(), parent.decode(), int(flags, 16)


_KEY = re.compile(rb"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(rb"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


def ref_tracestate(*values: bytes) -> bool:
    joined = b",".join(values)
    if len(joined) > 512:
        return False
    members = 0
    for member in joined.split(b","):
        member = member.strip(b" \t")
        if not member:
            continue
        key, eq, value = member.partition(b"=")
        if not eq or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            return False
        members += 1
    return members <= 32


# ----- traceparent ---------------------------------------------------------------------------

def test_valid() -> None:
    assert parse_traceparent(VALID.encode()) == (TRACE, PARENT, 1)
    assert parse_traceparent(VALID[:-2].encode() + b"00") == (TRACE, PARENT, 0)
    assert parse_traceparent(VALID[:-2].encode() + b"ff") == (TRACE, PARENT, 255)
    # a higher version: its first 55 bytes, then "-" or the end (§3.2.4)
    assert parse_traceparent(b"cc" + VALID[2:].encode() + b"-future") == (TRACE, PARENT, 1)
    assert parse_traceparent(b"01" + VALID[2:].encode()) == (TRACE, PARENT, 1)


@pytest.mark.parametrize(("value", "problem"), [
    (b"", "traceparent_length"),
    (VALID[:-1].encode(), "traceparent_length"),
    (VALID.encode() + b"0", "traceparent_length"),
    (VALID.encode() + b"-", "traceparent_length"),        # version 00: exactly 55
    (b"cc" + VALID[2:].encode() + b"x", "traceparent_length"),
    (b"ff" + VALID[2:].encode(), "traceparent_version_ff"),
    (b"0F" + VALID[2:].encode(), "traceparent_version"),
    (b"garbage", "traceparent_version"),
    (VALID.upper().encode(), "traceparent_hex"),
    (f"00-{TRACE}-{PARENT.upper()}-01".encode(), "traceparent_hex"),
    (f"00-{TRACE}-{PARENT}-0A".encode(), "traceparent_hex"),
    (f"00-{TRACE[:-1]}g-{PARENT}-01".encode(), "traceparent_hex"),
    (f"00-{TRACE}_{PARENT}-01".encode(), "traceparent_format"),
    (f"00-{'0' * 32}-{PARENT}-01".encode(), "trace_id_zero"),
    (f"00-{TRACE}-{'0' * 16}-01".encode(), "parent_id_zero"),
])
def test_invalid(value: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{problem}$"):
        parse_traceparent(value)
    assert ref_traceparent(value) is None


def _near_valid() -> st.SearchStrategy[bytes]:
    """A valid value with a few bytes replaced and a few cut or added at its end."""
    alphabet = b"0123456789abcdefABF-g \t\x00"
    edits = st.lists(st.tuples(st.integers(0, 54), st.sampled_from(alphabet)), max_size=3)
    tail = st.binary(max_size=4) | st.just(b"") | st.just(b"-x")
    version = st.sampled_from([b"00", b"01", b"cc", b"fe", b"ff", b"0f"])

    def build(v: bytes, e: list[tuple[int, int]], t: bytes, cut: int) -> bytes:
        b = bytearray(v + VALID[2:].encode())
        for i, c in e:
            b[i] = c
        return bytes(b[:55 - cut]) + (t if cut == 0 else b"")
    return st.builds(build, version, edits, tail, st.integers(0, 3))


@settings(derandomize=True, max_examples=3000, deadline=None)
@given(st.one_of(_near_valid(), st.binary(max_size=70)))
def test_against_reference(value: bytes) -> None:
    expected = ref_traceparent(value)
    try:
        got = parse_traceparent(value)
    except ValueError:
        got = None
    assert got == expected


# ----- tracestate ----------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    (b"congo=t61rcWkgMzE",), (b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",), (b"",),
    (b" , ,\t",), (b"a=1", b"b=2"), (b"tenant@system=v",), (b"k= leading space is value",),
])
def test_tracestate_valid(values: tuple[bytes, ...]) -> None:
    assert check_tracestate(*values) == b",".join(values)
    assert ref_tracestate(*values)


@pytest.mark.parametrize(("values", "problem"), [
    ((b"Congo=x",), "tracestate_key"),
    ((b"congo",), "tracestate_member"),
    ((b"congo=",), "tracestate_value"),
    ((b"congo=a=b",), "tracestate_value"),
    ((b"a=1", b"B=2"), "tracestate_key"),
    ((b",".join(b"k%d=v" % i for i in range(33)),), "tracestate_members"),
    ((b"k=" + b"v" * 256, b"j=" + b"v" * 254), "tracestate_size"),     # 256 + 1 + 256
])
def test_tracestate_invalid(values: tuple[bytes, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{problem}$"):
        check_tracestate(*values)
    assert not ref_tracestate(*values)


@settings(derandomize=True, max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.text("az09_-*/@=, \tKv~!", max_size=300).map(
    str.encode), min_size=1, max_size=3))
def test_tracestate_against_reference(values: list[bytes]) -> None:
    try:
        got = check_tracestate(*values) is not None
    except ValueError:
        got = False
    assert got == ref_tracestate(*values)


# ----- ids -----------------------------------------------------------------------------------

def test_span_ids() -> None:
    ids = {new_span_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch("[0-9a-f]{16}", i) and i != "0" * 16 for i in ids)


def test_forked_child_has_its_own_stream() -> None:
    new_span_id()           # seeded in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:            # the child: its next ids, to the parent
        try:
            os.write(write, " ".join(new_span_id() for _ in range(4)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 1000).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    parent = [new_span_id() for _ in range(4)]
    assert len(child) == 4
    assert not set(child) & set(parent)     # the same stream would repeat them exactly


# ----- the OTLP span exporter ----------------------------------------------------------------

def _exchange(**kw: object) -> SimpleNamespace:
    now = time.monotonic_ns()
    ex = SimpleNamespace(trace_id=TRACE, span_id="1122334455667788", parent_id=PARENT,
                         sampled=True, method=b"GET", path=b"/v1/x", status=200,
                         route_name="api", client_address="192.0.2.7", end="ok",
                         cluster=SimpleNamespace(name="video"), endpoint="10.0.0.1:9001",
                         tries=1, request_id="abc-1", t_received=now - 2_000_000, t_end=now)
    ex.__dict__.update(kw)
    return ex


def _record(*exchanges: SimpleNamespace) -> list:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gwcore.observability.tracing import OtlpSpans

    memory = InMemorySpanExporter()
    spans = OtlpSpans(Otlp(service_name="edge"), exporter=memory)
    for ex in exchanges:
        spans.on_log(ex)
    assert spans.shutdown(5)
    return list(memory.get_finished_spans())


def test_span_from_an_exchange() -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    before = time.time_ns()
    ex = _exchange()
    (span,) = _record(ex)
    assert span.name == "GET api"
    assert span.kind == SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE
    assert f"{span.context.span_id:016x}" == "1122334455667788"
    assert f"{span.parent.span_id:016x}" == PARENT and span.parent.is_remote
    assert span.resource.attributes["service.name"] == "edge"
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.path": "/v1/x", "http.response.status_code": 200,
        "http.route": "api", "network.peer.address": "192.0.2.7", "gwcore.end": "ok",
        "gwcore.cluster": "video", "gwcore.endpoint": "10.0.0.1:9001", "gwcore.tries": 1,
        "gwcore.request_id": "abc-1"}
    assert span.status.status_code == StatusCode.UNSET
    assert span.end_time - span.start_time == 2_000_000
    assert before - 10**9 < span.start_time < time.time_ns()     # wall clock


def test_span_root_error_and_other_method() -> None:
    from opentelemetry.trace import StatusCode

    spans = _record(_exchange(parent_id=None, status=503, method=b"PURGE"),
                    _exchange(status=0, end="upstream_error", route_name=None, cluster=None,
                              endpoint=None, request_id=None, path=None),
                    _exchange(status=404))
    root, cut, not_found = spans
    assert root.parent is None and f"{root.context.trace_id:032x}" == TRACE
    assert root.name == "HTTP api"
    assert root.attributes["http.request.method"] == "_OTHER"
    assert root.attributes["http.request.method_original"] == "PURGE"
    assert root.attributes["error.type"] == "503"
    assert root.status.status_code == StatusCode.ERROR
    assert cut.name == "GET" and cut.status.status_code == StatusCode.ERROR
    assert cut.attributes["error.type"] == "upstream_error"
    assert "http.response.status_code" not in cut.attributes
    assert not_found.status.status_code == StatusCode.UNSET       # a 4xx is the client's
    assert "error.type" not in not_found.attributes


def test_a_broken_exchange_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    assert _record(_exchange(trace_id="not hex")) == []
    assert "recording a span failed" in caplog.text


# ----- gwcore check --------------------------------------------------------------------------

CONFIG = """
listeners: [{name: public, address: "127.0.0.1:8080"}]
clusters: [{name: origin, endpoints: ["127.0.0.1:9001"]}]
routes: [{match: {path_prefix: /}, cluster: origin}]
tracing: {sample_ratio: 0.5, otlp: {endpoint: "http://127.0.0.1:4318/v1/traces"}}
"""


def test_check_accepts_otlp_with_the_sdk(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(CONFIG)
    cfg = runtime.load(path)
    assert cfg.tracing.sample_ratio == 0.5 and cfg.tracing.otlp.service_name == "gwcore"


@pytest.mark.parametrize("module", ["opentelemetry.sdk.trace",
                                    "opentelemetry.exporter.otlp.proto.http.trace_exporter"])
def test_check_refuses_otlp_without_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            module: str) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(CONFIG)
    monkeypatch.setitem(sys.modules, module, None)      # as if not installed
    with pytest.raises(ConfigError) as e:
        runtime.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: tracing.otlp: ")
    assert "pip install 'gwcore[otel]'" in message
    assert "opentelemetry-exporter-otlp-proto-http" in message
    # tracing without otlp needs nothing
    path.write_text(CONFIG.replace(', otlp: {endpoint: "http://127.0.0.1:4318/v1/traces"}', ""))
    assert runtime.load(path).tracing.otlp is None
