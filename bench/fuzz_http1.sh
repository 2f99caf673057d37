#!/usr/bin/env bash
# Coverage-guided fuzzing of the HTTP/1.1 parser (src_c/http1.c) with libFuzzer.
#
# Usage: bench/fuzz_http1.sh [SECONDS] [JOBS]     (default: 300 seconds, 1 job)
# Installs clang from Debian if missing, builds tests/c/fuzz_http1.c with
# -fsanitize=fuzzer,address,undefined and runs it with a small seed corpus and a dictionary
# (bench/fuzz_lib.sh).
# Work files (binary, corpus, crash reproducers) go to ${FUZZ_DIR:-/tmp/gwcore-fuzz-http1}.
# Not part of the test suite; exit status is libFuzzer's (non-zero when it found a failure).
NAME=http1
. "$(dirname "$0")/fuzz_lib.sh"

# Seeds: byte 0 selects request (0), response (1), chunked (2), both heads (3); bit 2 adds
# small limits from the next 3 bytes.
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

fuzz_run 4096
