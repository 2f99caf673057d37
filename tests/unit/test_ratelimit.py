"""Local rate limits: GCRA arithmetic at its boundaries through the compiled Limit (burst
exhausted, exactly one emission interval, a clock stepping backwards, keys of two limits kept
apart, recycling at 1 slot per key), a table shared with a forked child, the ``rate_limits``
config and its errors (key paths), and the ``rate_limit`` filter on exchanges: the 429, its
Retry-After and the draft-ietf-httpapi-ratelimit-headers-12 fields, key descriptors (source
address, field, JWT claim, route, lists; a missing part is not limited), ``headers: always``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from gwcore.config import ConfigError, parse
from gwcore.filters.base import Exchange, Response
from gwcore.filters.ratelimit import Policy, RateLimitFilter
from gwcore.http import parse_request
from gwcore.limits import WAYS, Table, now_ns
from gwcore.proxy._router import Route

S = 1_000_000_000
T0 = 10_000 * S


def test_burst_then_exactly_one_per_emission_interval() -> None:
    lim = Table(64, seed=1).limit("a", 10, 1.0, 5)            # 10/s: T = 100 ms, burst 5
    assert (lim.T, lim.tau) == (S // 10, 4 * S // 10)
    for i in range(5):
        assert lim.take("k", T0) == (True, 4 - i, (i + 1) * lim.T, 0)
    ok, remaining, reset, retry = lim.take("k", T0)
    assert (ok, remaining, reset, retry) == (False, 0, 5 * lim.T, lim.T)    # burst exhausted
    assert lim.take("k", T0 + lim.T - 1)[0] is False            # 1 ns early
    assert lim.take("k", T0 + lim.T - 1)[3] == 1
    assert lim.take("k", T0 + lim.T)[:2] == (True, 0)           # exactly one interval later
    assert lim.take("k", T0 + lim.T)[0] is False


def test_clock_stepping_backwards_never_admits_more() -> None:
    lim = Table(64, seed=2).limit("a", 1, 1.0, 2)
    assert lim.take("k", T0)[0] and lim.take("k", T0)[0]
    tat = lim.peek("k")
    for back in (1, S, 100 * S):
        ok, _, _, retry = lim.take("k", T0 - back)
        assert not ok and retry == tat - lim.tau - (T0 - back)
    assert lim.peek("k") == tat                                 # refusals change nothing
    assert lim.take("k", T0 + S)[0] and not lim.take("k", T0 + S)[0]


def test_limits_keep_their_keys_apart_and_idle_slots_are_recycled() -> None:
    table = Table(WAYS, seed=3)                                 # one bucket
    a, b = table.limit("a", 1, 1.0, 1), table.limit("b", 1, 1.0, 1)
    assert a.take("k", T0)[0] and b.take("k", T0)[0]            # same key, two limits
    assert not a.take("k", T0)[0] and not b.take(b"k", T0)[0]   # str and bytes are one key
    for i in range(50):                                         # idle keys make room
        assert a.take(f"x{i}", T0 + (i + 1) * 2 * S)[0]
    assert a.overflows == 0
    assert table.usage(T0 + 200 * S) == (0, 2)     # each new key took the first idle slot


def test_full_bucket_charges_new_keys_together_and_keeps_active_ones() -> None:
    table = Table(WAYS, seed=4)
    lim = table.limit("a", 1, 60.0, 1)
    for i in range(WAYS):
        assert lim.take(f"k{i}", T0)[0]
    assert lim.take("new1", T0)[0] and lim.overflows == 1       # shared overflow cell
    assert not lim.take("new2", T0)[0]
    assert all(not lim.take(f"k{i}", T0)[0] for i in range(WAYS))   # none lost its state


def test_limit_refuses_times_that_overflow_int64() -> None:
    table = Table(64, seed=5)
    with pytest.raises(ValueError, match="emission interval"):
        table.limit("slow", 1e-12, 3600.0, 1)              # T = 3.6e24 ns: the cast was UB
    with pytest.raises(ValueError, match="burst"):
        table.limit("big", 1, 3600.0, 1 << 40)             # (burst - 1) * T overflowed
    lim = table.limit("edge", 1, 1.0, ((1 << 62) // S))     # just below: accepted
    assert lim.take("k", T0)[0] and lim.tau == (lim.burst - 1) * S


def test_a_forked_child_shares_the_table() -> None:
    lim = Table(1024).limit("a", 1, 3600.0, 3)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if all(lim.take("k")[0] for _ in range(2)) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert lim.take("k")[0] and not lim.take("k")[0]            # 2 used by the child
    assert abs(now_ns() - __import__("time").monotonic_ns()) < S


BASE = """
listeners: [{name: p, address: "127.0.0.1:8080"}]
clusters: [{name: video, endpoints: ["127.0.0.1:9001"]}]
routes: [{cluster: video, rate_limit: [per_user]}]
rate_limits:
  per_user: {key: {jwt_claim: sub}, rate: 100/s, burst: 200}
