"""What the runtime builds from a parsed config beyond its values, and the check that it can.

``gwcore.config`` turns YAML into typed values and never reads the files a config names nor
imports the code it names; the runtime does. ``key_set`` builds a JWT provider's key set from
its ``jwks`` source (the worker's ``Provider`` uses it); ``build_filters`` resolves the
config's filters — built-in ones by name (``BUILTIN_FILTERS``), user ones by import path
``package.module:Class`` — and builds them (docs/filters.md); ``check`` does both once so that
``gwcore check``, ``gwcore serve`` and a reload reject a config the workers could not start
with. The compiled JWT module is imported only when a config has a JWT provider, and nothing
is imported for filters a config does not name.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from gwcore.config import (
    CacheSettings,
    Config,
    ConfigError,
    FilterSpec,
    IpAcl,
    JwksSource,
    RateLimitTable,
    Redis,
    RouteCache,
    RouteJwt,
    _dec_hook,
    _describe,
)
from gwcore.config import load as load_config

if TYPE_CHECKING:
    from gwcore.filters.cache import CacheRuntime
    from gwcore.filters.jwt_auth import Provider
    from gwcore.filters.ratelimit import Policy
    from gwcore.jwt import JWKSet
    from gwcore.limits import Table

__all__ = ["BUILTIN_FILTERS", "BuiltinFilter", "FilterContext", "build_filters", "check",
           "filter_chains", "key_set", "load"]


def key_set(jwks: JwksSource) -> JWKSet:
    """The keys of a ``jwks`` source: the JWKS or PEM ``file`` read now, or an empty set for
    a ``url`` (its keys arrive with the provider's first fetch). Raises OSError (unreadable
    file) or ``gwcore.jwt.PyJWTError`` (not a usable JWKS document or PEM key)."""
    from gwcore.jwt import JWKSet

    return JWKSet.from_file(jwks.file) if jwks.file is not None else JWKSet()


# -- filters from config (docs/filters.md) ----------------------------------------------

# the phases of gwcore.filters.base.PHASES (not imported: it loads the compiled exchange)
PHASES = ("on_request", "on_response_head", "on_response_body", "on_log")


@dataclass
class FilterContext:
    """What built-in filters are built from in a worker: its JWT providers by name, the
    cache settings its one cache store (made on first use) follows, the host's shared rate
    limit table (``limits``: the master's, mapped before the fork; None: one is made for this
    process on first use, of ``rate_limit_table.slots``) and the Redis settings of global
    limits."""

    jwt_providers: Mapping[str, Provider] = field(default_factory=dict)
    cache_settings: CacheSettings = field(default_factory=CacheSettings)
    limits: Table | None = None
    rate_limit_table: RateLimitTable = field(default_factory=RateLimitTable)
    redis: Redis | None = None
    _cache: CacheRuntime | None = None
    _policies: dict[str, Policy] = field(default_factory=dict)
    _remote: Any = None
    _limiters: dict[tuple[str, str], Any] = field(default_factory=dict)
    # route name → gwcore.limits._gcra.RouteLimits: its local limits keyed by source_ip or
    # route alone, checked by the proxy session itself before the route's filters
    route_limits: dict[str, Any] = field(default_factory=dict)
    shedders: dict[str, Any] = field(default_factory=dict)     # cluster name → Shedder

    def limiter(self, kind: str, name: str, c: Any) -> Any:
        """The concurrency limiter of a route or cluster (one per name in this worker)."""
        got = self._limiters.get((kind, name))
        if got is None:
            from gwcore.limits.concurrency import Limiter

            got = self._limiters[(kind, name)] = Limiter(f"{kind} {name}", c)
        return got

    def cached(self) -> CacheRuntime | None:
        """The cache store if a filter made it, else None."""
        return self._cache

    def policy(self, name: str, cfg: Config) -> Policy:
        """The named rate limit (one object per name in this worker, whichever routes use
        it): local ones on the shared table, global ones on the Redis client."""
        p = self._policies.get(name)
        if p is None:
            from gwcore.filters.ratelimit import Policy

            spec = cfg.rate_limits[name]
            if spec.scope == "local":
                if self.limits is None:
                    from gwcore.limits import Table

                    self.limits = Table(self.rate_limit_table.slots)
                limit = self.limits.limit(name, spec.requests, spec.period, spec.burst_size)
            else:
                limit = self.remote().limit(name, spec)
            p = self._policies[name] = Policy(name, spec, limit)
        return p

    def policies(self) -> dict[str, Policy]:
        """The rate limits built so far, by name."""
        return dict(self._policies)

    def remote(self) -> Any:
        """This worker's Redis client of global limits (gwcore.limits.redis_limits)."""
        if self._remote is None:
            from gwcore.limits.redis_limits import RedisLimits

            assert self.redis is not None
            self._remote = RedisLimits(self.redis)
        return self._remote

    def cache(self) -> CacheRuntime:
        if self._cache is None:
            from gwcore.filters.cache import CacheRuntime

            self._cache = CacheRuntime(self.cache_settings)
        return self._cache


