"""What the runtime builds from a parsed config beyond its values, and the check that it can.

``gwcore.config`` turns YAML into typed values and never reads the files a config names; the
runtime reads them. ``key_set`` builds a JWT provider's key set from its ``jwks`` source (the
worker's ``Provider`` uses it), and ``check`` builds every such thing once so that ``gwcore
check``, ``gwcore serve`` and a reload reject a config the workers could not start with. The
compiled JWT module is imported only when a config has a JWT provider.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gwcore.config import Config, ConfigError, JwksSource
from gwcore.config import load as load_config

if TYPE_CHECKING:
    from gwcore.jwt import JWKSet

__all__ = ["check", "key_set", "load"]


def key_set(jwks: JwksSource) -> JWKSet:
    """The keys of a ``jwks`` source: the JWKS or PEM ``file`` read now, or an empty set for
    a ``url`` (its keys arrive with the provider's first fetch). Raises OSError (unreadable
    file) or ``gwcore.jwt.PyJWTError`` (not a usable JWKS document or PEM key)."""
    from gwcore.jwt import JWKSet

    return JWKSet.from_file(jwks.file) if jwks.file is not None else JWKSet()


def check(cfg: Config, source: str = "<config>") -> None:
    """Build what the workers would build from cfg and reading files needs (each file-based
    JWT provider's key set), and discard it. Raises ConfigError
    ``"SOURCE: jwt_providers.NAME.jwks.file: problem"`` for the first that fails."""
    if not cfg.jwt_providers:
        return
    from gwcore.jwt import PyJWTError

    for name, provider in cfg.jwt_providers.items():
        if provider.jwks.file is None:
            continue
        try:
            key_set(provider.jwks)
        except (OSError, PyJWTError) as e:
            raise ConfigError(f"{source}: jwt_providers.{name}.jwks.file: {e}") from None


def load(path: str | os.PathLike[str]) -> Config:
    """``gwcore.config.load(path)`` then ``check`` it: a config the workers can start with.
    Raises ConfigError."""
    cfg = load_config(path)
    check(cfg, os.fspath(path))
    return cfg
