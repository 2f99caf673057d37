"""Filters (DESIGN.md §6): Python hooks on the phases of every request; see gwcore.filters.base
and docs/filters.md."""

from gwcore.filters.base import Exchange, Fields, Filter, Response, run_request_filters

__all__ = ["Exchange", "Fields", "Filter", "Response", "run_request_filters"]
