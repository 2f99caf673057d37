"""Observability: metrics in shared memory, the access log, trace context and the admin API."""
