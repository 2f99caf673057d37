from libc.stdint cimport int64_t


cdef class Exchange:
    cdef readonly object request          # gwcore.http.Request, or None (no filters)
    cdef readonly bytes method, target, path
    cdef readonly str client_address
    cdef readonly object route            # gwcore.proxy._router.Route, or None
    cdef readonly str route_name
    cdef readonly object cluster
    cdef readonly str endpoint
    cdef readonly int tries
    cdef readonly int status
    cdef readonly int64_t bytes_received, bytes_sent
    cdef readonly int64_t t_received, t_upstream, t_response, t_end
    cdef readonly str end
    cdef readonly str request_id          # the X-Request-Id sent upstream (or None)
    cdef readonly int64_t response_length # the upstream response's body length, -1 unknown
    cdef public str trace_id, parent_id, span_id   # W3C Trace Context: 32/16/16 hex, or None
    cdef public bint sampled
    cdef public str auth                  # the JWT filter's outcome (ok, or why not), or None
    cdef public str cache                 # the cache's outcome (HIT, MISS...), or None
    cdef public str model, model_version  # a model route: the model named, the version
                                          # (or fallback cluster) that served it, or None
    cdef object _state
    cdef readonly list upstream_fields     # [(name, value)] added upstream, or None
    cdef readonly set removed_fields       # lower-case names not forwarded, or None
    # for a combined-format access log only (else None / False): NGINX's $http_referer,
    # $http_user_agent, and the request-line's version
    cdef readonly bytes referer, user_agent
    cdef readonly bint http10


cdef int64_t now_ns() noexcept
cdef Exchange new_exchange(bytes method, bytes target, str client_address)
