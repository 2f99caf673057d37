"""The ip_acl built-in filter: allow/deny CIDR lists for IPv4 and IPv6 (deny wins, a
non-empty allow refuses the rest), merged ranges against ipaddress as the oracle, IPv4-mapped
addresses, config errors with key paths, and its place among the built-ins."""

from __future__ import annotations

import ipaddress
import random

import pytest

from gwcore.config import ConfigError, IpAcl, parse
from gwcore.filters.base import Exchange
from gwcore.filters.ip_acl import IpAclFilter
from gwcore.http import parse_request
from gwcore.runtime import build_filters


def ex(addr: str) -> Exchange:
    return Exchange(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), None, addr)


def test_allow_deny_v4_v6() -> None:
    f = IpAclFilter(IpAcl(allow=["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"],
                          deny=["10.1.0.0/16", "2001:db8:dead::/48"]))
    assert f.on_request(ex("10.2.3.4")) is None
    assert f.on_request(ex("192.0.2.7")) is None
    assert f.on_request(ex("2001:db8::1")) is None
    assert f.on_request(ex("::ffff:10.9.9.9")) is None              # IPv4-mapped
    for refused in ("10.1.2.3", "192.0.2.8", "2001:db8:dead::1", "::1", "unknown", ""):
        r = f.on_request(ex(refused))
        assert r is not None and r.status == 403, refused
    assert f.refused == 6


def test_ipv4_mapped_networks_match_ipv4_clients() -> None:
    f = IpAclFilter(IpAcl(allow=["::ffff:192.0.2.0/120", "::ffff:198.51.100.7"],
                          deny=["::ffff:192.0.2.128/121"]))
    for client in ("192.0.2.1", "::ffff:192.0.2.1", "198.51.100.7", "::ffff:198.51.100.7"):
        assert f.on_request(ex(client)) is None, client
    for client in ("192.0.2.200", "::ffff:192.0.2.200", "198.51.100.8", "192.0.3.1"):
        assert f.on_request(ex(client)).status == 403, client
    IpAcl(allow=["10.0.0.0/8", "10.1.2.3", "2001:db8::/32", "::ffff:10.0.0.0/104"])   # valid


def test_deny_only() -> None:
    f = IpAclFilter(IpAcl(deny=["127.0.0.0/8", "::1/128"]))
    assert f.on_request(ex("127.0.0.1")).status == 403
    assert f.on_request(ex("::1")).status == 403
    assert f.on_request(ex("192.0.2.1")) is None


def test_ranges_match_ipaddress_on_random_lists() -> None:
    rng = random.Random(7)
    for _ in range(30):
        nets = [str(ipaddress.ip_network(
            f"{rng.randrange(256)}.{rng.randrange(256)}.0.0/{rng.randrange(8, 25)}",
            strict=False)) for _ in range(rng.randrange(1, 12))]
        f = IpAclFilter(IpAcl(allow=nets))
        parsed = [ipaddress.ip_network(n, strict=False) for n in nets]
        for _ in range(300):
            ip = ipaddress.IPv4Address(rng.getrandbits(32))
            if rng.random() < 0.5:                                  # near a listed network
                net = rng.choice(parsed)
                ip = net.network_address + rng.randrange(-3, net.num_addresses + 3)
            assert f.allowed(str(ip)) == any(ip in n for n in parsed), (nets, ip)


@pytest.mark.parametrize(("config", "message"), [
    ("{allow: [10.0.0.0/33]}", "filters[0].config.allow[0]: '10.0.0.0/33' is not an IP"),
    ("{}", "filters[0].config.allow: give allow or deny"),
    ("{deny: [x], allow: []}", "filters[0].config.deny[0]"),
    ("{allow: [10.0.0.0/8, 10.1.2.3/8]}",
     "filters[0].config.allow[1]: '10.1.2.3/8' has host bits set (the network is 10.0.0.0/8"),
    ("{deny: ['2001:db8::1/32']}", "filters[0].config.deny[0]: '2001:db8::1/32' has host"),
])
def test_config_errors(config: str, message: str) -> None:
    cfg = parse(f"""
listeners: [{{name: p, address: "127.0.0.1:8080"}}]
clusters: [{{name: c, endpoints: ["127.0.0.1:9001"]}}]
routes: [{{cluster: c}}]
filters: [{{use: ip_acl, config: {config}}}]
""")
    with pytest.raises(ConfigError) as e:
        build_filters(cfg, None, "gw.yaml")
    assert str(e.value).startswith("gw.yaml: " + message), str(e.value)
