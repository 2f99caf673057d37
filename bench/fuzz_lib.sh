# Shared by bench/fuzz_*.sh (sourced, not run): builds tests/c/fuzz_$NAME.c with
# src_c/$NAME.c under -fsanitize=fuzzer,address,undefined (clang installed from Debian if
# missing) into ${FUZZ_DIR:-/tmp/gwcore-fuzz-$NAME}, where the caller writes its seeds
# (`seed NAME BYTES`, printf syntax) and $NAME.dict; then fuzz_run MAX_LEN runs libFuzzer
# for ${1:-300} seconds with ${2:-1} jobs. Exit status is libFuzzer's.
set -euo pipefail

SECONDS_TO_RUN=${1:-300}
JOBS=${2:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${FUZZ_DIR:-/tmp/gwcore-fuzz-$NAME}

if ! command -v clang >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq clang >/dev/null
fi

mkdir -p "$DIR/corpus" "$DIR/artifacts"
clang -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$ROOT/src_c" "$ROOT/tests/c/fuzz_$NAME.c" "$ROOT/src_c/$NAME.c" -o "$DIR/fuzz_$NAME"

seed() { printf "$2" > "$DIR/corpus/seed-$1"; }

fuzz_run() {
    cd "$DIR"
    exec "./fuzz_$NAME" -max_total_time="$SECONDS_TO_RUN" -jobs="$JOBS" -workers="$JOBS" \
        -max_len="$1" -dict="$NAME.dict" -artifact_prefix=artifacts/ -print_final_stats=1 corpus
}
