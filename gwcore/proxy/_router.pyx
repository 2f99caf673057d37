"""Router: (host, request-target, method) → route, first match in config order.

Compiled because it runs on every request: the downstream connection calls ``match`` as a
C method, and no Python object is built unless a route has a host match (the normalized
Host) or the target is in absolute-form."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp


cdef class Route:
    """A matched route: its config (gwcore.config.Route), ``name`` (str), the runtime cluster
    its requests go to (None when chosen per request: ``split``, a weighted split between
    clusters, or ``model``, a model route; gwcore/inference), its filters in order (global ones first; gwcore.filters), and for
    each phase the bound methods of the filters that implement it (``on_request``,
    ``on_response_head``, ``on_response_body``, ``on_log``: tuples, empty when none does)."""

    def __init__(self, config, cluster, tuple filters=(), str name=None):
        self.config = config
        self.cluster = cluster
        self.name = name if name is not None else getattr(config, "name", None) or "route"
        self.filters = filters
        self.on_request = _phase(filters, "on_request")
        self.on_response_head = _phase(filters, "on_response_head")
        self.on_response_body = _phase(filters, "on_response_body")
        self.on_log = _phase(filters, "on_log")
        self.forward_normalized_path = getattr(config, "forward_normalized_path", False)
        timeouts = getattr(config, "timeouts", None)
        self.request_timeout = (timeouts.request or 0.0) if timeouts is not None else 0.0
        self.m_jwt = -1

    def __repr__(self):
        return f"Route({self.config!r}, {self.cluster!r})"


cdef tuple _phase(tuple filters, str name):
    return tuple(getattr(f, name) for f in filters if callable(getattr(f, name, None)))


@cython.final
cdef class _Matcher:
    cdef Route route
    cdef bytes host            # exact host, lower-case (None: any)
    cdef bytes host_suffix     # ".example.com" for "*.example.com"
    cdef bytes path            # exact path
    cdef bytes prefix          # path prefix
    cdef frozenset methods

    def __init__(self, Route route):
        m = route.config.match
        host = m.host.lower().encode() if m.host else None
        self.route = route
        self.host_suffix = host[1:] if host and host.startswith(b"*.") else None
        self.host = None if self.host_suffix is not None else host
        self.path = m.path.encode() if m.path is not None else None
        self.prefix = m.path_prefix.encode() if m.path_prefix is not None else None
        self.methods = frozenset(x.encode() for x in m.methods) if m.methods else None


cdef inline bint _starts(const char *s, Py_ssize_t n, bytes prefix) noexcept:
    cdef Py_ssize_t k = PyBytes_GET_SIZE(prefix)
    return n >= k and memcmp(s, PyBytes_AS_STRING(prefix), k) == 0


cdef class Router:
    """Matches requests against routes in order. ``host`` matches exactly or as ``*.suffix``
    (one or more labels before the suffix), case-insensitively and without the port; ``path``
    exactly and ``path_prefix`` as a prefix of the target's path (before ``?``)."""

    def __init__(self, routes, clusters, filters=None):
        """routes: gwcore.config.Route list; clusters: name → runtime cluster;
        ``filters(route_config)`` gives each route's filters in order (default: none).
        A route is named by its config's ``name``, else ``route-<index>``."""
        self._matchers = [
            _Matcher(Route(r, clusters[r.cluster] if isinstance(r.cluster, str) else None,
                           filters(r) if filters else (),
                           getattr(r, "name", None) or f"route-{i}"))
            for i, r in enumerate(routes)]

    def routes(self) -> list:
        """The routes, in config order."""
        cdef _Matcher m
        return [m.route for m in self._matchers]

    cpdef Route match(self, bytes host, bytes target, bytes method):
        """host: the Host field value (b"" if none); target: the request-target (origin-form,
        or absolute-form, RFC 9112 §3.2; the gateway passes the normalised path); method:
        the method token. Bytes.
        Returns the first matching Route or None."""
        cdef _Matcher m
        cdef const char *t
        cdef const char *q
        cdef Py_ssize_t path_len, k
        cdef bytes h = None
        if PyBytes_GET_SIZE(target) == 0 or PyBytes_AS_STRING(target)[0] != 47:   # "/"
            target, host = split_absolute(target, host)
        t = PyBytes_AS_STRING(target)
        q = <const char *>memchr(t, 63, PyBytes_GET_SIZE(target))              # "?"
        path_len = q - t if q != NULL else PyBytes_GET_SIZE(target)
        for m in self._matchers:
            if m.methods is not None and method not in m.methods:
                continue
            if m.host is not None or m.host_suffix is not None:
                if h is None:
                    h = _host_only(host)
                if m.host is not None and h != m.host:
                    continue
                if m.host_suffix is not None:
                    k = PyBytes_GET_SIZE(m.host_suffix)
                    if PyBytes_GET_SIZE(h) <= k or memcmp(
                            PyBytes_AS_STRING(h) + PyBytes_GET_SIZE(h) - k,
                            PyBytes_AS_STRING(m.host_suffix), k) != 0:
                        continue
            if m.path is not None and (path_len != PyBytes_GET_SIZE(m.path) or memcmp(
                    t, PyBytes_AS_STRING(m.path), path_len) != 0):
                continue
            if m.prefix is not None and not _starts(t, path_len, m.prefix):
                continue
            return m.route
        return None


cdef bytes _host_only(bytes host):
    """b"Example.COM:8080" → b"example.com"; b"[::1]:80" → b"[::1]"."""
    host = host.lower()
    if host.startswith(b"["):
        return host.partition(b"]")[0] + b"]"
    return host.partition(b":")[0]


def split_absolute(bytes target, bytes host):
    """absolute-form → (origin-form target, authority); the authority replaces Host
    (RFC 9112 §3.2.2). The authority ends at the first "/", "?" or "#" (RFC 3986 §3.2);
    b"http://h?x=1" → (b"/?x=1", b"h"). Other forms come back unchanged."""
    _scheme, sep, rest = target.partition(b"://")
    if not sep:
        return target, host     # asterisk-form or authority-form: routed by Host only
    end = next((i for i, c in enumerate(rest) if c in b"/?#"), len(rest))
    authority, tail = rest[:end], rest[end:].partition(b"#")[0]
    if not tail.startswith(b"/"):
        tail = b"/" + tail
    return tail, authority