@dataclass(frozen=True)
class BuiltinFilter:
    """A filter registered by name. ``config``: the msgspec Struct its ``config:`` dict is
    converted to; ``check(config, cfg)``: a problem with what it refers to, as ``"key:
    problem"``, or None; ``build(config, context)``: the filter, in a worker."""

    config: type
    check: Callable[[Any, Config], str | None]
    build: Callable[[Any, FilterContext], Any]


def _jwt_check(c: RouteJwt, cfg: Config) -> str | None:
    if c.provider not in cfg.jwt_providers:
        return f"provider: unknown jwt provider {c.provider!r}"
    return None


def _jwt_build(c: RouteJwt, context: FilterContext) -> Any:
    from gwcore.filters.jwt_auth import JwtAuth

    return JwtAuth(context.jwt_providers[c.provider], c.optional)


def _ratelimit_build(r: int, cfg: Config, context: FilterContext) -> Any:
    """The route's rate limit filter, or None when the proxy session checks all its limits
    itself: local limits keyed by ``source_ip`` or ``route`` alone, without ``headers:
    always``, go to ``context.route_limits`` (compiled, before any filter) — only on a route
    where no filter runs before them (no global filters, no ``jwt``), so the order stays
    jwt → rate limit: a request a filter refuses never spends the budget."""
    import functools

    from gwcore.filters.ratelimit import RateLimitFilter
    from gwcore.limits._gcra import RouteLimits

    route = cfg.routes[r]
    policies = [context.policy(name, cfg) for name in route.rate_limit]
    local = [p for p in policies if p.cfg.scope == "local"]
    remote = [p for p in policies if p.cfg.scope == "global"]
    flt = RateLimitFilter(local, context.remote().check_for(remote) if remote else None)
    earlier = bool(cfg.filters) or route.jwt is not None
    fast = [p for p in local if p.cfg.headers != "always" and isinstance(p.cfg.key, str)
            and not earlier]
    if fast:
        context.route_limits[route.name or f"route-{r}"] = RouteLimits(
            [p.limit for p in fast], "".join("s" if p.cfg.key == "source_ip" else "r"
                                             for p in fast),
            [functools.partial(flt.refuse, p) for p in fast],
            [p.cfg.ipv6_prefix for p in fast])
        flt.local = [p for p in local if p not in fast]
        if not flt.local and not remote and not flt.always:
            return None
    return flt


def _concurrency_build(r: int, cfg: Config, context: FilterContext) -> Any:
    from gwcore.limits.concurrency import ConcurrencyFilter

    route = cfg.routes[r]
    limiters = []
    if route.concurrency is not None:
        limiters.append(context.limiter("route", route.name or f"route-{r}", route.concurrency))
    if not isinstance(route.cluster, str):
        # a split or a model route: its cluster is chosen per request; a model's versions
        # have their own max_in_flight (gwcore/inference)
        return ConcurrencyFilter(limiters, route.priority) if limiters else None
    cluster = next(c for c in cfg.clusters if c.name == route.cluster)
    if cluster.concurrency is not None:
        limiters.append(context.limiter("cluster", cluster.name, cluster.concurrency))
    shedder = None
    if cluster.shedding is not None:
        shedder = context.shedders.get(cluster.name)
        if shedder is None:
            from gwcore.limits.concurrency import Shedder

            lowest = max(rt.priority for rt in cfg.routes if rt.cluster == cluster.name)
            shedder = context.shedders[cluster.name] = Shedder(cluster.shedding, lowest)
    if not limiters and shedder is None:
        return None
    return ConcurrencyFilter(limiters, route.priority, shedder)


def _cache_build(c: RouteCache, context: FilterContext) -> Any:
    from gwcore.filters.cache import CacheFilter

    return CacheFilter(c, context.cache())


