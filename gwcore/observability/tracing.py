"""OTLP export of one SERVER span per sampled request (``tracing.otlp``; the ``otel`` extra).

The trace context itself — traceparent checked, continued or started, a new span id per hop,
the sampling decision — is made in the compiled session (gwcore/proxy/_session.pyx,
src_c/trace.c) and kept on the exchange (``trace_id``, ``parent_id``, ``span_id``,
``sampled``). This module only reports what happened: at each sampled exchange's end the
session calls ``OtlpSpans.on_log(exchange)``, which records a finished span through the
OpenTelemetry SDK with the exchange's own ids (a ``TracerProvider`` whose id generator hands
out the ids set just before each span starts), its times (monotonic ns turned into wall-clock
ns by an offset taken once) and HTTP semantic-convention attributes. The SDK's
``BatchSpanProcessor`` queues the span; its own thread batches and exports them with
``OTLPSpanExporter`` (OTLP/HTTP, protobuf), so the event loop never waits for the collector.
A worker flushes what is queued when it exits (at most ``otlp.timeout``).

Nothing here is imported unless the config has ``tracing.otlp``; ``missing()`` is the check
``gwcore check`` and ``serve`` run, so that a config naming OTLP without the SDK installed is
refused up front. The SDK's ``OTEL_BSP_*`` environment variables (schedule delay, queue and
batch sizes) apply.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwcore.config import Otlp, Tracing
    from gwcore.proxy._exchange import Exchange

__all__ = ["PIP_INSTALL", "OtlpSpans", "build", "missing"]

log = logging.getLogger("gwcore")

PIP_INSTALL = ("pip install 'gwcore[otel]' (or: pip install opentelemetry-sdk "
               "opentelemetry-exporter-otlp-proto-http)")

# OpenTelemetry HTTP semantic conventions: methods reported as they are; others as _OTHER
_KNOWN_METHODS = frozenset(("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST",
                            "PUT", "TRACE"))
_ERROR_ENDS = frozenset(("upstream_error", "timeout"))   # gateway failures without a 5xx sent


def missing() -> str | None:
    """None when the OpenTelemetry SDK and its OTLP/HTTP exporter can be imported; else the
    problem and how to install them (for a config error under ``tracing.otlp``)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as e:
        name = e.name or "opentelemetry"
        return (f"needs the OpenTelemetry SDK and its OTLP/HTTP exporter, not installed here "
                f"(no module {name!r}): {PIP_INSTALL}")
    return None


def build(tracing: Tracing | None) -> OtlpSpans | None:
    """The span exporter of this config's ``tracing.otlp``, or None (no OTLP export)."""
    if tracing is None or tracing.otlp is None:
        return None
    return OtlpSpans(tracing.otlp)