"""


@pytest.mark.parametrize(("change", "message"), [
    (("100/s", "100/d"), "rate_limits.per_user.rate: expected N/s, N/m or N/h"),
    (("burst: 200", "burst: 0"), "rate_limits.per_user.burst: must be at least 1"),
    (("{jwt_claim: sub}", "{jwt_claim: sub, header: X}"), "rate_limits.per_user.key: give"),
    (("{jwt_claim: sub}", "[source_ip, ip]"), "rate_limits.per_user.key"),
    (("[per_user]", "[per_user, other]"), "routes[0].rate_limit[1]: unknown rate limit"),
    (("[per_user]", "[per_user, per_user]"), "routes[0].rate_limit[1]: 'per_user' is listed"),
    (("burst: 200", "scope: global"), "rate_limits.per_user.scope: global needs a redis"),
    (("burst: 200", "burst: 2, sync: 100ms"), "rate_limits.per_user.sync: only for scope"),
    # GCRA times are int64 ns: T and burst * T below 2^62
    (("100/s", "0.0000000001/s"), "rate_limits.per_user.rate: '0.0000000001/s' is too slow"),
    (("burst: 200", "burst: 500000000000"), "rate_limits.per_user.burst: burst 500000000000"),
    (("100/s, burst: 200", "10000000000000000000/s"), "rate_limits.per_user.rate: burst 1"),
])
def test_config_errors_name_the_key(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(BASE.replace(*change), "gw.yaml")
    assert str(e.value).startswith("gw.yaml: " + message), str(e.value)


def test_config_values() -> None:
    cfg = parse(BASE.replace("{jwt_claim: sub}, rate: 100/s, burst: 200",
                             "[source_ip, {header: X-Key}], rate: 1000/m"))
    rl = cfg.rate_limits["per_user"]
    assert (rl.requests, rl.period, rl.burst_size, rl.scope) == (1000.0, 60.0, 1000, "local")
    assert cfg.routes[0].rate_limit == ["per_user"]
    assert cfg.rate_limit_table.slots == 65536


def limit_filter(yaml_limits: str, names: list[str], slots: int = 1024) -> RateLimitFilter:
    cfg = parse(BASE.replace("""  per_user: {key: {jwt_claim: sub}, rate: 100/s, burst: 200}
