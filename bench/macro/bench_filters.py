"""Trivial filters for bench/macro/routes.py and bench/micro/test_filters_bench.py.

Every phase does nothing and returns None, so a run measures what the gateway's filter
machinery costs per request, not a filter's own work. The gateway loads them by import path
(``bench_filters:OnRequest``) with bench/macro on its PYTHONPATH (routes.py sets it).

``config: {mark: PATH}`` makes the constructor append a line to PATH (once per worker, never
per request): routes.py checks it to know that the gateway really built the filter.
"""

from __future__ import annotations

import os
from typing import Any


class _Trivial:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config or {}
        mark = self.config.get("mark")
        if mark:
            with open(mark, "a") as f:
                f.write(f"{type(self).__name__} built in pid {os.getpid()}\n")


class OnRequest(_Trivial):
    """One phase: on_request, which lets every request through."""

    def on_request(self, exchange: Any) -> None:
        return None


class ThreePhases(OnRequest):
    """Three phases: on_request, on_response_head (keeps the upstream's response) and on_log."""

    def on_response_head(self, exchange: Any, response: Any) -> None:
        return None

    def on_log(self, exchange: Any) -> None:
        return None
