# distutils: sources = src_c/ocsp.c
# distutils: libraries = ssl crypto
"""OCSP stapling on a server ``ssl.SSLContext`` (src_c/ocsp.c): Python's ssl has no
server-side OCSP API, so this reaches the context's ``SSL_CTX`` and installs OpenSSL's status
callback on it (``SSL_CTX_set_tlsext_status_cb``), over the same libssl that ``_ssl`` uses.

CPython dependency: ``_ssl``'s ``PySSLContext`` struct begins with ``PyObject_HEAD`` then
``SSL_CTX *ctx`` (CPython 3.8 to 3.13). The pointer is read there and only used after checks
that it is a live server context of this process's libssl: its ``SSL_METHOD`` is this libssl's
``TLS_server_method()`` (a second OpenSSL copy, or another layout, fails that), and its
options equal ``ctx.options``. Import fails when the runtime libssl is not the one ``ssl``
reports (``ssl.OPENSSL_VERSION_NUMBER``).

The staples live in the ``SSL_CTX``'s ex_data and are freed with it: nothing needs to be kept
alive on the Python side.
"""

from libc.stdint cimport uint64_t

import ssl

__all__ = ["OcspError", "certificate_count", "check", "staple"]


cdef extern from "openssl/ssl.h":
    ctypedef struct SSL_CTX
    ctypedef struct SSL_METHOD
    ctypedef struct X509
    const SSL_METHOD *TLS_server_method()
    const SSL_METHOD *SSL_CTX_get_ssl_method(const SSL_CTX *ctx)
    uint64_t SSL_CTX_get_options(const SSL_CTX *ctx)
    X509 *SSL_CTX_get0_certificate(const SSL_CTX *ctx)
    unsigned long OpenSSL_version_num()

cdef extern from "ocsp.h":
    int GW_OCSP_OK, GW_OCSP_E_STATUS
    int gw_ocsp_inspect(const unsigned char *der, size_t len, X509 *leaf, int *detail)
    int gw_ocsp_install(SSL_CTX *ctx, X509 *leaf, const unsigned char *der, size_t len)
    int gw_ocsp_count(SSL_CTX *ctx)
    const char *gw_ocsp_strerror(int code)

cdef extern from *:
    """
    typedef struct { PyObject_HEAD SSL_CTX *ctx; } gw_py_ssl_context;  /* _ssl.c's head */
    #define GW_PY_SSL_CTX(o) (((gw_py_ssl_context *)(o))->ctx)
    """
    SSL_CTX *GW_PY_SSL_CTX(object o)


if OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
    raise ImportError(f"gwcore._ocsp: libssl {OpenSSL_version_num():#x} is not the one ssl "
                      f"uses ({ssl.OPENSSL_VERSION})")

_STATUS = {1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired",
           6: "unauthorized"}
_CERT_STATUS = {0: "good", 1: "revoked", 2: "unknown"}


class OcspError(ValueError):
    """A staple that cannot be served: ``code`` is src_c/ocsp.h's gw_ocsp_error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


cdef SSL_CTX *_ssl_ctx(object ctx) except NULL:
    if not isinstance(ctx, ssl.SSLContext):
        raise TypeError(f"an ssl.SSLContext is needed, not {type(ctx).__name__}")
    cdef SSL_CTX *p = GW_PY_SSL_CTX(ctx)
    if p == NULL or SSL_CTX_get_ssl_method(p) != TLS_server_method():
        raise TypeError("not a server context of this process's libssl "
                        "(PROTOCOL_TLS_SERVER; or _ssl's layout changed)")
    if SSL_CTX_get_options(p) != <uint64_t>int(ctx.options):
        raise TypeError("the SSL_CTX read from the context does not match it "
                        "(_ssl's layout changed)")
    return p


cdef X509 *_leaf(SSL_CTX *p) except NULL:
    cdef X509 *leaf = SSL_CTX_get0_certificate(p)
    if leaf == NULL:
        raise ValueError("the context has no certificate (load_cert_chain first)")
    return leaf


def check(ctx: ssl.SSLContext, der: bytes) -> str:
    """Check ``der`` (an OCSPResponse) for the certificate ``ctx`` loaded last: the
    certificate status ("good" or "unknown"), else OcspError saying what is wrong."""
    cdef SSL_CTX *p = _ssl_ctx(ctx)
    cdef X509 *leaf = _leaf(p)
    if not der:
        raise OcspError(-1, gw_ocsp_strerror(-1).decode() + " (empty)")
    cdef const unsigned char[:] view = der
    cdef int detail = -1
    cdef int rc = gw_ocsp_inspect(&view[0], len(der), leaf, &detail)
    if rc != GW_OCSP_OK:
        msg = gw_ocsp_strerror(rc).decode()
        if rc == GW_OCSP_E_STATUS:
            msg += f" ({_STATUS.get(detail, detail)})"
        raise OcspError(rc, msg)
    return _CERT_STATUS.get(detail, str(detail))


def staple(ctx: ssl.SSLContext, der: bytes) -> str:
    """check() ``der`` for the certificate ``ctx`` loaded last, then staple it for that
    certificate (replacing an earlier staple for it); returns its status."""
    status = check(ctx, der)
    cdef SSL_CTX *p = _ssl_ctx(ctx)
    cdef const unsigned char[:] view = der
    cdef int rc = gw_ocsp_install(p, _leaf(p), &view[0], len(der))
    if rc != GW_OCSP_OK:
        raise OcspError(rc, gw_ocsp_strerror(rc).decode())
    return status


def certificate_count(ctx: ssl.SSLContext) -> int:
    """The number of certificates ``ctx`` has a staple for."""
    return gw_ocsp_count(_ssl_ctx(ctx))
