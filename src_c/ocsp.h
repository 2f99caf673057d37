/* ocsp.h - OCSP stapling for a server SSL_CTX (RFC 6066 §8 status_request, RFC 6960).
 *
 * Contract
 * - Python's ssl has no server-side OCSP API; this is the small piece gwcore adds over the
 *   same libssl/libcrypto that CPython's _ssl module uses (never a second OpenSSL copy: the
 *   binding, gwcore/_ocsp.pyx, refuses a context whose SSL_METHOD is not this libssl's).
 * - gw_ocsp_inspect checks a DER OCSPResponse against a leaf certificate: it parses, its
 *   responseStatus is successful, it is a basic response with a SingleResponse for the leaf
 *   (serial number and issuer name hash, any hash algorithm), within its validity (5 minutes
 *   of clock skew allowed) and not "revoked". The responder's signature is not verified (the
 *   issuer may not be at hand; the client verifies it). It allocates nothing that outlives it.
 * - gw_ocsp_install copies the DER into an entry kept in the SSL_CTX's ex_data, beside an
 *   X509_up_ref of the leaf; the entries are freed with the SSL_CTX (ex_data free callback).
 *   The caller keeps ownership of der and leaf. Installing for a leaf that already has an
 *   entry replaces its DER. It sets the context's status callback (SSL_CTX_set_tlsext_status_cb):
 *   when a client asks for status, the callback finds the entry of the certificate the
 *   handshake chose (SSL_get_certificate), copies its DER into an OPENSSL_malloc'ed buffer and
 *   hands it to SSL_set_tlsext_status_ocsp_resp (OpenSSL owns and frees it) and returns
 *   SSL_TLSEXT_ERR_OK; no entry for that certificate: SSL_TLSEXT_ERR_NOACK (nothing stapled);
 *   out of memory: SSL_TLSEXT_ERR_NOACK too (a handshake never fails for a staple).
 * - Return values: 0 success, a negative gw_ocsp_error otherwise.
 * - Threads: install before the context is used by connections (the master does, before it
 *   forks); the callback only reads the entries. The OpenSSL error queue is left empty.
 */
#ifndef GW_OCSP_H
#define GW_OCSP_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#define GW_OCSP_MAX_DER (1 << 20)   /* a staple larger than 1 MiB is refused */

enum gw_ocsp_error {
    GW_OCSP_OK = 0,
    GW_OCSP_E_PARSE = -1,         /* not a DER OCSPResponse (or empty, or over GW_OCSP_MAX_DER) */
    GW_OCSP_E_STATUS = -2,        /* responseStatus is not successful (*detail: the status) */
    GW_OCSP_E_NOT_BASIC = -3,     /* no basic response in it */
    GW_OCSP_E_NOT_FOR_CERT = -4,  /* no SingleResponse for the certificate (serial, issuer) */
    GW_OCSP_E_EXPIRED = -5,       /* nextUpdate has passed (or thisUpdate in the future) */
    GW_OCSP_E_REVOKED = -6,       /* the certificate's status is revoked */
    GW_OCSP_E_NOMEM = -7,
    GW_OCSP_E_ARG = -8,           /* a NULL argument, or the context has no certificate */
};

/* Check der (len bytes) for leaf, as above. *detail (may be NULL): the responseStatus on
 * GW_OCSP_E_STATUS, else the certificate status (V_OCSP_CERTSTATUS_GOOD/REVOKED/UNKNOWN) when
 * a SingleResponse was found, -1 otherwise. */
int gw_ocsp_inspect(const unsigned char *der, size_t len, X509 *leaf, int *detail);

/* Staple der for leaf on ctx (see the contract). */
int gw_ocsp_install(SSL_CTX *ctx, X509 *leaf, const unsigned char *der, size_t len);

/* The number of staples installed on ctx (tests). */
int gw_ocsp_count(SSL_CTX *ctx);

/* A short English name of an error code. */
const char *gw_ocsp_strerror(int code);

#endif
