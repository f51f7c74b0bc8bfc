#!/usr/bin/env bash
# test/fuzz/run_keys.sh OUTDIR [SECONDS]
#		Builds the libFuzzer target for src/ciphertext.c (clang-14, ASan and
#		UBSan) in OUTDIR and runs it for SECONDS (default 20) from the seeds
#		in test/fuzz/corpus_ciphertext.  Exits non-zero on a build failure, a
#		crash, a sanitizer report or a broken invariant.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1
SECONDS_MAX=${2:-20}
mkdir -p "$OUT/corpus"
cp "$ROOT"/test/fuzz/corpus_ciphertext/* "$OUT/corpus/"
clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$ROOT/src" $(pkg-config --cflags libsodium libcrypto) \
	"$ROOT/test/fuzz/fuzz_ciphertext.c" "$ROOT/src/ciphertext.c" \
	$(pkg-config --libs libsodium libcrypto) -o "$OUT/fuzz_ciphertext"
cd "$OUT"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	./fuzz_ciphertext -max_total_time="$SECONDS_MAX" -max_len=4096 \
	-print_final_stats=1 corpus
