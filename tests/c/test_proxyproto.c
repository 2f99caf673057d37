/* test_proxyproto.c - unit tests for src_c/proxyproto.h (PROXY protocol v1 and v2).
 *
 * A table of headers (valid and invalid, v1 and v2: TCP4, TCP6, UNKNOWN, LOCAL, TLVs, bad
 * addresses, ports, signatures, families, lengths), each followed by client bytes that must
 * not be consumed. Each is fed whole, then every proper prefix of the header (which must be
 * -2 for a valid header: incomplete, never a wrong answer), each in a heap buffer of exactly
 * its length so ASan catches a read past it. Random bytes after a valid signature never read
 * out of bounds. Exit status 0 when every check passes.
 */
#include "proxyproto.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static int parse_exact(const char *s, size_t n, gw_proxy_hdr *h) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int r = gw_proxy_parse(copy, n, h);
    free(copy);
    return r;
}

static const char TAIL[] = "GET / HTTP/1.1\r\n";

/* header (hlen bytes) + TAIL: whole → hlen; every prefix of the header → -2 */
static void valid(const char *hdr, size_t hlen, int family, int local, const char *src,
                  int sport) {
    char buf[512];
    gw_proxy_hdr h;
    memcpy(buf, hdr, hlen);
    memcpy(buf + hlen, TAIL, sizeof TAIL - 1);
    int r = parse_exact(buf, hlen + sizeof TAIL - 1, &h);
    CHECK_MSG(r == (int)hlen, "got %d want %zu for %.*s", r, hlen, (int)hlen, hdr);
    CHECK(parse_exact(buf, hlen, &h) == (int)hlen);
    CHECK(h.local == local);
    if (!local) {
        CHECK(h.family == family);
        char text[64];
        inet_ntop(family == 4 ? AF_INET : AF_INET6, h.src, text, sizeof text);
        CHECK_MSG(strcmp(text, src) == 0, "src %s want %s", text, src);
        CHECK(h.src_port == sport);
    }
    for (size_t n = 0; n < hlen; n++) {
        int p = parse_exact(buf, n, &h);
        CHECK_MSG(p == -2, "prefix %zu of %.*s gave %d", n, (int)hlen, hdr, p);
    }
}

static void invalid(const char *hdr, size_t hlen) {
    gw_proxy_hdr h;
    int r = parse_exact(hdr, hlen, &h);
    CHECK_MSG(r == -1, "got %d for invalid %.*s", r, (int)hlen, hdr);
}

#define V1OK(s, fam, src, port) valid(s, sizeof(s) - 1, fam, 0, src, port)
#define BAD(s) invalid(s, sizeof(s) - 1)

static size_t v2(unsigned char *b, int ver_cmd, int fam, const unsigned char *body,
                 size_t blen) {
    memcpy(b, gw_proxy_v2_sig, 12);
    b[12] = (unsigned char)ver_cmd;
    b[13] = (unsigned char)fam;
    b[14] = (unsigned char)(blen >> 8);
    b[15] = (unsigned char)blen;
    memcpy(b + 16, body, blen);
    return 16 + blen;
}