def _ip_acl_build(c: IpAcl, context: FilterContext) -> Any:
    from gwcore.filters.ip_acl import IpAclFilter

    return IpAclFilter(c)


BUILTIN_FILTERS: dict[str, BuiltinFilter] = {
    "jwt": BuiltinFilter(RouteJwt, _jwt_check, _jwt_build),   # config {provider, optional}
    "cache": BuiltinFilter(RouteCache, lambda c, cfg: None, _cache_build),   # RouteCache
    # config {allow: [CIDR], deny: [CIDR]} (gwcore/filters/ip_acl.py)
    "ip_acl": BuiltinFilter(IpAcl, lambda c, cfg: None, _ip_acl_build),
}


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and len(e.args) == 1:
        return f"missing key {e.args[0]!r}"
    return str(e) or type(e).__name__


def _import(use: str, where: str) -> Callable[..., Any]:
    """The class (or factory) that ``use`` (``package.module:Class``) names."""
    module_name, _, qualname = use.partition(":")
    if not module_name or not qualname:
        raise ConfigError(f"{where}.use: expected 'package.module:Class', got {use!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name + ".").startswith(e.name + "."):
            raise ConfigError(f"{where}.use: no module named {e.name!r}") from None
        raise ConfigError(f"{where}.use: importing {module_name!r} failed: {e}") from None
    except Exception as e:      # noqa: BLE001 (whatever the module raised while imported)
        raise ConfigError(f"{where}.use: importing {module_name!r} failed: "
                          f"{type(e).__name__}: {e}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where}.use: module {module_name!r} has no "
                              f"{qualname!r}") from None
    if not callable(obj):
        raise ConfigError(f"{where}.use: {use!r} is not a class")
    return obj


def _user_filter(spec: FilterSpec, where: str) -> Any:
    """Import ``spec.use`` and build it with ``spec.config``; ConfigError naming ``where``."""
    cls = _import(spec.use, where)
    try:
        instance = cls(dict(spec.config))
    except Exception as e:      # noqa: BLE001 (a constructor rejecting its config)
        raise ConfigError(f"{where}.config: {_message(e)}") from None
    phases = [p for p in PHASES if callable(getattr(instance, p, None))]
    if not phases:
        raise ConfigError(f"{where}.use: {spec.use!r} implements none of "
                          f"{', '.join(PHASES)}")
    for p in phases:
        if p != "on_request" and inspect.iscoroutinefunction(getattr(instance, p)):
            raise ConfigError(f"{where}.use: {spec.use}.{p} is a coroutine function; only "
                              f"on_request may return an awaitable")
    return instance


def _builtin(name: str, config: Mapping[str, Any], where: str, cfg: Config,
             context: FilterContext | None) -> Any:
    """A built-in filter (None when ``context`` is None: checked only)."""
    builtin = BUILTIN_FILTERS[name]
    try:
        value = msgspec.convert(dict(config), builtin.config, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{where}.config.{_describe(str(e))}") from None
    problem = builtin.check(value, cfg)
    if problem is not None:
        raise ConfigError(f"{where}.config.{problem}")
    return None if context is None else builtin.build(value, context)


def _filter(spec: FilterSpec, where: str, cfg: Config, context: FilterContext | None) -> Any:
    if ":" in spec.use:
        return _user_filter(spec, where)
    if spec.use in BUILTIN_FILTERS:
        return _builtin(spec.use, spec.config, where, cfg, context)
    raise ConfigError(f"{where}.use: unknown filter {spec.use!r}: the built-in filters are "
                      f"{', '.join(sorted(BUILTIN_FILTERS))}; a user filter is "
                      f"'package.module:Class'")


def build_filters(cfg: Config, context: FilterContext | None = None,
                  source: str = "<config>") -> list[tuple[Any, ...]]:
    """Each route's filters in the order they run: the global ``filters``, then the route's
    ``jwt`` shorthand, then the route's ``filters`` (``filter_chains(...)[1]``)."""
    return filter_chains(cfg, context, source)[1]


def filter_chains(cfg: Config, context: FilterContext | None = None, source: str = "<config>"
                  ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """(the global filters, each route's filters in the order they run): the global
    ``filters``, then the route's ``jwt`` shorthand, its ``rate_limit`` limits, its
    ``cache``, its (and its cluster's) ``concurrency``, then the route's ``filters``. Each entry
    of the config is built once (a global filter is one object shared by every route; the
    global ones alone serve requests refused before routing, for ``on_log``). ``context``:
    the worker's; None (``check``) validates built-in filters without building them, and
    leaves them out. Raises ConfigError ``"SOURCE: routes[1].filters[0].use: problem"`` for
    the first entry that cannot be imported or built."""
    def one(spec: FilterSpec, where: str) -> tuple[Any, ...]:
        f = _filter(spec, where, cfg, context)
        return () if f is None else (f,)

    try:
        shared = sum((one(s, f"filters[{i}]") for i, s in enumerate(cfg.filters)), ())
        out = []
        for r, route in enumerate(cfg.routes):
            own: tuple[Any, ...] = ()
            policy = route.jwt_policy
            if policy is not None and context is not None:
                own = (_jwt_build(policy, context),)
            if route.rate_limit and context is not None:     # after JWT: keys may use claims
                limiter = _ratelimit_build(r, cfg, context)
                own += (limiter,) if limiter is not None else ()
            if route.cache is not None and context is not None:
                own += (_cache_build(route.cache, context),)    # after JWT: keys may use claims
            if context is not None:                             # after the cache: hits pass
                limiter = _concurrency_build(r, cfg, context)
                own += (limiter,) if limiter is not None else ()
            for i, spec in enumerate(route.filters):
                where = f"routes[{r}].filters[{i}]"
                if spec.use == "jwt" and route.jwt is not None:
                    raise ConfigError(f"{where}.use: the route's jwt key runs the jwt filter "
                                      f"already")
                if spec.use == "cache" and route.cache is not None:
                    raise ConfigError(f"{where}.use: the route's cache key runs the cache "
                                      f"filter already")
                own += one(spec, where)
            out.append(shared + own)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return shared, out


def check(cfg: Config, source: str = "<config>") -> None:
    """Build what the workers would build from cfg and reading files or importing code needs
    (each file-based JWT provider's key set; each user filter, imported and built once), and
    discard it; build every TLS context (certificates readable, unexpired, matching their
    keys; gwcore.tls); check that the access log file can be appended to (not creating it),
    that ``tracing.otlp`` has the OpenTelemetry SDK it needs, and global rate limits redis-py.
    Raises ConfigError ``"SOURCE: key.path: problem"`` for the first that fails
    (``jwt_providers.NAME.jwks.file``, ``routes[1].filters[0].use``, ``access_log.path``,
    ``tracing.otlp``, ``rate_limits.NAME.scope``...)."""
    if cfg.jwt_providers:
        from gwcore.jwt import PyJWTError

        for name, provider in cfg.jwt_providers.items():
            if provider.jwks.file is None:
                continue
            try:
                key_set(provider.jwks)
            except (OSError, PyJWTError) as e:
                raise ConfigError(f"{source}: jwt_providers.{name}.jwks.file: {e}") from None
    if cfg.filters or any(route.filters for route in cfg.routes):
        filter_chains(cfg, None, source)
    remote = [name for name, rl in cfg.rate_limits.items() if rl.scope == "global"]
    if remote:
        try:
            import gwcore.limits.redis_limits  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"{source}: rate_limits.{remote[0]}.scope: global limits need "
                              f"redis-py with hiredis (pip install 'gwcore[redis]'): "
                              f"{e}") from None
    if cfg.access_log is not None and cfg.access_log.path != "-":
        problem = _unwritable(cfg.access_log.path)
        if problem:
            raise ConfigError(f"{source}: access_log.path: {problem}")
    if any(lst.tls is not None for lst in cfg.listeners) or any(
            c.tls is not None for c in cfg.clusters):
        from gwcore import tls

        try:
            tls.check(cfg)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    if cfg.tracing is not None and cfg.tracing.otlp is not None:
        from gwcore.observability.tracing import missing

        problem = missing()
        if problem is not None:
            raise ConfigError(f"{source}: tracing.otlp: {problem}")


def _unwritable(path: str) -> str | None:
    """Why a worker could not append to the file at path (None: it could), without creating
    it: a directory, no write permission, or a directory that does not exist."""
    if os.path.isdir(path):
        return f"{path} is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else f"{path}: permission denied"
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: permission denied"
    return None


def load(path: str | os.PathLike[str]) -> Config:
    """``gwcore.config.load(path)`` then ``check`` it: a config the workers can start with.
    Raises ConfigError."""
    cfg = load_config(path)
    check(cfg, os.fspath(path))
    return cfg
