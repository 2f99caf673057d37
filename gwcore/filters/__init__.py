"""Request filters (DESIGN.md §6): per-route hooks on the request path."""

from gwcore.filters.base import Exchange, Filter, LocalResponse, run_request_filters

__all__ = ["Exchange", "Filter", "LocalResponse", "run_request_filters"]
