"""Observability: what the gateway tells its operators about the requests it serves.

Metrics in shared memory (``metrics``, ``_metrics``; docs/metrics.md), the admin API served by
the master (``admin``), and ``_access_log.AccessLog`` (compiled): one line per request, JSON or
NGINX's combined format, written by a thread of its own so the event loop never waits for a
disk.
"""