""", yaml_limits).replace("[per_user]", str(names).replace("'", "")))
    table = Table(slots)
    policies = [Policy(n, cfg.rate_limits[n],
                       table.limit(n, cfg.rate_limits[n].requests, cfg.rate_limits[n].period,
                                   cfg.rate_limits[n].burst_size)) for n in names]
    return RateLimitFilter(policies)


def exchange(client: str = "192.0.2.7", fields: str = "", claims: dict | None = None,
             route: str = "api") -> Exchange:
    ex = Exchange(parse_request(f"GET /v1/x HTTP/1.1\r\nHost: h\r\n{fields}\r\n".encode()),
                  Route(None, None, (), route), client)
    if claims is not None:
        ex.state["jwt_claims"] = claims
    return ex


def test_429_with_retry_after_and_draft_fields() -> None:
    f = limit_filter("  per_ip: {key: source_ip, rate: 2/s, burst: 3}\n", ["per_ip"])
    assert [f.on_request(exchange()) for _ in range(3)] == [None] * 3
    r = f.on_request(exchange())
    assert isinstance(r, Response) and r.status == 429
    assert r.headers.get(b"retry-after") == b"1"
    assert r.headers.get(b"ratelimit-policy") == b'"per_ip";q=2;w=1;gwcore-burst=3'
    assert r.headers.get(b"ratelimit") == b'"per_ip";r=0;t=1'
    assert r.body == b"429 Too Many Requests: rate limit exceeded\n"
    assert f.on_request(exchange("192.0.2.8")) is None          # another address
    assert f.limited == 1
    assert not hasattr(f, "on_response_head")                   # no response phase cost


@pytest.mark.parametrize(("rate", "item"), [
    ("0.5/s", b'"half";q=1;w=2;gwcore-burst=1'),
    ("1.5/m", b'"half";q=3;w=120;gwcore-burst=2'),
    ("0.25/h", b'"half";q=1;w=14400;gwcore-burst=1'),
    ("100/m", b'"half";q=100;w=60;gwcore-burst=100'),
    ("1.0000000000000000001/s", b'"half";q=1;w=1;gwcore-burst=1'),   # sf-integer: 15 digits
])
def test_policy_field_keeps_fractional_rates_exact(rate: str, item: bytes) -> None:
    f = limit_filter(f"  half: {{key: source_ip, rate: {rate}}}\n", ["half"])
    assert f.policy_field == item


def test_policy_names_are_sf_strings() -> None:
    from gwcore.filters.ratelimit import sf_string

    assert sf_string('a"b\\c') == b'"a\\"b\\\\c"'
    with pytest.raises(ValueError, match="sf-string"):
        sf_string("caf\u00e9")
    for bad in ('\'a"b\'', "'a b'", "'-x'", "x" * 65):
        with pytest.raises(ConfigError, match="is not a name"):
            parse(BASE.replace("  per_user:", f"  {bad}:").replace("[per_user]", f"[{bad}]"))


def test_retry_after_rounds_up_whole_seconds() -> None:
    f = limit_filter("  slow: {key: source_ip, rate: 1/m, body: 'slow down'}\n", ["slow"])
    assert f.on_request(exchange()) is None
    r = f.on_request(exchange())
    assert int(r.headers.get(b"retry-after")) in (59, 60) and r.body == b"slow down"


def test_descriptors_and_missing_parts() -> None:
    f = limit_filter("""  user: {key: {jwt_claim: sub}, rate: 1/h}
  key: {key: [{header: X-Key}, route], rate: 1/h}
""", ["user", "key"])
    assert f.on_request(exchange(claims={"sub": "alice"})) is None
    assert f.on_request(exchange(claims={"sub": "alice"})).status == 429
    assert f.on_request(exchange(claims={"sub": "bob"})) is None
    assert f.on_request(exchange(claims={"sub": 7})) is None        # claims as strings
    assert f.on_request(exchange(claims={"sub": "7"})).status == 429
    assert all(f.on_request(exchange()) is None for _ in range(3))  # no token: not limited
    assert f.on_request(exchange(fields="X-Key: k1\r\n")) is None
    assert f.on_request(exchange(fields="X-Key: k1\r\n")).status == 429
    assert f.on_request(exchange(fields="X-Key: k1\r\n", route="other")) is None


def test_headers_always_on_admitted_responses() -> None:
    f = limit_filter("""  a: {key: source_ip, rate: 10/s, burst: 10, headers: always}
  b: {key: source_ip, rate: 100/m, headers: never}
