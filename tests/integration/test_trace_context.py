"""W3C Trace Context through real gateways: traceparent checked and propagated with a new span
id per hop, malformed ones replaced (tracestate dropped with them), a trace created when
absent with the sampled flag per ``sample_ratio``, tracestate forwarded with a valid
traceparent, two hops, filters reading the exchange's ids, and nothing touched without
``tracing``. OTLP: a real OTLP/HTTP receiver (a thread here, decoding each
ExportTraceServiceRequest with opentelemetry-proto) gets one SERVER span per sampled request
with the ids the gateway sent upstream.

What the origin received is read from its ``/headers`` answer (tests/integration/origin.py)."""

from __future__ import annotations

import gzip
import os
import re
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import (
    HERE,
    HOST,
    RawConn,
    gateway_config,
    start_gateway_on_free_port,
    wait_for,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

pytestmark = pytest.mark.timeout(120)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2

PYTHONPATH = os.pathsep.join(
    [str(HERE)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))


# --------------------------------------------------------------------------- OTLP receiver


class Receiver:
    """An OTLP/HTTP collector on 127.0.0.1: POST /v1/traces (protobuf, optionally gzip or
    deflate) is decoded and each span kept as a dict (service, trace_id, span_id, parent,
    name, kind, start, end, status, attrs); anything else gets 404."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.posts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:   # http.server's name for the POST handler
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{HOST}:{self.port}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    spans.append({
                        "service": resource.get("service.name"),
                        "trace_id": sp.trace_id.hex(),
                        "span_id": sp.span_id.hex(),
                        "parent": sp.parent_span_id.hex() or None,
                        "name": sp.name,
                        "kind": sp.kind,
                        "start": sp.start_time_unix_nano,
                        "end": sp.end_time_unix_nano,
                        "status": sp.status.code,
                        "attrs": {kv.key: _value(kv.value) for kv in sp.attributes},
                    })
        with self.lock:
            self.posts += 1
            self.spans.extend(spans)

    def find(self, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if all(s[k] == v for k, v in match.items())]

    def wait(self, what: str, count: int = 1, **match: Any) -> list[dict[str, Any]]:
        """The spans matching ``match`` once there are ``count`` of them (AssertionError
        after a deadline); more than ``count`` fails at once."""
        found = wait_for(lambda: len(self.find(**match)) >= count and self.find(**match),
                         20, what)
        assert len(found) == count, found
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


# --------------------------------------------------------------------------- gateways


def _config(port: int, origin_port: int, dead_port: int, tracing: dict,
            routes: list[dict] | None = None, clusters: list[dict] | None = None) -> dict:
    cfg = gateway_config(port, origin_port, dead_port, routes=routes, clusters=clusters)
    cfg["tracing"] = tracing
    return cfg


def _start(make, tmp, name: str, batch_delay_ms: int = 50):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", PYTHONPATH)         # the probe filters
        # the SDK's batch delay: quick exports (or none before the worker exits)
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", str(batch_delay_ms))
        return start_gateway_on_free_port(make, tmp, name)


PROBE_ROUTES = [
    {"name": "see", "match": {"host": "see.test"}, "cluster": "origin",
     "filters": [{"use": "trace_probes:SeeTrace"}]},
    {"name": "await", "match": {"host": "await.test"}, "cluster": "origin",
     "filters": [{"use": "trace_probes:AwaitTrace"}]},
    {"name": "own", "match": {"host": "own.test"}, "cluster": "origin",
     "filters": [{"use": "trace_probes:OwnTraceparent"}]},
    {"name": "dead", "match": {"host": "dead.test"}, "cluster": "dead"},
    {"name": "api", "match": {"path_prefix": "/"}, "cluster": "origin"},
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced(origin, dead_port, tmp_path_factory):
    """tracing with sample_ratio 1.0 (new traces sampled), probe filter routes."""
    tmp = tmp_path_factory.mktemp("traced")
    gw = _start(lambda port: _config(port, origin.port, dead_port, {"sample_ratio": 1.0},
                                     routes=PROBE_ROUTES), tmp, "gw-traced")
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="module")
def unsampled(origin, dead_port, tmp_path_factory):
    """tracing with sample_ratio 0.0 (new traces not sampled)."""
    tmp = tmp_path_factory.mktemp("unsampled")
    gw = _start(lambda port: _config(port, origin.port, dead_port, {"sample_ratio": 0.0}),
                tmp, "gw-unsampled")
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="module")
def exporting(origin, dead_port, receiver, tmp_path_factory):
    """tracing with sample_ratio 0.0 and OTLP export (service "gw-back"), probe routes."""
    tmp = tmp_path_factory.mktemp("exporting")
    otlp = {"endpoint": receiver.url, "service_name": "gw-back", "timeout": "5s"}
    gw = _start(lambda port: _config(port, origin.port, dead_port,
                                     {"sample_ratio": 0.0, "otlp": otlp},
                                     routes=PROBE_ROUTES), tmp, "gw-exporting")
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="module")
def front(exporting, dead_port, receiver, tmp_path_factory):
    """A gateway in front of ``exporting`` (two hops to the origin): sample_ratio 1.0, OTLP
    export as service "gw-front"."""
    tmp = tmp_path_factory.mktemp("front")
    otlp = {"endpoint": receiver.url, "service_name": "gw-front", "timeout": "5s"}
    clusters = [{"name": "origin", "endpoints": [f"{HOST}:{exporting.port}"]},
                {"name": "dead", "endpoints": [f"{HOST}:{dead_port}"]}]
    routes = [{"name": "to-back", "match": {"path_prefix": "/"}, "cluster": "origin"}]
    gw = _start(lambda port: _config(port, exporting.port, dead_port,
                                     {"sample_ratio": 1.0, "otlp": otlp},
                                     routes=routes, clusters=clusters), tmp, "gw-front")
    yield gw
    gw.proc.stop()


# --------------------------------------------------------------------------- helpers


def received(gw, lines: list[tuple[str, str]] = (), host: str = "gw.test",
             target: str = "/headers") -> dict[str, list[str]]:
    """The fields the origin received for a GET with these field lines, as lower-case name
    -> values in order (raw socket: repeated and odd fields go out exactly as given)."""
    head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in lines)
    with RawConn(gw.port) as conn:
        conn.send((head + "\r\n").encode("latin-1"))
        r = conn.read_response()
    assert r.status == 200, r.body
    out: dict[str, list[str]] = {}
    for name, value in r.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def sent_traceparent(fields: dict[str, list[str]]) -> tuple[str, str, str]:
    """(trace_id, span_id, flags) of the one traceparent the origin received."""
    values = fields.get("traceparent", [])
    assert len(values) == 1, fields
    m = TRACEPARENT.fullmatch(values[0])
    assert m, values[0]
    trace_id, span_id, flags = m.groups()
    assert trace_id != "0" * 32 and span_id != "0" * 16
    return trace_id, span_id, flags


# --------------------------------------------------------------------------- propagation


@pytest.mark.parametrize("flags", ["01", "00"])
def test_valid_traceparent_continued_with_a_new_span_id(traced, unsampled, flags) -> None:
    for gw in (traced, unsampled):          # the received flag wins over sample_ratio
        trace_id, span_id, sent_flags = sent_traceparent(
            received(gw, [("traceparent", f"00-{TRACE}-{PARENT}-{flags}")]))
        assert trace_id == TRACE
        assert span_id != PARENT
        assert sent_flags == flags


def test_each_request_gets_its_own_span_id(traced) -> None:
    spans = {sent_traceparent(received(traced, [("traceparent", VALID)]))[1]
             for _ in range(5)}
    assert len(spans) == 5 and PARENT not in spans


def test_only_the_sampled_flag_is_kept(traced) -> None:
    # §3.2.2.5.2: flags other than sampled are not defined by version 00; sent as zero
    assert sent_traceparent(received(traced, [("traceparent", VALID[:-2] + "ff")]))[2] == "01"
    assert sent_traceparent(received(traced, [("traceparent", VALID[:-2] + "fe")]))[2] == "00"


def test_header_name_in_any_case(traced) -> None:
    fields = received(traced, [("TraceParent", VALID), ("TRACESTATE", "congo=t61rcWkgMzE")])
    assert sent_traceparent(fields)[0] == TRACE
    assert fields["tracestate"] == ["congo=t61rcWkgMzE"]


def test_higher_version_downgraded_to_00(traced) -> None:
    trace_id, span_id, flags = sent_traceparent(
        received(traced, [("traceparent", f"cc-{TRACE}-{PARENT}-01-what-the-future-holds")]))
    assert (trace_id, flags) == (TRACE, "01") and span_id != PARENT


MALFORMED = {
    "short": VALID[:-1],
    "long": VALID + "0",
    "extra_field_version_00": VALID + "-00",
    "uppercase": f"00-{TRACE.upper()}-{PARENT}-01",
    "uppercase_parent": f"00-{TRACE}-{PARENT.upper()}-01",
    "trace_id_zero": f"00-{'0' * 32}-{PARENT}-01",
    "parent_id_zero": f"00-{TRACE}-{'0' * 16}-01",
    "version_ff": f"ff-{TRACE}-{PARENT}-01",
    "version_not_hex": f"0x-{TRACE}-{PARENT}-01",
    "bad_flags": f"00-{TRACE}-{PARENT}-0g",
    "garbage": "garbage",
    "empty": "",
    "spaces_inside": f"00-{TRACE}- {PARENT[1:]}-01",
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_traceparent_replaced_and_tracestate_dropped(traced, value) -> None:
    fields = received(traced, [("traceparent", value), ("tracestate", "congo=t61rcWkgMzE")])
    trace_id, _, flags = sent_traceparent(fields)
    assert trace_id != TRACE and trace_id.upper() != TRACE.upper()   # a new trace
    assert flags == "01"                    # sample_ratio 1.0
    assert "tracestate" not in fields       # §3.3: meaningless without its traceparent


def test_two_traceparent_fields_are_invalid(traced) -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    fields = received(traced, [("traceparent", VALID), ("traceparent", other),
                               ("tracestate", "congo=t61rcWkgMzE")])
    trace_id, _, _ = sent_traceparent(fields)
    assert trace_id not in (TRACE, "1" * 32)
    assert "tracestate" not in fields


def test_absent_traceparent_creates_a_trace(traced, unsampled) -> None:
    seen = set()
    for gw, flags in ((traced, "01"), (unsampled, "00"), (traced, "01"), (unsampled, "00")):
        fields = received(gw, [("tracestate", "congo=t61rcWkgMzE")])
        trace_id, _, sent_flags = sent_traceparent(fields)
        assert sent_flags == flags
        assert "tracestate" not in fields   # no traceparent: the tracestate means nothing
        seen.add(trace_id)
    assert len(seen) == 4


def test_tracestate_forwarded_with_a_valid_traceparent(traced) -> None:
    one = "rojo=00f067aa0ba902b7 ,  congo=t61rcWkgMzE"
    assert received(traced, [("traceparent", VALID), ("tracestate", one)])["tracestate"] == [one]
    longest = "k=" + "v" * 256 + ",j=" + "v" * 251      # 512 bytes: the limit
    assert received(traced, [("traceparent", VALID), ("tracestate", longest)])[
        "tracestate"] == [longest]
    # several fields: combined into one (§3.3.1.4)
    fields = received(traced, [("tracestate", "a=1"), ("traceparent", VALID),
                               ("tracestate", "b=2,c=3")])
    assert fields["tracestate"] == ["a=1,b=2,c=3"]
    assert sent_traceparent(fields)[0] == TRACE


@pytest.mark.parametrize("value", [
    "Congo=t61rcWkgMzE",                     # upper-case key
    "congo",                                 # no "="
    "congo=",                                # empty value
    "a=1," + ",".join(f"k{i}=v" for i in range(32)),   # 33 list-members
    "k=" + "v" * 256 + ",j=" + "v" * 252,    # 513 bytes (512 is the limit)
    "",                                      # empty: valid, not worth sending
])
def test_bad_or_empty_tracestate_dropped_traceparent_kept(traced, value) -> None:
    fields = received(traced, [("traceparent", VALID), ("tracestate", value)])
    assert sent_traceparent(fields)[0] == TRACE
    assert "tracestate" not in fields


@pytest.mark.parametrize("host", ["see.test", "await.test"])
def test_filters_see_the_exchange_trace_context(traced, host) -> None:
    fields = received(traced, [("traceparent", VALID)], host=host)
    trace_id, span_id, _ = sent_traceparent(fields)
    assert fields["x-seen-trace"] == [f"{TRACE} {PARENT} {span_id} 1"]
    fields = received(traced, [("traceparent", "junk")], host=host)
    trace_id, span_id, _ = sent_traceparent(fields)
    assert fields["x-seen-trace"] == [f"{trace_id} None {span_id} 1"]


def test_a_filter_setting_traceparent_has_the_last_word(traced) -> None:
    fields = received(traced, [("traceparent", VALID)], host="own.test")
    assert fields["traceparent"] == ["00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"]


def test_without_tracing_fields_pass_untouched(gw) -> None:
    for lines in ([("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE")],
                  [("traceparent", "garbage"), ("tracestate", "Not Valid")],
                  [("traceparent", VALID), ("traceparent", VALID.upper())]):
        fields = received(gw, lines)
        for name in ("traceparent", "tracestate"):
            expected = [v for n, v in lines if n == name] or None
            assert fields.get(name) == expected
    fields = received(gw)
    assert "traceparent" not in fields and "tracestate" not in fields


# --------------------------------------------------------------------------- OTLP


def test_one_server_span_per_sampled_request(exporting, receiver) -> None:
    # sampled by the client: continued and exported with the client's span as parent
    fields = received(exporting, [("traceparent", VALID)],
                      target="/headers?access_token=secret-value")
    _, span_id, _ = sent_traceparent(fields)
    (span,) = receiver.wait("the sampled request's span", trace_id=TRACE, span_id=span_id)
    assert span["service"] == "gw-back"
    assert span["parent"] == PARENT
    assert span["kind"] == SPAN_KIND_SERVER
    assert span["name"] == "GET api"
    attrs = span["attrs"]
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/headers"
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.route"] == "api"
    assert attrs["network.peer.address"] == HOST
    assert attrs["gwcore.end"] == "ok"
    assert attrs["gwcore.cluster"] == "origin"
    assert attrs["gwcore.endpoint"].startswith(f"{HOST}:")
    assert attrs["gwcore.tries"] == 1
    assert "secret-value" not in repr(attrs)        # the query is never recorded
    assert span["status"] != STATUS_ERROR
    assert 0 < span["start"] <= span["end"]
    assert abs(span["start"] / 1e9 - time.time()) < 60     # wall clock, not uptime

    # not sampled by the client, or no traceparent with sample_ratio 0: no span; a sampled
    # request sent after them is exported after them, so waiting for it is enough
    unsampled = f"00-{'a' * 32}-{PARENT}-00"
    received(exporting, [("traceparent", unsampled)])
    fields = received(exporting)
    untraced_id = sent_traceparent(fields)[0]
    marker = f"00-{'b' * 32}-{PARENT}-01"
    received(exporting, [("traceparent", marker)])
    receiver.wait("the marker span", trace_id="b" * 32)
    assert receiver.find(trace_id="a" * 32) == []
    assert receiver.find(trace_id=untraced_id) == []


def test_5xx_span_has_error_status(exporting, receiver) -> None:
    trace = "c" * 32
    with RawConn(exporting.port) as conn:
        conn.send(f"GET /x HTTP/1.1\r\nHost: dead.test\r\ntraceparent: 00-{trace}-{PARENT}-01"
                  f"\r\n\r\n".encode())
        assert conn.read_response().status == 502
    (span,) = receiver.wait("the 502's span", trace_id=trace)
    assert span["status"] == STATUS_ERROR
    assert span["attrs"]["http.response.status_code"] == 502
    assert span["attrs"]["error.type"] == "502"
    assert span["attrs"]["gwcore.cluster"] == "dead"
    assert span["name"] == "GET dead"


@pytest.mark.parametrize("host", ["see.test", "await.test"])
def test_span_ids_match_what_filters_and_upstream_saw(exporting, receiver, host) -> None:
    trace = ("d" if host == "see.test" else "e") * 32
    fields = received(exporting, [("traceparent", f"00-{trace}-{PARENT}-01")], host=host)
    _, span_id, _ = sent_traceparent(fields)
    assert fields["x-seen-trace"] == [f"{trace} {PARENT} {span_id} 1"]
    (span,) = receiver.wait("the filtered route's span", trace_id=trace)
    assert (span["span_id"], span["parent"]) == (span_id, PARENT)


def test_two_hops_keep_the_trace_id_with_a_span_each(front, exporting, receiver) -> None:
    # a client span: front continues it, back continues front's
    fields = received(front, [("traceparent", f"00-{'f' * 32}-{PARENT}-01")])
    trace_id, back_span, flags = sent_traceparent(fields)
    assert (trace_id, flags) == ("f" * 32, "01")
    (front_span,) = receiver.wait("front's span", trace_id="f" * 32, service="gw-front")
    (back,) = receiver.wait("back's span", trace_id="f" * 32, service="gw-back")
    assert front_span["parent"] == PARENT
    assert back["parent"] == front_span["span_id"]
    assert back["span_id"] == back_span
    assert len({PARENT, front_span["span_id"], back_span}) == 3
    # no traceparent: front starts the trace (sample_ratio 1.0), back continues it although
    # its own sample_ratio is 0: one trace id, two spans, front's without a parent
    fields = received(front)
    trace_id, back_span, flags = sent_traceparent(fields)
    assert flags == "01"
    (front_span,) = receiver.wait("front's root span", trace_id=trace_id, service="gw-front")
    (back,) = receiver.wait("back's child span", trace_id=trace_id, service="gw-back")
    assert front_span["parent"] is None
    assert back["parent"] == front_span["span_id"] and back["span_id"] == back_span


def test_queued_spans_are_flushed_when_the_worker_exits(origin, dead_port, receiver,
                                                        tmp_path) -> None:
    otlp = {"endpoint": receiver.url, "service_name": "gw-exiting", "timeout": "5s"}
    gw = _start(lambda port: _config(port, origin.port, dead_port,
                                     {"sample_ratio": 1.0, "otlp": otlp}),
                tmp_path, "gw-exiting", batch_delay_ms=600_000)   # no export on its own
    try:
        trace_ids = {sent_traceparent(received(gw))[0] for _ in range(3)}
        assert receiver.find(service="gw-exiting") == []
    finally:
        assert gw.proc.stop(grace=15) == 0      # SIGTERM: drain, flush, exit
    spans = receiver.wait("the spans flushed at exit", count=3, service="gw-exiting")
    assert {s["trace_id"] for s in spans} == trace_ids
