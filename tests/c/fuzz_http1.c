/* fuzz_http1.c - libFuzzer entry point for src_c/http1.c (built and run by bench/fuzz_http1.sh).
 *
 * Reuses the harness of test_http1.c (its main() is compiled out). Byte 0 of the input picks
 * the target: bits 0-1 = 0 request head, 1 response head, 2 chunked body, 3 both head parsers;
 * bit 2 = take small limits from bytes 1-3. Checks, any failure aborting:
 * - no crash, leak or undefined behaviour (ASan/UBSan);
 * - structural invariants of every result (offsets within the input, tokens, trimmed values);
 * - the same result at every SIMD level;
 * - every prefix (32 spread prefixes for inputs over 512 bytes) yields -2 or the whole result;
 * - chunked: whole, one byte at a time and three cuts give the same data, error and end.
 */
#define GW_HTTP1_NO_MAIN
#include "test_http1.c"

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void fuzz_head(kind_t k, const char *in, size_t len, const gw_limits *lim, uint64_t seed) {
    static result whole, r;
    parse_levels(k, in, len, lim, &whole, "libfuzzer");
    size_t step = len > 512 ? len / 32 : 1;
    for (size_t p = len > 512 ? seed % step : 0; p < len; p += step) {
        run(k, in, p, lim, &r);
        CHECK_MSG(r.ret == -2 || same_result(&whole, &r), "prefix %zu of %zu: %d vs %d", p, len,
                  r.ret, whole.ret);
    }
}

static void fuzz_chunked(const char *in, size_t len, uint64_t seed) {
    static cresult whole, r;
    chunked_feed(in, len, NULL, 0, &whole);
    chunked_feed_3cuts(in, len, seed, seed >> 20, seed >> 40, &r);
    CHECK_MSG(same_chunked(&whole, &r), "cuts differ");
    chunked_feed_bytewise(in, len, &r);
    CHECK_MSG(same_chunked_data(&whole, &r), "byte at a time differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (nlevels == 0) {
        int max = gw_http1_set_simd(2);
        for (int l = 0; l <= max; l++) levels[nlevels++] = l;
    }
    if (size < 1 || size > 16384) return 0;
    uint8_t mode = data[0];
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    gw_limits lim = DEF;
    if ((mode & 4) && len >= 3) {
        lim.max_head_bytes = (uint32_t)body[0] * 8u;
        lim.max_fields = body[1] % 24u;
        lim.max_target_len = body[2];
        body += 3;
        len -= 3;
    }
    uint64_t seed = fnv1a(data, size);
    const char *in = (const char *)body;
    switch (mode & 3) {
    case 0: fuzz_head(REQ, in, len, &lim, seed); break;
    case 1: fuzz_head(RESP, in, len, &lim, seed); break;
    case 2: fuzz_chunked(in, len, seed); break;
    default:
        fuzz_head(REQ, in, len, &lim, seed);
        fuzz_head(RESP, in, len, &lim, seed);
    }
    if (failures) abort();
    return 0;
}
