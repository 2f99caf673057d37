"""Rate limits (DESIGN.md §3 ``limits/``): GCRA in shared memory (``Table``, ``Limit``:
src_c/gcra.h through gwcore/limits/_gcra.pyx). The route filter is
gwcore.filters.ratelimit."""

from gwcore.limits._gcra import WAYS, Limit, Table, now_ns, source_key

__all__ = ["WAYS", "Limit", "Table", "now_ns", "source_key"]
