"""Model routing at proxy speed: which version of which model serves a request.

A model route (``model_from`` in its config) has no cluster of its own. The proxy session
(gwcore/proxy/_session.pyx) receives the request body whole (up to
``model_from.max_body_bytes``), then asks the route's ``ModelRoute.choose``: the model the
request names (a JSON body field read by ``body.FieldReader``, a path group, or a request
field), the version (pinned by ``version_header`` when the route allows it, else the model's
weighted split — sticky per client when ``sticky_on`` says so, gwcore/inference/split.py),
and a place among the version's ``max_in_flight`` (a FIFO queue by route priority,
gwcore/limits/concurrency.py). The version is sent upstream and back to the client in
``version_header`` (default ``X-Model-Version``), and logged.

Fallbacks: when the version's cluster cannot be connected to, times out, or answers 429 or
503 and its own retries are spent, the session asks ``fallback`` for the next entry of the
model's ``fallback`` list (a cluster, or a version by name) and sends the buffered request
there, each try within that cluster's retry budget; a ``Retry-After`` on the 429/503 keeps
that version out of new splits until it has passed (the Kubernetes Gateway API Inference
Extension's endpoint picker avoids saturated pools the same way).

Shadow traffic: ``mirror`` sends a copy of ``percent`` of a model's requests (spread evenly:
an accumulator, not a coin; both in gwcore/inference/_mirror.pyx, called by the session) to a
candidate cluster,
fire-and-forget; its status and latency are counted and logged next to the primary's.

Errors are answered in the OpenAI error shape (``{"error": {"message", "type", "param",
"code"}}``): an unknown model 404, a body naming none or not JSON 400, a body over the bound
413, a full or slow queue 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from gwcore.config import Config, Model, ModelFrom, StickyOn
from gwcore.config import Route as RouteConfig
from gwcore.filters.base import Response
from gwcore.inference.body import BodyError, FieldReader
from gwcore.inference.split import WeightedSplit

log = logging.getLogger("gwcore")

DEFAULT_VERSION_HEADER = "X-Model-Version"


def openai_error(status: int, message: str, kind: str, code: str | None,
                 param: str | None = None, retry_after: int | None = None) -> Response:
    """A JSON error response in the OpenAI API's shape (``error.message``, ``type``,
    ``param``, ``code``); ``retry_after``: seconds for a ``Retry-After`` field."""
    body = json.dumps({"error": {"message": message, "type": kind, "param": param,
                                 "code": code}}).encode()
    headers = [(b"Content-Type", b"application/json")]
    if retry_after is not None:
        headers.append((b"Retry-After", b"%d" % retry_after))
    return Response(status, headers, body)


class Version:
    """Where a request of a model goes: a version of it, or a fallback cluster.
    ``label``: what the version field and the access log say (the version's name, or the
    fallback cluster's); ``cluster``: the runtime cluster (gwcore.proxy._upstream.Cluster);
    ``limiter``: its max_in_flight (gwcore.limits.concurrency.Limiter) or None."""

    __slots__ = ("backoff_until", "cluster", "label", "limiter", "model", "requests", "value")

    def __init__(self, model: ModelRuntime, label: str, cluster: Any, limiter: Any) -> None:
        self.model, self.label, self.cluster, self.limiter = model, label, cluster, limiter
        self.value = label.encode()
        self.backoff_until = 0.0     # monotonic seconds: out of new splits until then
        self.requests = 0            # served (first tries and fallbacks), this worker


class ClusterSplit:
    """A route's weighted split between clusters (``cluster: [{name: a, weight: 90}, ...]``,
    a canary of any route): ``pick`` gives the cluster of the next request (smooth weighted
    round-robin, the same code as a model's versions)."""

    def __init__(self, clusters: list[Any], weights: list[int]) -> None:
        self.clusters, self.split = clusters, WeightedSplit(weights)

    def pick(self) -> Any:
        return self.clusters[self.split.pick()]


class ModelRuntime:
    """One model in one worker: its versions and split, sticky key, mirror and fallbacks.
    Shared by every route serving it."""

    def __init__(self, name: str, cfg: Model, clusters: dict[str, Any], mirror: Any) -> None:
        from gwcore.config import Concurrency
        from gwcore.limits.concurrency import Limiter

        self.name, self.cfg = name, cfg
        self.versions = []
        for v in cfg.versions:
            limiter = None
            if cfg.max_in_flight is not None:
                limiter = Limiter(f"model {name} version {v.name}", Concurrency(
                    max=cfg.max_in_flight, queue=cfg.queue, queue_timeout=cfg.queue_timeout))
            self.versions.append(Version(self, v.name, clusters[v.cluster], limiter))
        by_name = {v.label: v for v in self.versions}
        self.fallbacks = [by_name.get(fb) or Version(self, fb, clusters[fb], None)
                          for fb in cfg.fallback]
        self.split = WeightedSplit([v.weight for v in cfg.versions])
        # what serves instead of a version backed off: the others in the split, then the
        # fallbacks
        self.standby = [v for v, c in zip(self.versions, cfg.versions) if c.weight] + [
            v for v in self.fallbacks if v not in self.versions]
        sticky = cfg.sticky_on
        self.sticky: StickyOn | None = sticky if isinstance(sticky, StickyOn) else None
        self.sticky_field = (self.sticky.header.lower().encode()
                             if self.sticky is not None and self.sticky.header else None)
        self.mirror = mirror                # gwcore.inference._mirror.Mirror, or None
        self.fallbacks_taken = 0
        self.refused = 0                    # 503: queue full or queued too long

    def sticky_key(self, ex: Any) -> bytes | None:
        """The client's key for a sticky split, or None (no sticky_on, or the key is
        missing from this request: it is split like any other)."""
        s = self.sticky
        if s is None:
            return None
        if s.source_ip:
            return ex.client_address.encode()
        if s.header is not None:
            return ex.request.get(self.sticky_field) if ex.request is not None else None
        claims = ex.state.get("jwt_claims")
        value = claims.get(s.jwt_claim) if claims else None
        return None if value is None else str(value).encode()

    def pick(self, ex: Any) -> Version:
        """A version by the split (sticky or smooth weighted round-robin), avoiding one
        backed off by a Retry-After while another version or a fallback can serve."""
        key = self.sticky_key(ex) if self.sticky is not None else None
        v = self.versions[self.split.pick() if key is None else self.split.pick_sticky(key)]
        if v.backoff_until and v.backoff_until > (now := time.monotonic()):
            return next((o for o in self.standby if o.backoff_until <= now), v)
        return v



class ModelRoute:
    """A model route's runtime in one worker (the session calls ``choose``, then the chosen
    version's ``model.mirror``, ``next_fallback``/``take_fallback``, and ``on_log`` where a
    model has ``max_in_flight``)."""

    def __init__(self, route: RouteConfig, models: dict[str, ModelRuntime],
                 access_log: Any = None) -> None:
        mf: ModelFrom = route.model_from          # type: ignore[assignment]
        self.max_body = int(mf.max_body_bytes)
        self.reader = FieldReader(mf.json_field) if mf.json_field is not None else None
        self.regex = re.compile(mf.path_regex) if mf.path_regex is not None else None
        self.group: str | int = ("model" if self.regex is not None
                                 and "model" in self.regex.groupindex else 1)
        self.header = mf.header.lower().encode() if mf.header is not None else None
        self.param = mf.json_field or mf.header or "path"
        self.models = ({n: models[n] for n in route.models} if route.models is not None
                       else dict(models))
        name = route.version_header or DEFAULT_VERSION_HEADER
        self.pin = (route.version_header.lower().encode()
                    if route.version_header is not None else None)
        self.field = name.encode()
        self.field_lower = name.lower().encode()
        # each version's (and fallback's) field line, sent upstream and to the client
        self.lines = {v: self.field + b": " + v.value + b"\r\n"
                      for m in self.models.values() for v in (*m.versions, *m.fallbacks)}
        self.priority = route.priority
        self.access_log = access_log
        # seconds a queued request may wait before the session gives up on it: the longest
        # queue_timeout of its models, and a second for the queue's own answer to arrive
        self.wait_bound = max(m.cfg.queue_timeout for m in self.models.values()) + 1.0
        # whether on_log has places to give back (the session skips it otherwise)
        self.limited = any(m.cfg.max_in_flight is not None for m in self.models.values())

    def too_large(self) -> Response:
        """The 413 for a body over ``model_from.max_body_bytes``."""
        return openai_error(413, f"the request body is over {self.max_body} bytes",
                            "invalid_request_error", "body_too_large")

    # -- the request ----------------------------------------------------------------------

    def model_name(self, ex: Any, body: bytes | None) -> str | Response:
        """The model the request names, or the 400 to answer."""
        if self.reader is not None:
            if not body:
                return openai_error(400, f"the request body names no model (a JSON object "
                                    f"with {self.param!r} is expected)",
                                    "invalid_request_error", "model_not_given", self.param)
            try:
                name = self.reader.read(body)
            except BodyError as e:
                return openai_error(e.status, f"the request body is not usable: {e}",
                                    "invalid_request_error", "invalid_body", self.param)
        elif self.regex is not None:
            m = self.regex.search(ex.path.decode("latin-1"))
            name = m.group(self.group) if m is not None else None
        else:
            value = ex.request.get(self.header) if ex.request is not None else None
            name = value.decode("latin-1") if value is not None else None
        if not name:
            return openai_error(400, f"the request names no model ({self.param})",
                                "invalid_request_error", "model_not_given", self.param)
        return name

    def choose(self, ex: Any, body: bytes | None) -> Version | Response | asyncio.Future:
        """The version serving this request (recorded on the exchange: ``model``,
        ``model_version``, and the version field sent upstream), a Response to answer
        (400, 404, 503), or a future of either while the version's queue holds it."""
        name = self.model_name(ex, body)
        if isinstance(name, Response):
            return name
        model = self.models.get(name)
        if model is None:
            return openai_error(404, f"The model '{name[:200]}' does not exist",
                                "invalid_request_error", "model_not_found", "model")
        ex.model = name
        version = None
        if self.pin is not None and ex.request is not None:
            pinned = ex.request.get(self.pin)
            if pinned is not None:
                version = next((v for v in model.versions if v.value == pinned), None)
                if version is None:
                    return openai_error(404, f"The model '{name}' has no version "
                                        f"'{pinned.decode('latin-1')[:100]}'",
                                        "invalid_request_error", "version_not_found",
                                        self.field.decode())
        if version is None:
            version = model.pick(ex)
        if version.limiter is not None:
            got = version.limiter.acquire(ex, self.priority)
            if isinstance(got, Response):
                return self._refused(model)
            if got is not None:
                return asyncio.ensure_future(self._queued(got, version))
        return self._take(ex, version)

    async def _queued(self, waiting: Any, version: Version) -> Version | Response:
        got = await waiting
        if got is not None:
            return self._refused(version.model)
        return version

    def granted(self, ex: Any, got: Version | Response) -> Version | Response:
        """What a queued request goes on with once its future is done (its result)."""
        return self._take(ex, got) if isinstance(got, Version) else got

    def _refused(self, model: ModelRuntime) -> Response:
        model.refused += 1
        return openai_error(503, f"The model '{model.name}' is overloaded: too many requests "
                            "under way", "server_error", "model_overloaded", None, 1)

    def _take(self, ex: Any, version: Version) -> Version:
        # the session sends ``field: value`` upstream (the client's own field dropped)
        version.requests += 1
        ex.model_version = version.label
        return version

    def next_fallback(self, ex: Any, retry_after: float | None) -> tuple[int, Version] | None:
        """The next fallback after the version that just failed, and its place in the list
        (None: none left), not taken yet: a version whose max_in_flight is reached is passed
        over (a fallback never queues). A Retry-After (seconds) on a 429/503 keeps the failed
        version out of new splits until it passes."""
        model = self.models.get(ex.model)
        if model is None:
            return None
        current = self._current(ex, model)
        if retry_after is not None and current is not None:
            current.backoff_until = max(current.backoff_until, time.monotonic() + retry_after)
        for i in range(ex.state.get("model_fallback", 0), len(model.fallbacks)):
            nxt = model.fallbacks[i]
            lim = nxt.limiter
            if nxt is not current and (lim is None or (lim.in_flight < lim.max
                                                       and not lim.waiters)):
                return i, nxt
        return None

    def take_fallback(self, ex: Any, i: int, version: Version) -> Version:
        """The request goes to ``version``, ``i``-th of the fallbacks: the failed version's
        place among its max_in_flight is given back, one of this version's taken."""
        model = version.model
        current = self._current(ex, model)
        state = ex.state
        held = state.get("concurrency")
        if current is not None and current.limiter is not None and held \
                and current.limiter in held:
            held.remove(current.limiter)
            current.limiter.release()
        if version.limiter is not None:
            version.limiter.acquire(ex, self.priority)      # free: next_fallback checked
        state["model_fallback"] = i + 1
        model.fallbacks_taken += 1
        return self._take(ex, version)

    @staticmethod
    def _current(ex: Any, model: ModelRuntime) -> Version | None:
        """The version (or fallback) the exchange was last sent to."""
        return next((v for v in (*model.versions, *model.fallbacks)
                     if v.label == ex.model_version), None)

    # -- the end --------------------------------------------------------------------------

    def on_log(self, ex: Any) -> None:
        """The exchange ended: its place among the version's max_in_flight goes to the next
        request waiting."""
        state = ex.state
        state["concurrency_ended"] = True
        for limiter in state.pop("concurrency", None) or ():
            limiter.release()


class MirrorLog:
    """The access log line of a mirrored copy once it ended (``"mirror": true``), next to the
    primary request's status, duration and version (the Mirror's ``on_done``; its context is
    the primary's exchange). Counting is the Mirror's own."""

    def __init__(self, cluster: str, access_log: Any) -> None:
        self.cluster, self.access_log = cluster, access_log

    def __call__(self, ex: Any, status: int, seconds: float, error: str | None) -> None:
        started = time.time() - seconds
        primary = ex.duration if ex.t_end else None
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
            + f".{int(started * 1000) % 1000:03d}Z",
            "mirror": True, "request_id": ex.request_id, "model": ex.model,
            "cluster": self.cluster, "status": status, "duration": round(seconds, 6),
            "error": error, "primary_status": ex.status or None,
            "primary_duration": round(primary, 6) if primary is not None else None,
            "primary_version": ex.model_version,
        }
        self.access_log.record_line(json.dumps(line, separators=(",", ":")).encode() + b"\n")


def build(cfg: Config, clusters: dict[str, Any], access_log: Any = None
          ) -> dict[str, ModelRuntime]:
    """Each model's runtime in this worker (mirrors made, their outcomes logged to
    ``access_log`` when there is one)."""
    from gwcore.inference._mirror import Mirror

    out = {}
    for name, m in cfg.models.items():
        mirror = None
        if m.mirror is not None:
            done = MirrorLog(m.mirror.cluster, access_log) if access_log is not None else None
            mirror = Mirror(clusters[m.mirror.cluster], m.mirror.max_in_flight, done,
                            m.mirror.percent)
        out[name] = ModelRuntime(name, m, clusters, mirror)
    return out
