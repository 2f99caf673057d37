"""The ``rate_limit`` route filter: named GCRA limits (``rate_limits:`` in the config) checked
after the route's JWT filter and before its cache lookup (DESIGN.md §1).

Each limit of a route is checked in the order the route lists them; the first that refuses
answers ``429`` with ``Retry-After`` (whole seconds, rounded up) and, unless the limit says
``headers: never``, the fields of the IETF httpapi draft *RateLimit header fields for HTTP*,
draft-ietf-httpapi-ratelimit-headers-12 (November 2026), in its Structured Fields syntax:

- ``RateLimit-Policy``: a List with one Item per limit of the route: the limit's name as an
  sf-string, ``q`` (its quota: N of ``rate: N/period``), ``w`` (the window: the period in
  seconds; both sf-integers, so a fractional N scales them: ``0.5/s`` is ``q=1;w=2``) and ``gwcore-burst`` (a vendor parameter, as the draft asks for service-specific
  ones), e.g. ``"per_user";q=100;w=1;gwcore-burst=200``;
- ``RateLimit``: the Item of the limit with the lowest remaining quota: ``r`` the requests
  that would still be admitted now, ``t`` the seconds until its quota is whole again — on a
  429 the same point in time as ``Retry-After``, as the draft asks — e.g.
  ``"per_user";r=0;t=1``.

A limit with ``headers: always`` also adds both fields to admitted responses (in
``on_response_head``, so only routes that ask for it pay for that phase).

Keys: ``source_ip`` (the client's address: IPv4, an IPv4-mapped IPv6 address as its IPv4
one, other IPv6 addresses by their network of the limit's ``ipv6_prefix``, /64 by default:
gwcore.limits.source_key), ``route`` (the route's name), ``{header: NAME}``
(the request field's first value), ``{jwt_claim: NAME}`` (a claim of the token the route's
``jwt`` filter verified, ``exchange.state["jwt_claims"]``), or a list of them; a request
without one of its parts (no such field, no token, no such claim) is not counted by that
limit. Each limit's keys are its own (salted with its name); a limit named by several routes
is one limit across them.

Local limits keyed by ``source_ip`` or ``route`` alone (without ``headers: always``) are not
checked here: the proxy session checks them itself before any filter runs
(gwcore.limits._gcra.RouteLimits, built by gwcore.runtime), with no request view and no
Python call; this filter keeps the rest, and ``refuse`` answers for both.

Local limits (``scope: local``) use the host's shared table (gwcore.limits.Table, made by the
master before it forks): exact across the workers, kept across reloads. A limit that admits a
request has counted it even if a later limit of the route refuses it (as Envoy's do).
Global limits (``scope: global``) are gwcore.limits.redis_limits's; only then does
``on_request`` return an awaitable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from gwcore.config import RateLimit, RateLimitKey
from gwcore.filters.base import Exchange, Response
from gwcore.limits._gcra import source_key

KeyFn = Callable[[Exchange], "str | bytes | None"]

DEFAULT_BODY = Response.error(429, "rate limit exceeded").body
NS = 1_000_000_000
SF_INTEGER_MAX = 999_999_999_999_999     # RFC 9651 sf-integer: at most 15 digits


def key_function(parts: list[str | RateLimitKey], ipv6_prefix: int = 64) -> KeyFn:
    """The function computing a limit's key from an exchange (None: the request lacks a part);
    ``ipv6_prefix``: the network length of an IPv6 client's ``source_ip`` key."""
    fns = [_part(p, ipv6_prefix) for p in parts]
    if len(fns) == 1:
        return fns[0]

    def joined(exchange: Exchange) -> bytes | None:
        out = []
        for fn in fns:
            v = fn(exchange)
            if v is None:
                return None
            out.append(v.encode() if isinstance(v, str) else v)
        return b"\x1f".join(out)
    return joined


def _part(part: str | RateLimitKey, ipv6_prefix: int = 64) -> KeyFn:
    if part == "source_ip":
        return lambda exchange: source_key(exchange.client_address, ipv6_prefix)
    if part == "route":
        return lambda exchange: exchange.route_name
    assert isinstance(part, RateLimitKey)
    if part.header is not None:
        name = part.header.encode()
        return lambda exchange: exchange.request.header(name)
    claim = part.jwt_claim

    def from_claims(exchange: Exchange) -> str | None:
        claims = exchange.state.get("jwt_claims")
        v = claims.get(claim) if claims else None
        return None if v is None else v if isinstance(v, str) else str(v)
    return from_claims


