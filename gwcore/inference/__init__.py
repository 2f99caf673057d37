"""Inference gateway: model routing on the request, versions and weighted splits, mirroring, fallbacks."""
