"""Two example filters, loaded from config by import path (docs/filters.md).

Put this directory on the gateway's import path and name the classes in the config::

    PYTHONPATH=examples gwcore check examples/filters.yaml
    PYTHONPATH=examples gwcore serve --config examples/filters.yaml

    filters:
      - {use: "filters:DenyClients", config: {deny: [192.0.2.0/24, "2001:db8::/32"]}}
    routes:
      - match: {path_prefix: /}
        cluster: origin
        filters: [{use: "filters:AddResponseField", config: {name: X-Region, value: eu-west-1}}]

Each class is built once per worker as ``Class(config)`` (and once more by ``gwcore check``,
and by the master at start and on reload, to validate the config): a constructor checks its
config and raises with a message, which ``gwcore check`` reports as
``FILE: routes[0].filters[0].config: message``. Tested by tests/unit/test_filters_config.py
and tests/integration/test_filters_gateway.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from gwcore.filters import Filter, Response


class AddResponseField(Filter):
    """Adds one field to every response of its routes (replacing any of that name).

    config: ``name`` (a field name), ``value`` (str)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        name, value = config.get("name"), config.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("name and value are required strings")
        self.name, self.value = name.encode("ascii"), value.encode()
        Response(200, [(self.name, self.value)])     # ValueError for a bad name or value

    def on_response_head(self, exchange, response: Response) -> None:
        response.headers.set(self.name, self.value)


class DenyClients(Filter):
    """Answers 403 to clients whose address is in ``deny``: addresses or networks in CIDR
    notation (``192.0.2.0/24``, ``2001:db8::/32``), IPv4 and IPv6. Every other client goes on.

    config: ``deny`` (a list of strings)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        deny = config.get("deny")
        if not isinstance(deny, list) or not deny:
            raise ValueError("deny: a list of addresses or CIDR networks is required")
        networks = []
        for i, item in enumerate(deny):
            try:
                networks.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError as e:
                raise ValueError(f"deny[{i}]: {e}") from None
        self.networks = tuple(networks)

    def on_request(self, exchange) -> Response | None:
        try:
            ip = ipaddress.ip_address(exchange.client_address)
        except ValueError:
            return None         # not an IP peer (e.g. a Unix socket): nothing to match
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks):
            return Response(403, [(b"Content-Type", b"text/plain")],
                            b"403 Forbidden: client address denied\n")
        return None