""", ["a", "b"])
    ex = exchange()
    assert f.on_request(ex) is None
    resp = Response(200)
    f.on_response_head(ex, resp)
    assert resp.headers.get(b"ratelimit-policy") == b'"a";q=10;w=1;gwcore-burst=10'
    assert resp.headers.get(b"ratelimit") in (b'"a";r=9;t=1', b'"b";r=99;t=1')


def test_listener_connection_limits_config() -> None:
    cfg = parse(BASE.replace('address: "127.0.0.1:8080"}', 'address: "127.0.0.1:8080", limits: '
                             '{max_connections: 10, max_connections_per_client: 2}}'))
    lim = cfg.listeners[0].limits
    assert (lim.max_connections, lim.max_connections_per_client) == (10, 2)
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.limits\.max_connections: must be"):
        parse(BASE.replace('address: "127.0.0.1:8080"}',
                           'address: "127.0.0.1:8080", limits: {max_connections: 0}}'))


def test_route_limits_checked_by_the_session() -> None:
    from gwcore.limits._gcra import RouteLimits
    from gwcore.runtime import FilterContext, filter_chains

    cfg = parse(BASE.replace("[per_user]", "[per_ip, per_route]").replace(
        "  per_user: {key: {jwt_claim: sub}, rate: 100/s, burst: 200}",
        "  per_ip: {key: source_ip, rate: 2/h}\n  per_route: {key: route, rate: 3/h}"))
    context = FilterContext(rate_limit_table=cfg.rate_limit_table)
    _, chains = filter_chains(cfg, context)
    assert chains == [()]                   # no filter: the session checks them itself
    limits = context.route_limits["route-0"]
    assert isinstance(limits, RouteLimits)
    assert limits.check_py("192.0.2.1", "route-0") is None
    assert limits.check_py("192.0.2.1", "route-0") is None
    r = limits.check_py("192.0.2.1", "route-0")                 # per_ip: 2/h
    assert r.status == 429 and r.headers.get(b"ratelimit").startswith(b'"per_ip";r=0;t=')
    assert r.headers.get(b"ratelimit-policy") == (b'"per_ip";q=2;w=3600;gwcore-burst=2, '
                                                  b'"per_route";q=3;w=3600;gwcore-burst=3')
    assert limits.check_py("192.0.2.2", "route-0") is None       # per_route's 3rd
    r = limits.check_py("192.0.2.3", "route-0")
    assert r.status == 429 and r.headers.get(b"ratelimit").startswith(b'"per_route"')
    with pytest.raises(ValueError):
        RouteLimits([], "s", [])


def test_limits_after_a_filter_stay_in_the_filter_chain() -> None:
    """With a global filter (or jwt) before it, a route's limit is not checked ahead of them
    by the session: a request they refuse never spends the route's budget."""
    from gwcore.runtime import FilterContext, filter_chains

    text = BASE.replace("[per_user]", "[per_route]").replace(
        "  per_user: {key: {jwt_claim: sub}, rate: 100/s, burst: 200}",
        "  per_route: {key: route, rate: 3/h}")
    text += 'filters: [{use: ip_acl, config: {deny: ["203.0.113.0/24"]}}]\n'
    cfg = parse(text)
    context = FilterContext(rate_limit_table=cfg.rate_limit_table)
    _, chains = filter_chains(cfg, context)
    assert "route-0" not in context.route_limits
    assert [type(f).__name__ for f in chains[0]] == ["IpAclFilter", "RateLimitFilter"]


def test_source_ip_keys_ipv4_mapped_and_ipv6_prefix() -> None:
    f = limit_filter("""  v64: {key: source_ip, rate: 1/h}
""", ["v64"])
    assert f.on_request(exchange("::ffff:192.0.2.7")) is None
    assert f.on_request(exchange("192.0.2.7")).status == 429       # one client, two spellings
    assert f.on_request(exchange("2001:db8:1:2::1")) is None
    assert f.on_request(exchange("2001:db8:1:2:ffff::9")).status == 429    # same /64
    assert f.on_request(exchange("2001:db8:1:2::1%eth0")).status == 429
    assert f.on_request(exchange("2001:db8:1:3::1")) is None            # another /64
    f = limit_filter("""  v128: {key: [source_ip, route], rate: 1/h, ipv6_prefix: 128}
""", ["v128"])
    assert f.on_request(exchange("2001:db8::1")) is None
    assert f.on_request(exchange("2001:db8::2")) is None                # per address
    assert f.on_request(exchange("2001:db8::2")).status == 429
    with pytest.raises(ConfigError, match=r"rate_limits\.per_user\.ipv6_prefix: must be"):
        parse(BASE.replace("burst: 200", "burst: 200, ipv6_prefix: 0"), "gw.yaml")


