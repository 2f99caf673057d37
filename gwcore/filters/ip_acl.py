"""The ``ip_acl`` built-in filter: allow and deny lists of networks (CIDR, IPv4 and IPv6)
checked against the client's address; a refused request gets ``403``.

``{use: ip_acl, config: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.1.2.3]}}``: a client
in ``deny`` is refused; with a non-empty ``allow``, a client outside it is refused too; deny
wins over allow. An IPv4-mapped IPv6 address (``::ffff:192.0.2.7``, from a dual-stack
listener) is checked as its IPv4 address, and a network written IPv4-mapped
(``::ffff:192.0.2.0/120``) as its IPv4 network (``192.0.2.0/24``). A network with host bits
set (``10.1.2.3/8``) is a config error. Put it in the global ``filters`` to guard every
route, or in a route's ``filters``.

Each list becomes sorted, merged integer ranges per IP version, so a check is one address
parse and one binary search whatever the lists' lengths; the decisions for the last 4096
addresses seen are kept.
"""

from __future__ import annotations

import bisect
import ipaddress

from gwcore.config import IpAcl
from gwcore.filters.base import Exchange, Response

FORBIDDEN = Response.error(403, "client address not allowed")
CACHE_ENTRIES = 4096


class Ranges:
    """Networks as merged [start, end] integer ranges per IP version."""

    def __init__(self, nets: list[str]) -> None:
        by_version: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for net in nets:
            n = ipaddress.ip_network(net, strict=False)
            if n.version == 6 and n.prefixlen >= 96 and n.network_address.ipv4_mapped:
                # ::ffff:192.0.2.0/120: clients are checked as IPv4 (``allowed``), so is it
                n = ipaddress.IPv4Network((n.network_address.ipv4_mapped, n.prefixlen - 96))
            by_version[n.version].append((int(n.network_address), int(n.broadcast_address)))
        self.starts: dict[int, list[int]] = {}
        self.ends: dict[int, list[int]] = {}
        for version, ranges in by_version.items():
            merged: list[list[int]] = []
            for start, end in sorted(ranges):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self.starts[version] = [r[0] for r in merged]
            self.ends[version] = [r[1] for r in merged]

    def __contains__(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        starts = self.starts[ip.version]
        i = bisect.bisect_right(starts, int(ip)) - 1
        return i >= 0 and int(ip) <= self.ends[ip.version][i]


class IpAclFilter:
    """The filter (built by gwcore.runtime from its config, gwcore.config.IpAcl)."""

    def __init__(self, cfg: IpAcl) -> None:
        self.allow = Ranges(cfg.allow) if cfg.allow else None
        self.deny = Ranges(cfg.deny)
        self.refused = 0
        self._decided: dict[str, bool] = {}

    def allowed(self, address: str) -> bool:
        ok = self._decided.get(address)
        if ok is None:
            try:
                ip = ipaddress.ip_address(address.partition("%")[0])
            except ValueError:
                ok = False                      # not an IP address: never allowed
            else:
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                ok = ip not in self.deny and (self.allow is None or ip in self.allow)
            if len(self._decided) >= CACHE_ENTRIES:
                self._decided.clear()
            self._decided[address] = ok
        return ok

    def on_request(self, exchange: Exchange) -> Response | None:
        if self.allowed(exchange.client_address):
            return None
        self.refused += 1
        return FORBIDDEN
