/* fuzz_path.c - libFuzzer entry point for src_c/path.c (built and run by bench/fuzz_path.sh).
 *
 * Reuses the harness of test_path.c (its main() is compiled out). Byte 0 of the input: bits
 * 0-2 are the flags (GW_PATH_MERGE_SLASHES, _DECODE_SLASHES, _REJECT_SLASHES), bit 3 puts a
 * '/' before the rest so most inputs are paths. check_one() then checks, any failure aborting:
 * - no crash, leak or undefined behaviour (ASan/UBSan), input and output in buffers of
 *   exactly in_len bytes;
 * - the same return value, error and offset, output and `same` flag as the reference
 *   (ref_normalize: RFC 3986 decode, merge, then the 5.2.4 rules A-E);
 * - output no longer than the input, no `.`/`..` segment, no `//` when merging, escapes only
 *   upper-case and never of unreserved bytes, NUL or (decode/reject) slashes;
 * - idempotence: the output normalises to itself and is reported unchanged;
 * - in place gives the same; out_cap one byte short is GW_PATH_NO_ROOM with nothing written.
 */
#define GW_PATH_NO_MAIN
#include "test_path.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char buf[8193];
    if (size < 1 || size > 8192) return 0;
    unsigned flags = data[0] & 7u;
    size_t n = 0;
    if (data[0] & 8u) buf[n++] = '/';
    memcpy(buf + n, data + 1, size - 1);
    n += size - 1;
    check_one("libfuzzer", buf, n, flags, NULL);
    if (failures) abort();
    return 0;
}
