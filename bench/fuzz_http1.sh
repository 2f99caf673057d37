#!/usr/bin/env bash
# Coverage-guided fuzzing of the HTTP/1.1 parser (src_c/http1.c) with libFuzzer.
#
# Usage: bench/fuzz_http1.sh [SECONDS] [JOBS]     (default: 300 seconds, 1 job)
# Installs clang from Debian if missing, builds tests/c/fuzz_http1.c with
# -fsanitize=fuzzer,address,undefined and runs it with a small seed corpus and a dictionary.
# Work files (binary, corpus, crash reproducers) go to ${FUZZ_DIR:-/tmp/gwcore-fuzz-http1}.
# Not part of the test suite; exit status is libFuzzer's (non-zero when it found a failure).
set -euo pipefail

SECONDS_TO_RUN=${1:-300}
JOBS=${2:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${FUZZ_DIR:-/tmp/gwcore-fuzz-http1}

if ! command -v clang >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq clang >/dev/null
fi

mkdir -p "$DIR/corpus" "$DIR/artifacts"
clang -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$ROOT/src_c" "$ROOT/tests/c/fuzz_http1.c" "$ROOT/src_c/http1.c" -o "$DIR/fuzz_http1"

# Seeds: byte 0 selects request (0), response (1), chunked (2), both heads (3); bit 2 adds
# small limits from the next 3 bytes.
seed() { printf "$2" > "$DIR/corpus/seed-$1"; }
seed req    '\000GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nConnection: keep-alive, x\r\n\r\nhello'
seed req2   '\000\r\nPOST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nX-A: \t v\x80\r\n\r\n'
seed req10  '\000GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nUser-Agent: curl/8\r\n\r\n'
seed resp   '\001HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello'
seed resp2  '\001HTTP/1.1 304\r\nETag: "x"\r\nTransfer-Encoding: chunked\r\n\r\n'
seed chunk  '\0025;a=b\r\nhello\r\n1A;q="x\\"y"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nGET'
seed both   '\003HTTP/1.1 200 OK\r\nHost: a\r\n\r\n'
seed limits '\004\010\003\010GET /12345678 HTTP/1.1\r\nHost: a\r\nA: b\r\nC: d\r\n\r\n'

cat > "$DIR/http1.dict" <<'DICT'
"HTTP/1.1"
"HTTP/1.0"
"HTTP/2.0"
"\x0d\x0a"
"\x0d\x0a\x0d\x0a"
"GET "
"POST "
"CONNECT "
"Host:"
"Content-Length:"
"Transfer-Encoding:"
"chunked"
"gzip"
"Connection:"
"close"
"keep-alive"
"Expect:"
"100-continue"
" 200 OK"
";a=\"b\""
"0\x0d\x0a\x0d\x0a"
"ffffffffffffffff"
DICT

cd "$DIR"
exec ./fuzz_http1 -max_total_time="$SECONDS_TO_RUN" -jobs="$JOBS" -workers="$JOBS" \
    -max_len=4096 -dict=http1.dict -artifact_prefix=artifacts/ -print_final_stats=1 corpus
