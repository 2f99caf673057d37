"""Observability: what the gateway tells its operators about the requests it serves.

``gwcore.observability._access_log.AccessLog`` (compiled): one line per request, JSON or
NGINX's combined format, written by a thread of its own so the event loop never waits for a
disk. Metrics, trace context and the admin API grow here too (docs/metrics.md).
"""
