/* test_ocsp.c - src_c/ocsp.c: gw_ocsp_inspect on responses made here with libcrypto (good,
 * revoked, expired, another certificate, an unsuccessful status, garbage, trailing bytes),
 * and gw_ocsp_install over an in-memory TLS 1.3 and 1.2 handshake: a client asking for status
 * gets the installed DER, one not asking gets none, a context without a staple sends none,
 * replacing a staple serves the new one. ASan checks the ex_data entries are freed with the
 * SSL_CTX and the OPENSSL_malloc'ed copies by OpenSSL. */
#include "ocsp.h"

#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "check.h"

static EVP_PKEY *ec_key(void) {
    return EVP_EC_gen("P-256");
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       long serial) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    X509_sign(x, issuer_key, EVP_sha256());
    return x;
}

/* A DER OCSP response for leaf (issued by ca), signed by the CA; *len its length. */
static unsigned char *make_resp(X509 *leaf, X509 *ca, EVP_PKEY *ca_key, int status,
                                long this_off, long next_off, int *len) {
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), leaf, ca);
    ASN1_TIME *now = X509_gmtime_adj(NULL, this_off), *next = X509_gmtime_adj(NULL, next_off);
    ASN1_TIME *rev = status == V_OCSP_CERTSTATUS_REVOKED ? X509_gmtime_adj(NULL, -7200) : NULL;
    OCSP_basic_add1_status(bs, id, status, OCSP_REVOKED_STATUS_KEYCOMPROMISE, rev, now, next);
    OCSP_basic_sign(bs, ca, ca_key, EVP_sha256(), NULL, OCSP_NOCERTS);
    OCSP_RESPONSE *r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    unsigned char *der = NULL;
    *len = i2d_OCSP_RESPONSE(r, &der);
    OCSP_RESPONSE_free(r);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(id);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_TIME_free(rev);
    return der;
}

static void test_inspect(X509 *ca, EVP_PKEY *ca_key, X509 *leaf, X509 *other) {
    int len, detail;
    unsigned char *good = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, -60, 86400, &len);
    CHECK(gw_ocsp_inspect(good, (size_t)len, leaf, &detail) == GW_OCSP_OK);
    CHECK(detail == V_OCSP_CERTSTATUS_GOOD);
    CHECK(gw_ocsp_inspect(good, (size_t)len, other, &detail) == GW_OCSP_E_NOT_FOR_CERT);
    CHECK(detail == -1);
    CHECK(gw_ocsp_inspect(good, (size_t)len - 1, leaf, NULL) == GW_OCSP_E_PARSE);
    unsigned char longer[4096];
    memcpy(longer, good, (size_t)len);
    longer[len] = 0;
    CHECK(gw_ocsp_inspect(longer, (size_t)len + 1, leaf, NULL) == GW_OCSP_E_PARSE);
    CHECK(gw_ocsp_inspect(good, 0, leaf, NULL) == GW_OCSP_E_PARSE);
    CHECK(gw_ocsp_inspect(NULL, 5, leaf, NULL) == GW_OCSP_E_ARG);
    CHECK(gw_ocsp_inspect((const unsigned char *)"garbage", 7, leaf, NULL) == GW_OCSP_E_PARSE);
    OPENSSL_free(good);

    unsigned char *revoked = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_REVOKED, -60, 86400,
                                       &len);
    CHECK(gw_ocsp_inspect(revoked, (size_t)len, leaf, &detail) == GW_OCSP_E_REVOKED);
    CHECK(detail == V_OCSP_CERTSTATUS_REVOKED);
    OPENSSL_free(revoked);

    unsigned char *unknown = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_UNKNOWN, -60, 86400,
                                       &len);
    CHECK(gw_ocsp_inspect(unknown, (size_t)len, leaf, &detail) == GW_OCSP_OK);
    CHECK(detail == V_OCSP_CERTSTATUS_UNKNOWN);
    OPENSSL_free(unknown);

    unsigned char *expired = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, -86400, -3600,
                                       &len);
    CHECK(gw_ocsp_inspect(expired, (size_t)len, leaf, NULL) == GW_OCSP_E_EXPIRED);
    OPENSSL_free(expired);

    OCSP_RESPONSE *later = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, NULL);
    unsigned char *der = NULL;
    len = i2d_OCSP_RESPONSE(later, &der);
    CHECK(gw_ocsp_inspect(der, (size_t)len, leaf, &detail) == GW_OCSP_E_STATUS);
    CHECK(detail == OCSP_RESPONSE_STATUS_TRYLATER);
    OPENSSL_free(der);
    OCSP_RESPONSE_free(later);
    CHECK(ERR_peek_error() == 0);
    CHECK(strcmp(gw_ocsp_strerror(GW_OCSP_E_REVOKED), "the certificate is revoked") == 0);
}

/* -- handshakes over memory BIOs --------------------------------------------------------- */

static unsigned char got[4096];
static long got_len;

