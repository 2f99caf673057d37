/* PROXY protocol v1 (text) and v2 (binary) header parser (HAProxy's proxy-protocol.txt).
 *
 * Contract: gw_proxy_parse(buf, len, out) looks at the first len bytes a connection sent.
 *   returns > 0   the header is complete and valid: that many bytes are the header (what
 *                 follows is the client's own data); *out is filled
 *           -2    incomplete: every byte so far may start a valid header; call again with
 *                 more (a v1 header is at most 107 bytes, a v2 one 16 + 65535)
 *           -1    invalid (not a PROXY header, malformed, an unsupported family/command)
 * out->local is 1 for v1 UNKNOWN, v2 LOCAL, and v2 PROXY over a family other than TCP over
 * IPv4/IPv6 (UNSPEC, UNIX): the connection's own addresses stand. Otherwise out->family is
 * 4 or 6 and src/dst hold the addresses in network order (4 or 16 bytes), ports host order.
 * v2 TLVs are skipped. The caller owns buf; out need not be initialised. No allocation.
 */
#ifndef GW_PROXYPROTO_H
#define GW_PROXYPROTO_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int version;            /* 1 or 2 */
    int local;              /* 1: no address carried (see above) */
    int family;             /* 4 or 6; 0 when local */
    unsigned char src[16], dst[16];
    uint16_t src_port, dst_port;
} gw_proxy_hdr;

#define GW_PROXY_V1_MAX 107

static const char gw_proxy_v2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n',
                                         'Q', 'U', 'I', 'T', '\n'};

/* a decimal port without a leading zero (except "0"), 0..65535; -1 if not one */
static inline int gw_proxy_port(const char *p, size_t n) {
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* one address token (family 4 or 6) into dst; 0 ok, -1 bad */
static inline int gw_proxy_addr(const char *p, size_t n, int family, unsigned char *dst) {
    char tmp[48];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    return inet_pton(family == 4 ? AF_INET : AF_INET6, tmp, dst) == 1 ? 0 : -1;
}

static inline int gw_proxy_parse_v1(const char *buf, size_t len, gw_proxy_hdr *out) {
    size_t lim = len < GW_PROXY_V1_MAX ? len : GW_PROXY_V1_MAX;
    const char *end = NULL;
    for (size_t i = 0; i < lim; i++) {
        if (buf[i] == '\n' || buf[i] == '\0')
            return -1;
        if (buf[i] == '\r') {
            if (i + 1 == lim)
                break;              /* the LF may come next */
            if (buf[i + 1] != '\n')
                return -1;
            end = buf + i;
            break;
        }
    }
    if (end == NULL)
        return len >= GW_PROXY_V1_MAX ? -1 : -2;
    size_t total = (size_t)(end - buf) + 2;
    out->version = 1;
    out->local = 0;
    out->family = 0;
    const char *p = buf + 6, *e = end;
    if ((size_t)(e - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (e - p == 7 || p[7] == ' ')) {
        out->local = 1;
        return (int)total;
    }
    if ((size_t)(e - p) < 5 || memcmp(p, "TCP", 3) != 0 || (p[3] != '4' && p[3] != '6')
            || p[4] != ' ')
        return -1;
    out->family = p[3] - '0';
    p += 5;
    /* four fields separated by single spaces: src dst sport dport */
    const char *f[4];
    size_t fl[4];
    for (int k = 0; k < 4; k++) {
        const char *s = p;
        while (p < e && *p != ' ')
            p++;
        if (p == s)
            return -1;
        f[k] = s;
        fl[k] = (size_t)(p - s);
        if (k < 3) {
            if (p >= e)
                return -1;
            p++;            /* the space */
        }
    }
    if (p != e)
        return -1;
    if (gw_proxy_addr(f[0], fl[0], out->family, out->src) != 0
            || gw_proxy_addr(f[1], fl[1], out->family, out->dst) != 0)
        return -1;
    int sp = gw_proxy_port(f[2], fl[2]), dp = gw_proxy_port(f[3], fl[3]);
    if (sp < 0 || dp < 0)
        return -1;
    out->src_port = (uint16_t)sp;
    out->dst_port = (uint16_t)dp;
    return (int)total;
}

static inline int gw_proxy_parse_v2(const unsigned char *b, size_t len, gw_proxy_hdr *out) {
    if (len < 16)
        return -2;
    if ((b[12] & 0xF0) != 0x20)
        return -1;
    int cmd = b[12] & 0x0F;
    if (cmd > 1)
        return -1;
    size_t body = ((size_t)b[14] << 8) | b[15];
    if (len < 16 + body)
        return -2;
    out->version = 2;
    out->local = 1;
    out->family = 0;
    int fam = b[13] >> 4, proto = b[13] & 0x0F;
    if (fam > 3 || proto > 2)
        return -1;
    if (cmd == 0)                       /* LOCAL: health checks of the proxy itself */
        return (int)(16 + body);
    if (proto == 2)                     /* DGRAM over a stream listener */
        return -1;
    if (fam == 1 && proto == 1) {       /* TCP over IPv4 */
        if (body < 12)
            return -1;
        out->family = 4;
        memcpy(out->src, b + 16, 4);
        memcpy(out->dst, b + 20, 4);
        out->src_port = (uint16_t)((b[24] << 8) | b[25]);
        out->dst_port = (uint16_t)((b[26] << 8) | b[27]);
        out->local = 0;
    } else if (fam == 2 && proto == 1) {    /* TCP over IPv6 */
        if (body < 36)
            return -1;
        out->family = 6;
        memcpy(out->src, b + 16, 16);
        memcpy(out->dst, b + 32, 16);
        out->src_port = (uint16_t)((b[48] << 8) | b[49]);
        out->dst_port = (uint16_t)((b[50] << 8) | b[51]);
        out->local = 0;
    } else if (fam == 3 && body < 216) {    /* UNIX: two 108-byte paths */
        return -1;
    }
    return (int)(16 + body);
}

static inline int gw_proxy_parse(const char *buf, size_t len, gw_proxy_hdr *out) {
    if (len == 0)
        return -2;
    if (buf[0] == 'P') {
        size_t n = len < 6 ? len : 6;
        if (memcmp(buf, "PROXY ", n) != 0)
            return -1;
        return len < 6 ? -2 : gw_proxy_parse_v1(buf, len, out);
    }
    if (buf[0] == '\r') {
        size_t n = len < 12 ? len : 12;
        if (memcmp(buf, gw_proxy_v2_sig, n) != 0)
            return -1;
        return gw_proxy_parse_v2((const unsigned char *)buf, len, out);
    }
    return -1;
}

#endif
