"""Upstream side: routing, load balancing (ketama, Maglev, ...), pools, health."""

from gwcore.proxy._ring import HashRing, Maglev

__all__ = ["HashRing", "Maglev"]
