"""JWT authentication filter (RFC 7519 tokens, RFC 6750 bearer usage).

A route with ``jwt: NAME`` (or ``{provider: NAME, optional: true}``) runs this filter: the
token is read (``Authorization: Bearer`` by default), verified by the provider's compiled
Verifier, and its claims go to ``exchange.state["jwt_claims"]``; ``forward_claims`` become
fields of the upstream request (replacing any the client sent). Failures answer 401 with
``WWW-Authenticate: Bearer`` (RFC 6750 §3: ``error="invalid_token"`` and a description, or no
error code when there was no token at all, §3.1); the reason is counted and logged, never the
token (the outcome, ``ok`` or the reason, goes to ``exchange.auth`` for the access log).
Verified tokens are cached per worker, keyed by the SHA-256 of the whole token, and an
entry never outlives the token's ``exp``.

Keys from a ``jwks.url`` arrive with the provider's first fetch: a request that comes before that
fetch has finished (succeeded or failed) waits for it, at most the fetch timeout (``jwks.timeout``),
and so does one whose unknown kid triggers a fetch. The worker reports itself ready only after
every first fetch has finished (gwcore.process.worker).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from gwcore.config import JwtProvider as ProviderConfig
from gwcore.filters.base import Exchange, Response
from gwcore.jwt import InvalidTokenError, UnknownKeyIdError, Verifier
from gwcore.jwt._jws import sha256
from gwcore.jwt.jwks import fetch
from gwcore.runtime import key_set

log = logging.getLogger("gwcore")

KID_REFRESH_INTERVAL = 30.0   # seconds: an unknown kid triggers at most one fetch per this
NO_EXP_TTL = 300.0            # seconds a verified token without exp stays cached


class Provider:
    """One configured issuer in one worker: verifier, key refresh, verified-token cache.

    ``failures``: Counter of rejection codes (``missing``, ``expired``, ``bad_signature``...).
    ``fetches``, ``fetch_failures``: JWKS fetches that succeeded, that failed (the last good
    key set stayed).
    ``keys_ready``: set once the first key fetch has finished, succeeded or failed (at once
    for file keys)."""

    def __init__(self, name: str, cfg: ProviderConfig) -> None:
        self.name = name
        self.cfg = cfg
        # url keys arrive with the first refresh (started at once, asynchronously)
        keys = key_set(cfg.jwks)
        self.verifier = Verifier(keys, cfg.algorithms, audience=cfg.audiences,
                                 issuer=cfg.issuer, leeway=cfg.leeway)
        self.cache: dict[bytes, tuple[float, dict[str, Any], list[tuple[bytes, bytes]]]] = {}
        self.failures: collections.Counter[str] = collections.Counter()
        self.fetch_failures = 0
        self.fetches = 0                        # JWKS fetches that succeeded
        self.last_kid_fetch = float("-inf")
        self.fetching: asyncio.Future[None] | None = None
        self.keys_ready = asyncio.Event()       # bound to the worker's loop on first wait
        self.waited_for_keys = False            # a request waited for keys_ready (logged once)
        if cfg.jwks.url is None:
            self.keys_ready.set()
        src = cfg.token_from
        self.header = (src.header.lower().encode() if src and src.header else b"authorization")
        self.bearer = src is None or src.header is None
        self.cookie = src.cookie.encode() if src and src.cookie else None
        self.query = src.query if src and src.query else None

    # -- keys ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch the JWKS again (one fetch at a time); keep the old keys on failure."""
        if self.fetching is not None:
            return await asyncio.shield(self.fetching)
        loop = asyncio.get_running_loop()
        self.fetching = loop.create_future()
        try:
            keys = await loop.run_in_executor(None, fetch, self.cfg.jwks.url,
                                              self.cfg.jwks.timeout)
        except Exception as e:      # noqa: BLE001 (any failure: keep the keys, keep refreshing)
            self.fetch_failures += 1
            log.warning("jwt %s: JWKS fetch from %s failed, keeping %d cached keys: %s",
                        self.name, self.cfg.jwks.url, len(self.verifier.keys), e)
        else:
            self.fetches += 1
            if set(keys.kids()) != set(self.verifier.keys.kids()):
                log.info("jwt %s: key set now has kids %s", self.name, sorted(keys.kids()))
            self.verifier.keys = keys
            self.cache.clear()          # a key may have been withdrawn
        finally:
            self.fetching.set_result(None)
            self.fetching = None
            self.keys_ready.set()

    async def wait_for_keys(self, timeout: float | None = None) -> bool:
        """Wait until the first key fetch has finished (succeeded or failed), at most
        ``timeout`` seconds (default: the fetch timeout, ``jwks.timeout``). True if it has."""
        if self.keys_ready.is_set():
            return True
        try:
            async with asyncio.timeout(self.cfg.jwks.timeout if timeout is None else timeout):
                await self.keys_ready.wait()
        except TimeoutError:
            return False
        return True

    async def refresh_forever(self) -> None:
        """For url-based providers: the first fetch at once, then every ``jwks.refresh``."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.cfg.jwks.refresh)

    # -- tokens -------------------------------------------------------------------------

    def token(self, exchange: Exchange) -> bytes | None:
        """The token as sent, or None when there is none."""
        req = exchange.request
        if self.query is not None:
            query = req.target.partition(b"?")[2].decode("latin-1")
            for k, v in parse_qsl(query, keep_blank_values=True):
                if k == self.query:
                    return v.encode("latin-1") or None
            return None
        value = req.get(b"cookie" if self.cookie else self.header)
        if value is None:
            return None
        if self.cookie is not None:
            for pair in value.split(b";"):
                k, eq, v = pair.strip().partition(b"=")
                if eq and k == self.cookie:
                    return v or None
            return None
        if self.bearer:
            scheme, _, token = value.partition(b" ")
            return token.strip() or None if scheme.lower() == b"bearer" else None
        return value or None

    def check(self, token: bytes, now: float) -> tuple[dict[str, Any], list]:
        """(claims, upstream fields) for a valid token; InvalidTokenError otherwise."""
        digest = sha256(token)
        hit = self.cache.get(digest)
        if hit is not None:
            if now < hit[0]:
                return hit[1], hit[2]
            del self.cache[digest]
        claims = self.verifier.verify(token, now)
        fields = self._forwarded(claims)
        exp = claims.get("exp")
        until = float(exp) if isinstance(exp, (int, float)) else now + NO_EXP_TTL
        if len(self.cache) >= self.cfg.cache_entries:
            del self.cache[next(iter(self.cache))]      # oldest first
        self.cache[digest] = (until, claims, fields)
        return claims, fields

    def _forwarded(self, claims: dict[str, Any]) -> list[tuple[bytes, bytes]]:
        out = []
        for claim, field in self.cfg.forward_claims.items():
            if claim not in claims:
                continue
            value = claims[claim]
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            raw = text.encode("utf-8")
            if any(c < 0x20 and c != 0x09 or c == 0x7F for c in raw):
                raise InvalidTokenError(f"claim {claim!r} cannot be forwarded in a field",
                                        code="unforwardable_claim")
            out.append((field.encode(), raw))
        return out


def _challenge(code: str | None, description: str) -> Response:
    if code is None:
        auth = 'Bearer realm="gwcore"'
    else:
        text = description.replace("\\", "\\\\").replace('"', '\\"')
        text = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)
        auth = f'Bearer realm="gwcore", error="{code}", error_description="{text}"'
    return Response(401, [(b"WWW-Authenticate", auth.encode())],
                    f"401 Unauthorized: {description}\n".encode())


class JwtAuth:
    """The filter of one route: ``provider`` and whether a missing token is let through."""

    def __init__(self, provider: Provider, optional: bool = False) -> None:
        self.provider = provider
        self.optional = optional

    def on_request(self, exchange: Exchange) -> Any:
        p = self.provider
        token = p.token(exchange)
        if token is None:
            if self.optional:
                return None
            p.failures["missing"] += 1
            exchange.auth = "missing"
            log.info("jwt %s: 401 missing token (%s)", p.name, exchange.client_ip)
            return _challenge(None, "a bearer token is required")
        if not p.keys_ready.is_set():
            return self._after_first_fetch(exchange, token)     # keys not fetched yet
        return self._verify(exchange, token, True)

    def _verify(self, exchange: Exchange, token: bytes, may_fetch: bool) -> Any:
        """None (admitted), a 401, or an awaitable of either when an unknown kid fetches."""
        p = self.provider
        try:
            return self._admit(exchange, token)
        except UnknownKeyIdError as e:
            now = time.monotonic()
            if not may_fetch:
                return self._reject(exchange, e)
            if p.fetching is not None:          # a fetch is under way
                return self._after_refresh(exchange, token)
            if p.cfg.jwks.url is None or now - p.last_kid_fetch < KID_REFRESH_INTERVAL:
                return self._reject(exchange, e)
            p.last_kid_fetch = now
            return self._after_refresh(exchange, token)
        except InvalidTokenError as e:
            return self._reject(exchange, e)

    async def _after_first_fetch(self, exchange: Exchange, token: bytes) -> Any:
        p = self.provider
        if not p.waited_for_keys:
            p.waited_for_keys = True
            log.info("jwt %s: requests waiting for the first JWKS fetch from %s", p.name,
                     p.cfg.jwks.url)
        if not await p.wait_for_keys():
            log.warning("jwt %s: first JWKS fetch from %s unfinished after %gs", p.name,
                        p.cfg.jwks.url, p.cfg.jwks.timeout)
            return self._reject(exchange, InvalidTokenError(
                "the signing keys are not available yet", code="keys_unavailable"))
        result = self._verify(exchange, token, True)
        return await result if inspect.isawaitable(result) else result

    async def _after_refresh(self, exchange: Exchange, token: bytes) -> Any:
        p = self.provider
        try:
            async with asyncio.timeout(p.cfg.jwks.timeout):
                await asyncio.shield(p.refresh())   # a client leaving can't cancel it
        except TimeoutError:
            log.warning("jwt %s: JWKS fetch from %s unfinished after %gs", p.name,
                        p.cfg.jwks.url, p.cfg.jwks.timeout)
        return self._verify(exchange, token, False)

    def _admit(self, exchange: Exchange, token: bytes) -> None:
        claims, fields = self.provider.check(token, time.time())
        exchange.auth = "ok"
        exchange.state["jwt_claims"] = claims
        for name, value in fields:
            exchange.set_upstream_field(name, value)
        if not self.provider.cfg.forward_authorization:
            exchange.remove_upstream_field(b"authorization")

    def _reject(self, exchange: Exchange, e: InvalidTokenError) -> Response:
        code = getattr(e, "code", "invalid_token")
        self.provider.failures[code] += 1
        exchange.auth = code
        log.info("jwt %s: 401 %s (%s): %s", self.provider.name, code, exchange.client_ip, e)
        return _challenge("invalid_token", str(e) or code)