int main(void) {
    V1OK("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", 4, "192.0.2.1", 56324);
    V1OK("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", 6, "2001:db8::1", 1);
    V1OK("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n", 4, "0.0.0.0", 0);
    valid("PROXY UNKNOWN\r\n", 15, 0, 1, NULL, 0);
    valid("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 35, 0, 1, NULL, 0);

    BAD("GET / HTTP/1.1\r\n");
    BAD("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n");
    BAD("PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n");
    BAD("PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n");
    BAD("PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n");
    BAD("PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n");
    BAD("PROXY UNKNOWNX\r\n");
    BAD("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n");
    BAD("\r\n\r\n\0\r\nQUIX\n");
    {   /* no CRLF within 107 bytes */
        char big[200];
        memcpy(big, "PROXY UNKNOWN ", 14);
        memset(big + 14, 'a', sizeof big - 14);
        invalid(big, sizeof big);
        gw_proxy_hdr h;
        CHECK(parse_exact(big, 106, &h) == -2);
        CHECK(parse_exact(big, 107, &h) == -1);
    }

    unsigned char b[600], body[300];
    gw_proxy_hdr h;
    /* v2 TCP4 */
    unsigned char t4[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB};
    size_t n = v2(b, 0x21, 0x11, t4, 12);
    valid((const char *)b, n, 4, 0, "192.0.2.1", 0xDC04);
    /* v2 TCP4 with a TLV after the addresses */
    memcpy(body, t4, 12);
    memcpy(body + 12, "\x04\x00\x03" "abc", 6);
    n = v2(b, 0x21, 0x11, body, 18);
    valid((const char *)b, n, 4, 0, "192.0.2.1", 0xDC04);
    /* v2 TCP6 */
    memset(body, 0, 36);
    body[0] = 0x20; body[1] = 0x01; body[2] = 0x0d; body[3] = 0xb8; body[15] = 7;
    body[32] = 0x30; body[33] = 0x39;
    n = v2(b, 0x21, 0x21, body, 36);
    valid((const char *)b, n, 6, 0, "2001:db8::7", 12345);
    /* v2 LOCAL (with an address block and with none) */
    n = v2(b, 0x20, 0x00, body, 0);
    valid((const char *)b, n, 0, 1, NULL, 0);
    n = v2(b, 0x20, 0x11, t4, 12);
    valid((const char *)b, n, 0, 1, NULL, 0);
    /* v2 PROXY over UNSPEC: local */
    n = v2(b, 0x21, 0x00, body, 0);
    valid((const char *)b, n, 0, 1, NULL, 0);

    /* v2 invalid */
    n = v2(b, 0x11, 0x11, t4, 12);  invalid((const char *)b, n);    /* version 1 */
    n = v2(b, 0x22, 0x11, t4, 12);  invalid((const char *)b, n);    /* command 2 */
    n = v2(b, 0x21, 0x12, t4, 12);  invalid((const char *)b, n);    /* UDP */
    n = v2(b, 0x21, 0x41, t4, 12);  invalid((const char *)b, n);    /* family 4 */
    n = v2(b, 0x21, 0x11, t4, 11);  invalid((const char *)b, n);    /* short TCP4 */
    n = v2(b, 0x21, 0x21, body, 35); invalid((const char *)b, n);   /* short TCP6 */
    n = v2(b, 0x21, 0x31, body, 20); invalid((const char *)b, n);   /* short UNIX */
    /* a length beyond the bytes given: incomplete */
    n = v2(b, 0x21, 0x11, t4, 12);
    b[15] = 200;
    CHECK(parse_exact((const char *)b, n, &h) == -2);

    /* random bytes after a valid signature: an answer, never a read out of bounds */
    unsigned int seed = 12345;
    for (int i = 0; i < 200000; i++) {
        size_t len = 12 + (size_t)(rand_r(&seed) % 80);
        memcpy(b, gw_proxy_v2_sig, 12);
        for (size_t k = 12; k < len; k++)
            b[k] = (unsigned char)rand_r(&seed);
        if (len > 15 && (rand_r(&seed) & 1))
            b[14] = 0, b[15] = (unsigned char)(len - 16 - (rand_r(&seed) % 3));
        int r = parse_exact((const char *)b, len, &h);
        CHECK(r == -1 || r == -2 || (r >= 16 && (size_t)r <= len));
    }
    for (int i = 0; i < 100000; i++) {     /* v1 with random tails */
        size_t len = 6 + (size_t)(rand_r(&seed) % 110);
        memcpy(b, "PROXY ", 6);
        for (size_t k = 6; k < len; k++)
            b[k] = "TCP46UNKOW 0123456789.:abcdef\r\n"[rand_r(&seed) % 31];
        int r = parse_exact((const char *)b, len, &h);
        CHECK(r == -1 || r == -2 || (r >= 8 && (size_t)r <= len));
    }
    return check_summary("proxyproto");
}