static int client_status_cb(SSL *s, void *arg) {
    (void)arg;
    const unsigned char *p = NULL;
    got_len = SSL_get_tlsext_status_ocsp_resp(s, &p);
    if (got_len > 0 && got_len <= (long)sizeof got)
        memcpy(got, p, (size_t)got_len);
    return 1;
}

/* One handshake of a fresh client (asking for status or not) with a server on sctx. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, int ask, int version) {
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
    BIO_up_ref(c2s);
    BIO_up_ref(s2c);
    SSL_set_bio(c, s2c, c2s);
    SSL_set_bio(s, c2s, s2c);
    SSL_set_max_proto_version(c, version);
    if (ask)
        SSL_set_tlsext_status_type(c, TLSEXT_STATUSTYPE_ocsp);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    got_len = -2;
    int done_c = 0, done_s = 0;
    for (int i = 0; i < 20 && !(done_c && done_s); i++) {
        if (!done_c)
            done_c = SSL_do_handshake(c) == 1;
        if (!done_s)
            done_s = SSL_do_handshake(s) == 1;
    }
    int ok = done_c && done_s && SSL_version(c) == version;
    SSL_free(c);
    SSL_free(s);
    ERR_clear_error();
    return ok;
}

static void test_install(X509 *ca, EVP_PKEY *ca_key, X509 *leaf, EVP_PKEY *leaf_key) {
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *plain = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    CHECK(SSL_CTX_use_certificate(sctx, leaf) == 1 && SSL_CTX_use_PrivateKey(sctx, leaf_key) == 1);
    CHECK(SSL_CTX_use_certificate(plain, leaf) == 1);
    CHECK(SSL_CTX_use_PrivateKey(plain, leaf_key) == 1);
    SSL_CTX_set_tlsext_status_cb(cctx, client_status_cb);

    int len1, len2;
    unsigned char *r1 = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, -60, 86400, &len1);
    unsigned char *r2 = make_resp(leaf, ca, ca_key, V_OCSP_CERTSTATUS_GOOD, -30, 7200, &len2);
    CHECK(len1 != len2 || memcmp(r1, r2, (size_t)len1) != 0);
    CHECK(gw_ocsp_install(NULL, leaf, r1, (size_t)len1) == GW_OCSP_E_ARG);
    CHECK(gw_ocsp_count(sctx) == 0);
    CHECK(gw_ocsp_install(sctx, leaf, r1, (size_t)len1) == GW_OCSP_OK);
    CHECK(gw_ocsp_count(sctx) == 1);

    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        CHECK(handshake(sctx, cctx, 1, v));
        CHECK_MSG(got_len == len1 && memcmp(got, r1, (size_t)len1) == 0, "v %x got %ld", v,
                  got_len);
        CHECK(handshake(sctx, cctx, 0, v));
        CHECK(got_len == -2);           /* the client callback did not run */
        CHECK(handshake(plain, cctx, 1, v));
        CHECK(got_len == -1);           /* asked, nothing stapled */
    }
    CHECK(gw_ocsp_install(sctx, leaf, r2, (size_t)len2) == GW_OCSP_OK);   /* replaces */
    CHECK(gw_ocsp_count(sctx) == 1);
    CHECK(handshake(sctx, cctx, 1, TLS1_3_VERSION));
    CHECK(got_len == len2 && memcmp(got, r2, (size_t)len2) == 0);

    /* a second certificate on the same context (another key type would be chosen by the
     * client's signature algorithms; here: an entry for a certificate not in use is ignored) */
    EVP_PKEY *k = ec_key();
    X509 *unused = make_cert("unused", k, ca, ca_key, 99);
    CHECK(gw_ocsp_install(sctx, unused, r1, (size_t)len1) == GW_OCSP_OK);
    CHECK(gw_ocsp_count(sctx) == 2);
    CHECK(handshake(sctx, cctx, 1, TLS1_3_VERSION));
    CHECK(got_len == len2 && memcmp(got, r2, (size_t)len2) == 0);
    X509_free(unused);
    EVP_PKEY_free(k);

    OPENSSL_free(r1);
    OPENSSL_free(r2);
    SSL_CTX_free(sctx);         /* frees the entries (ASan: no leak) */
    SSL_CTX_free(plain);
    SSL_CTX_free(cctx);
    CHECK(ERR_peek_error() == 0);
}

int main(void) {
    EVP_PKEY *ca_key = ec_key(), *leaf_key = ec_key(), *other_key = ec_key();
    X509 *ca = make_cert("test CA", ca_key, NULL, ca_key, 1);
    X509 *leaf = make_cert("leaf", leaf_key, ca, ca_key, 2);
    X509 *other = make_cert("other", other_key, ca, ca_key, 3);
    test_inspect(ca, ca_key, leaf, other);
    test_install(ca, ca_key, leaf, leaf_key);
    X509_free(ca);
    X509_free(leaf);
    X509_free(other);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
    OPENSSL_cleanup();
    return check_summary("ocsp");
}
