"""In-process caching: the bounded store (S3-FIFO or LRU, entry and byte budgets, TTL)."""

from gwcore.cache._store import MAX_BYTES, Store

__all__ = ["MAX_BYTES", "Store"]
