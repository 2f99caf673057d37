cdef class Route:
    cdef readonly object config       # gwcore.config.Route
    cdef readonly object cluster      # gwcore.proxy._upstream.Cluster
    cdef readonly str name
    cdef readonly tuple filters
    cdef readonly tuple on_request, on_response_head, on_response_body, on_log
    cdef readonly bint forward_normalized_path
    cdef readonly double request_timeout   # seconds; 0: none
    cdef public long m_base               # its metrics block (gwcore.observability.metrics)
    cdef public long m_jwt                # its JWT provider's metrics block, or -1
    cdef public object limits             # gwcore.limits._gcra.RouteLimits, or None
    cdef public object split              # gwcore.inference.models.ClusterSplit, or None
    cdef public object model              # gwcore.inference.models.ModelRoute, or None

cdef class Router:
    cdef list _matchers
    cpdef Route match(self, bytes host, bytes target, bytes method)
