"""Filters that test_filters_gateway.py loads into a real gateway by import path
(``gw_filter_probes:Mark``): this directory is on the gateway's PYTHONPATH there."""

from __future__ import annotations

import json
import os
from typing import Any

from gwcore.filters import Filter


class Mark(Filter):
    """config ``{name}``: records the order the filters ran in, per phase. ``on_request``
    appends its name to ``exchange.state["order"]`` and sends ``X-Mark: name`` upstream;
    ``on_response_head`` appends to ``state["head"]`` and answers both orders as
    ``X-Request-Order`` and ``X-Head-Order`` (comma-separated)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.name = config["name"]

    def on_request(self, exchange) -> None:
        exchange.state.setdefault("order", []).append(self.name)
        exchange.add_upstream_header(b"X-Mark", self.name.encode())

    def on_response_head(self, exchange, response) -> None:
        exchange.state.setdefault("head", []).append(self.name)
        response.headers.set(b"X-Request-Order", ",".join(exchange.state["order"]).encode())
        response.headers.set(b"X-Head-Order", ",".join(exchange.state["head"]).encode())


class LogLines(Filter):
    """config ``{path}``: ``on_log`` appends one JSON line per exchange to the file (one
    write of an O_APPEND file: lines stay whole). ``exchange.request`` is None on a request
    refused before routing (only the global filters' on_log runs there)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.path = config["path"]

    def on_log(self, exchange) -> None:
        req = exchange.request
        record = {
            "query": exchange.query.decode(),
            "request_query": req.query.decode() if req is not None else None,
            "x_test": (req.header(b"x-test") or b"").decode() if req is not None else None,
            "method": exchange.method.decode(),
            # None when the request was refused before its path was normalised
            "path": exchange.path.decode() if exchange.path is not None else None,
            "client": exchange.client_address,
            "route": exchange.route_name,
            "status": exchange.status,
            "end": exchange.end,
            "bytes_sent": exchange.bytes_sent,
            "duration": exchange.duration,
            "order": exchange.state.get("order"),
        }
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)