def _preset_ids() -> Any:
    """An SDK IdGenerator that returns the ids last set on it: the SDK names a span with the
    ids the gateway chose (and sent upstream), not with new ones of its own."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class PresetIds(IdGenerator):
        trace_id = 0
        span_id = 0

        def generate_trace_id(self) -> int:
            return self.trace_id

        def generate_span_id(self) -> int:
            return self.span_id

    return PresetIds()


class OtlpSpans:
    """One SERVER span per exchange given to ``on_log``, exported in batches over OTLP/HTTP.

    Span: name ``"<METHOD> <route name>"`` (``"<METHOD>"`` without a route; ``HTTP`` for a
    method outside the semantic conventions' list); trace id, span id and parent span id
    those of the exchange (the parent is the client's span, none when the gateway started
    the trace); start and end the exchange's ``t_received`` and ``t_end``. Attributes:
    ``http.request.method`` (``_OTHER`` and ``http.request.method_original`` for other
    methods), ``url.path`` (the normalised path; never the query, which may carry secrets),
    ``http.response.status_code`` (when a response was sent), ``http.route`` (the route's
    name), ``network.peer.address`` (the client), ``gwcore.end``, ``gwcore.cluster``,
    ``gwcore.endpoint``, ``gwcore.tries``, ``gwcore.request_id`` (when known) and
    ``error.type`` (the status code of a 5xx, or the end, ``upstream_error`` / ``timeout``,
    when none was sent). Status ERROR for those, unset otherwise (a 4xx is the client's).
    Resource: ``service.name`` = ``otlp.service_name``.

    ``exporter``: another SDK SpanExporter instead of OTLP (tests)."""

    def __init__(self, cfg: Otlp, exporter: Any = None) -> None:
        from opentelemetry.context import Context
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
            set_span_in_context,
        )

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=cfg.endpoint, headers=dict(cfg.headers),
                                        timeout=cfg.timeout)
        self.timeout = cfg.timeout
        self._ids = _preset_ids()
        # the session samples; the SDK records what it is given (ALWAYS_ON, not ParentBased)
        self.provider = TracerProvider(sampler=ALWAYS_ON, id_generator=self._ids,
                                       resource=Resource.create(
                                           {"service.name": cfg.service_name}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer("gwcore")
        self._root = Context()          # no parent: never the thread's current context
        self._SpanContext, self._NonRecordingSpan = SpanContext, NonRecordingSpan
        self._set_span_in_context = set_span_in_context
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._server = SpanKind.SERVER
        self._error = Status(StatusCode.ERROR)
        # exchange times are CLOCK_MONOTONIC ns (time.monotonic_ns's clock); spans want epoch ns
        self._wall_offset = time.time_ns() - time.monotonic_ns()
        self._failures = 0

    def on_log(self, ex: Exchange) -> None:
        """Record the span of ``ex`` (an exchange that ended, sampled). Never raises: a
        failure is logged (the first, then every 1000th) and the span dropped."""
        try:
            self._record(ex)
        except Exception:       # tracing must never break a request's end
            self._failures += 1
            if self._failures % 1000 == 1:
                log.exception("tracing: recording a span failed (%d so far)", self._failures)

    def _record(self, ex: Exchange) -> None:
        trace_id = int(ex.trace_id, 16)
        self._ids.trace_id = trace_id
        self._ids.span_id = int(ex.span_id, 16)
        if ex.parent_id is not None:
            parent = self._SpanContext(trace_id, int(ex.parent_id, 16), is_remote=True,
                                       trace_flags=self._sampled)
            context = self._set_span_in_context(self._NonRecordingSpan(parent), self._root)
        else:
            context = self._root
        method = ex.method.decode("latin-1") if ex.method else "_OTHER"
        attributes: dict[str, Any] = {}
        if method in _KNOWN_METHODS:
            attributes["http.request.method"] = method
            name = method
        else:
            attributes["http.request.method"] = "_OTHER"
            attributes["http.request.method_original"] = method
            name = "HTTP"
        if ex.path is not None:
            attributes["url.path"] = ex.path.decode("latin-1")
        status = ex.status
        if status:
            attributes["http.response.status_code"] = status
        if ex.route_name is not None:
            attributes["http.route"] = ex.route_name
            name = f"{name} {ex.route_name}"
        if ex.client_address:
            attributes["network.peer.address"] = ex.client_address
        attributes["gwcore.end"] = ex.end
        if ex.cluster is not None:
            attributes["gwcore.cluster"] = ex.cluster.name
        if ex.endpoint is not None:
            attributes["gwcore.endpoint"] = ex.endpoint
        attributes["gwcore.tries"] = ex.tries
        if ex.request_id is not None:
            attributes["gwcore.request_id"] = ex.request_id
        error = None
        if status >= 500:
            error = str(status)
        elif ex.end in _ERROR_ENDS:
            error = ex.end
        if error is not None:
            attributes["error.type"] = error
        span = self._tracer.start_span(name, context=context, kind=self._server,
                                       attributes=attributes,
                                       start_time=ex.t_received + self._wall_offset)
        if error is not None:
            span.set_status(self._error)
        span.end(end_time=(ex.t_end or time.monotonic_ns()) + self._wall_offset)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Export what is queued and stop the export thread, waiting at most ``timeout``
        seconds (default ``otlp.timeout``); True when that finished in time."""
        done = threading.Thread(target=self.provider.shutdown, name="gwcore-otlp-shutdown",
                                daemon=True)
        done.start()
        done.join(self.timeout if timeout is None else timeout)
        return not done.is_alive()