def quota_window(rate: str) -> tuple[int, int]:
    """``q`` and ``w`` of a rate ``N/s|m|h`` as the integers the draft's fields need, with the
    same ratio: ``100/m`` → (100, 60); a fractional N is scaled, ``0.5/s`` → (1, 2), ``1.5/m``
    → (3, 120)."""
    count, _, unit = rate.partition("/")
    n = Fraction(count.strip())
    period = {"s": 1, "m": 60, "h": 3600}[unit.strip()]
    q, w = n.numerator, period * n.denominator
    if max(q, w) > SF_INTEGER_MAX:          # many decimals: the nearest ratio that fits
        r = (n / period).limit_denominator(10**9)
        q, w = max(1, r.numerator), r.denominator
    return q, w


def sf_string(name: str) -> bytes:
    """``name`` as a Structured Fields sf-string (RFC 9651 §3.3.3): quoted, ``\\`` and ``"``
    escaped; ValueError for characters an sf-string cannot hold (config names never have
    them: gwcore.config's ``_LIMIT_NAME``)."""
    if not all(" " <= c <= "~" for c in name):
        raise ValueError(f"rate limit name {name!r}: only printable ASCII fits an sf-string")
    return b'"%s"' % name.replace("\\", "\\\\").replace('"', '\\"').encode()


class Policy:
    """One named limit as a route's filter uses it: its key function, its check (``take``,
    from the shared table or Redis), and its RateLimit-Policy item."""

    def __init__(self, name: str, cfg: RateLimit, limit: Any) -> None:
        self.name, self.cfg, self.limit = name, cfg, limit
        self.key = key_function(cfg.parts, cfg.ipv6_prefix)
        self.body = DEFAULT_BODY if cfg.body is None else cfg.body.encode()
        quota, window = quota_window(cfg.rate)
        self.quoted = sf_string(name)
        self.item = (b'%s;q=%d;w=%d;gwcore-burst=%d'
                     % (self.quoted, quota, window, cfg.burst_size))
        self.refused = 0                # requests this limit refused (this worker)


def _seconds(ns: int) -> int:
    return max(0, math.ceil(ns / NS))


class RateLimitFilter:
    """The limits of one route (``Policy`` objects, in the route's order). ``local``: checked
    at once; ``remote``: a gwcore.limits.redis_limits.RemoteCheck (or None)."""

    def __init__(self, local: list[Policy], remote: Any = None) -> None:
        self.local = local
        self.remote = remote
        policies = local + (remote.policies if remote is not None else [])
        self.policy_field = b", ".join(p.item for p in policies if p.cfg.headers != "never")
        self.always = any(p.cfg.headers == "always" for p in policies)
        self.limited = 0                # requests this filter refused (this worker)
        if self.always:
            self.on_response_head = self._add_fields

    def on_request(self, exchange: Exchange) -> Any:
        best = None
        for p in self.local:
            key = p.key(exchange)
            if key is None:
                continue
            ok, remaining, reset, retry = p.limit.take(key)
            if not ok:
                return self.refuse(p, retry)
            if self.always and (best is None or remaining < best[0]):
                best = (remaining, p, reset)
        if self.remote is not None:
            return self.remote.check(self, exchange, best)
        if best is not None:
            exchange.state["rate_limit"] = best
        return None

    def refuse(self, p: Policy, retry_ns: int) -> Response:
        """The 429 of policy p, which would admit a request in retry_ns nanoseconds."""
        self.limited += 1
        p.refused += 1
        wait = max(1, _seconds(retry_ns))
        headers = [(b"Retry-After", b"%d" % wait)]
        if p.cfg.headers != "never":
            headers += [(b"RateLimit-Policy", self.policy_field),
                        (b"RateLimit", b"%s;r=0;t=%d" % (p.quoted, wait))]
        return Response(429, headers, p.body)

    def _add_fields(self, exchange: Exchange, response: Response) -> None:
        best = exchange.state.get("rate_limit")
        if best is None:
            return
        remaining, p, reset = best
        response.headers.set(b"RateLimit-Policy", self.policy_field)
        response.headers.set(b"RateLimit", b"%s;r=%d;t=%d" % (p.quoted, remaining,
                                                              _seconds(reset)))
