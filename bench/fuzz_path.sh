#!/usr/bin/env bash
# Coverage-guided fuzzing of the path normaliser (src_c/path.c) with libFuzzer.
#
# Usage: bench/fuzz_path.sh [SECONDS] [JOBS]     (default: 300 seconds, 1 job)
# Installs clang from Debian if missing, builds tests/c/fuzz_path.c with
# -fsanitize=fuzzer,address,undefined and runs it with a small seed corpus and a dictionary
# (bench/fuzz_lib.sh).
# Work files (binary, corpus, crash reproducers) go to ${FUZZ_DIR:-/tmp/gwcore-fuzz-path}.
# Not part of the test suite; exit status is libFuzzer's (non-zero when it found a failure).
NAME=path
. "$(dirname "$0")/fuzz_lib.sh"

# Seeds: byte 0 = flags (1 merge, 2 decode, 4 reject) + 8 to put a '/' in front.
seed plain    '\003/v1/users/42'
seed spell    '\003/%%76%%31/x'
seed dots     '\003/x/../v1/./x/..'
seed above    '\001/../../a/%%2e%%2E/b'
seed slashes  '\003//v1//x%%2F..%%2Fadmin'
seed keep     '\001/v1%%2fx%%5c'
seed reject   '\005/v1%%2Fx'
seed bad      '\003/a%%4'
seed nul      '\003/a%%00'
seed upper    '\000/%%3f%%c3%%a9%%7e'
seed noslash  '\013a/./b'

cat > "$DIR/path.dict" <<'DICT'
"/"
"//"
"/./"
"/../"
"%2e"
"%2E"
"%2f"
"%2F"
"%5c"
"%5C"
"%00"
"%7e"
"%25"
"%"
DICT

fuzz_run 512