def test_route_limits_key_ipv6_clients_by_prefix() -> None:
    from gwcore.limits import source_key
    from gwcore.runtime import FilterContext, filter_chains

    assert source_key("::ffff:192.0.2.7") == "192.0.2.7" == source_key("192.0.2.7")
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"
    assert source_key("unknown") == "unknown"
    assert source_key("not:an:address") == "not:an:address"
    cfg = parse(BASE.replace("[per_user]", "[per_ip, per_ip128]").replace(
        "  per_user: {key: {jwt_claim: sub}, rate: 100/s, burst: 200}",
        "  per_ip: {key: source_ip, rate: 2/h}\n"
        "  per_ip128: {key: source_ip, rate: 1/h, ipv6_prefix: 128}"))
    context = FilterContext(rate_limit_table=cfg.rate_limit_table)
    filter_chains(cfg, context)
    limits = context.route_limits["route-0"]
    assert limits.prefixes == (64, 128)
    assert limits.check_py("2001:db8:5:6::1", "route-0") is None
    r = limits.check_py("2001:db8:5:6::1", "route-0")                    # per_ip128: 1/h
    assert r.headers.get(b"ratelimit").startswith(b'"per_ip128"')
    r = limits.check_py("2001:db8:5:6::2", "route-0")                    # per_ip: same /64
    assert r.headers.get(b"ratelimit").startswith(b'"per_ip"')
    assert limits.check_py("::ffff:192.0.2.9", "route-0") is None
    assert limits.check_py("192.0.2.9", "route-0").status == 429        # per_ip128: mapped


def _global_limit(timeout: float, max_connections: int, url: str = "redis://127.0.0.1:1/0"
                  ) -> tuple[Any, Any]:
    from gwcore.config import Duration, RateLimit, Redis
    from gwcore.limits.redis_limits import RedisLimits

    owner = RedisLimits(Redis(url=url, timeout=Duration(timeout),
                              max_connections=max_connections))
    spec = RateLimit(key="route", rate="1000/s", scope="global", sync=Duration(0.05))
    return owner, owner.limit("batched", spec)


def test_redis_sync_flush_is_concurrent_and_bounded() -> None:
    owner, limit = _global_limit(1.0, 8)
    assert owner._client.connection_pool.max_connections == 8
    in_flight, peak, delay = 0, 0, 0.05

    async def script(keys: list[bytes], args: list[int]) -> list[int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(delay)
        in_flight -= 1
        return [1, 5, 1000, 0]

    owner.script = lambda: script
    limit.local = {b"k%d" % i: [0, 3, 0.0] for i in range(20)}
    t0 = time.monotonic()
    asyncio.run(limit.flush())
    # at once, at most half the pool in flight: 5 rounds of 4, not 20 round trips in a row
    assert peak == 4 and time.monotonic() - t0 < 10 * delay
    assert all(e[1] == 0 and e[0] == 5 for e in limit.local.values())

    owner, limit = _global_limit(0.2, 8)                 # Redis slower than the pass's bound
    delay = 30.0
    owner.script = lambda: script
    limit.local = {b"k%d" % i: [0, 3, 0.0] for i in range(20)}
    t0 = time.monotonic()
    asyncio.run(limit.flush())
    assert time.monotonic() - t0 < 2.0                   # bounded by max(sync, timeout)
    assert all(e[1] == 3 for e in limit.local.values())  # every count kept for the next pass


def test_redis_pool_is_bounded_and_exhaustion_is_an_error() -> None:
    import socket

    from redis.exceptions import ConnectionError as RedisConnectionError

    silent = socket.socket()                     # a "Redis" that accepts and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        _, limit = _global_limit(0.5, 2, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")

        async def three() -> list[Any]:
            async def timed() -> Any:
                t0 = time.monotonic()
                try:
                    return await limit.take("k")
                except Exception as e:      # noqa: BLE001
                    return e, time.monotonic() - t0
            return await asyncio.gather(timed(), timed(), timed())

        results = asyncio.run(three())
        exhausted = [r for r in results if isinstance(r[0], RedisConnectionError)]
        assert len(exhausted) == 1 and exhausted[0][1] < 0.25, results   # at once
        assert sum(isinstance(r[0], TimeoutError) for r in results) == 2, results
    finally:
        silent.close()
