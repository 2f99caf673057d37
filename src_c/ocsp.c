/* ocsp.c - OCSP stapling for a server SSL_CTX; the contract is in ocsp.h. */
#include "ocsp.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/tls1.h>

#define GW_OCSP_SKEW 300L   /* seconds of clock skew allowed around thisUpdate/nextUpdate */

struct gw_ocsp_entry {
    X509 *leaf;             /* an X509_up_ref'ed reference */
    unsigned char *der;     /* malloc'ed copy */
    size_t len;
};

struct gw_ocsp_staples {
    int n;
    struct gw_ocsp_entry e[];
};

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int ex_index = -1;

static void staples_free(struct gw_ocsp_staples *st) {
    if (st == NULL)
        return;
    for (int i = 0; i < st->n; i++) {
        X509_free(st->e[i].leaf);
        free(st->e[i].der);
    }
    free(st);
}

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    staples_free(ptr);
}

static void ex_init(void) {
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

static struct gw_ocsp_staples *staples_of(const SSL_CTX *ctx) {
    if (ex_index < 0)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, ex_index);
}

static int same_cert(X509 *a, X509 *b) {
    return a == b || (a != NULL && b != NULL && X509_cmp(a, b) == 0);
}

/* Does cid name leaf (serial and issuer name hash)? */
static int id_matches(const OCSP_CERTID *cid, X509 *leaf) {
    ASN1_OCTET_STRING *name_hash = NULL;
    ASN1_OBJECT *md_obj = NULL;
    ASN1_INTEGER *serial = NULL;
    if (!OCSP_id_get0_info(&name_hash, &md_obj, NULL, &serial, (OCSP_CERTID *)cid))
        return 0;
    if (serial == NULL || ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) != 0)
        return 0;
    const EVP_MD *md = EVP_get_digestbyobj(md_obj);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (md == NULL || name_hash == NULL
        || !X509_NAME_digest(X509_get_issuer_name(leaf), md, h, &n))
        return 0;
    return (int)n == ASN1_STRING_length(name_hash)
           && memcmp(h, ASN1_STRING_get0_data(name_hash), n) == 0;
}

int gw_ocsp_inspect(const unsigned char *der, size_t len, X509 *leaf, int *detail) {
    int rc = GW_OCSP_E_PARSE, d = -1;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    if (der == NULL || leaf == NULL) {
        rc = GW_OCSP_E_ARG;
        goto out;
    }
    if (len == 0 || len > GW_OCSP_MAX_DER)
        goto out;
    const unsigned char *p = der;
    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL || p != der + len)
        goto out;
    int status = OCSP_response_status(resp);
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        rc = GW_OCSP_E_STATUS;
        d = status;
        goto out;
    }
    bs = OCSP_response_get1_basic(resp);
    if (bs == NULL) {
        rc = GW_OCSP_E_NOT_BASIC;
        goto out;
    }
    rc = GW_OCSP_E_NOT_FOR_CERT;
    for (int i = 0; i < OCSP_resp_count(bs); i++) {
        OCSP_SINGLERESP *single = OCSP_resp_get0(bs, i);
        if (single == NULL || !id_matches(OCSP_SINGLERESP_get0_id(single), leaf))
            continue;
        int reason = 0;
        ASN1_GENERALIZEDTIME *rev = NULL, *this_upd = NULL, *next_upd = NULL;
        d = OCSP_single_get0_status(single, &reason, &rev, &this_upd, &next_upd);
        if (d == V_OCSP_CERTSTATUS_REVOKED)
            rc = GW_OCSP_E_REVOKED;
        else if (this_upd == NULL || !OCSP_check_validity(this_upd, next_upd, GW_OCSP_SKEW, -1))
            rc = GW_OCSP_E_EXPIRED;
        else
            rc = GW_OCSP_OK;
        break;
    }
out:
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    if (detail != NULL)
        *detail = d;
    return rc;
}

static int status_cb(SSL *s, void *arg) {
    (void)arg;
    struct gw_ocsp_staples *st = staples_of(SSL_get_SSL_CTX(s));
    X509 *cert = SSL_get_certificate(s);
    if (st == NULL || cert == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (int i = 0; i < st->n; i++) {
        if (!same_cert(st->e[i].leaf, cert))
            continue;
        unsigned char *copy = OPENSSL_malloc(st->e[i].len);
        if (copy == NULL)
            break;
        memcpy(copy, st->e[i].der, st->e[i].len);
        if (!SSL_set_tlsext_status_ocsp_resp(s, copy, (long)st->e[i].len)) {
            OPENSSL_free(copy);
            break;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    ERR_clear_error();
    return SSL_TLSEXT_ERR_NOACK;
}

int gw_ocsp_install(SSL_CTX *ctx, X509 *leaf, const unsigned char *der, size_t len) {
    if (ctx == NULL || leaf == NULL || der == NULL || len == 0 || len > GW_OCSP_MAX_DER)
        return GW_OCSP_E_ARG;
    if (!CRYPTO_THREAD_run_once(&once, ex_init) || ex_index < 0)
        return GW_OCSP_E_NOMEM;
    unsigned char *copy = malloc(len);
    if (copy == NULL)
        return GW_OCSP_E_NOMEM;
    memcpy(copy, der, len);
    struct gw_ocsp_staples *st = staples_of(ctx);
    int n = st == NULL ? 0 : st->n;
    for (int i = 0; i < n; i++) {
        if (same_cert(st->e[i].leaf, leaf)) {
            free(st->e[i].der);
            st->e[i].der = copy;
            st->e[i].len = len;
            goto callback;
        }
    }
    struct gw_ocsp_staples *grown = malloc(sizeof *st + (size_t)(n + 1) * sizeof st->e[0]);
    if (grown == NULL) {
        free(copy);
        return GW_OCSP_E_NOMEM;
    }
    grown->n = n;
    if (n > 0)
        memcpy(grown->e, st->e, (size_t)n * sizeof st->e[0]);
    if (!SSL_CTX_set_ex_data(ctx, ex_index, grown)) {   /* the old set stays in place */
        free(grown);
        free(copy);
        ERR_clear_error();
        return GW_OCSP_E_NOMEM;
    }
    free(st);           /* its entries moved to grown */
    st = grown;
    X509_up_ref(leaf);
    st->e[n] = (struct gw_ocsp_entry){leaf, copy, len};
    st->n = n + 1;
callback:
    SSL_CTX_set_tlsext_status_cb(ctx, status_cb);
    SSL_CTX_set_tlsext_status_arg(ctx, NULL);
    ERR_clear_error();
    return GW_OCSP_OK;
}

int gw_ocsp_count(SSL_CTX *ctx) {
    struct gw_ocsp_staples *st = ctx == NULL ? NULL : staples_of(ctx);
    return st == NULL ? 0 : st->n;
}

const char *gw_ocsp_strerror(int code) {
    switch (code) {
    case GW_OCSP_OK: return "ok";
    case GW_OCSP_E_PARSE: return "not a DER OCSP response";
    case GW_OCSP_E_STATUS: return "the response status is not successful";
    case GW_OCSP_E_NOT_BASIC: return "not a basic OCSP response";
    case GW_OCSP_E_NOT_FOR_CERT: return "no response for this certificate (serial, issuer)";
    case GW_OCSP_E_EXPIRED: return "outside its validity (thisUpdate/nextUpdate)";
    case GW_OCSP_E_REVOKED: return "the certificate is revoked";
    case GW_OCSP_E_NOMEM: return "out of memory";
    case GW_OCSP_E_ARG: return "invalid argument";
    default: return "unknown error";
    }
}
