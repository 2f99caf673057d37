"""gwcore: an edge gateway core — compiled HTTP/1.1 reverse proxy on uvloop."""

__version__ = "0.1.0"
