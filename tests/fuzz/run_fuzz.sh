#!/usr/bin/env bash
# run_fuzz.sh: build every libFuzzer harness tests/fuzz/fuzz_<name>.c and run it over its seed
# corpus tests/fuzz/corpus_<name>/ for a number of seconds each. Not part of ctest (needs clang and
# minutes of CPU); run by hand or in CI.
#
#   tests/fuzz/run_fuzz.sh [seconds] [name ...]     e.g.  tests/fuzz/run_fuzz.sh 180 fasta
#
# Each harness names what it links in its first lines:
#   // fuzz-sources: core/pdr_fasta.c core/pdr_err.c
#   // fuzz-libs: -lz
# Binaries, the growing corpus and crash files go under $FUZZ_OUT (default /tmp/pdr-fuzz); the
# seed corpus in the repository is only read. Exit status 1 if any harness failed to build or
# found a crash; the crash input is in $FUZZ_OUT/artifacts_<name>/ (reproduce: run the binary on it).
set -u
cd "$(dirname "$0")/../.." || exit 2

secs=${1:-20}
[ $# -gt 0 ] && shift
out=${FUZZ_OUT:-/tmp/pdr-fuzz}
cc=${CC:-clang}
max_len=${FUZZ_MAX_LEN:-16384}
mkdir -p "$out"

failed=()
for harness in tests/fuzz/fuzz_*.c; do
    [ -e "$harness" ] || continue
    name=$(basename "$harness" .c)
    name=${name#fuzz_}
    if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
        continue
    fi
    sources=$(sed -n 's|^// fuzz-sources:||p' "$harness" | head -n 1)
    libs=$(sed -n 's|^// fuzz-libs:||p' "$harness" | head -n 1)
    bin="$out/fuzz_$name"
    echo "== fuzz_$name: building"
    # shellcheck disable=SC2086 # the source and library lists are meant to split
    if ! "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Icore -Iembed -Iindex -Iservice \
        $sources "$harness" $libs -o "$bin"; then
        failed+=("$name (build)")
        continue
    fi
    corpus="$out/corpus_$name"
    artifacts="$out/artifacts_$name"
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    [ -d "tests/fuzz/corpus_$name" ] && seeds=("tests/fuzz/corpus_$name")
    echo "== fuzz_$name: ${secs}s over ${seeds[*]:-no seeds}"
    if ! "$bin" -max_total_time="$secs" -timeout=10 -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" "${seeds[@]}"; then
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "run_fuzz: FAILED: ${failed[*]} (see $out/artifacts_*)" >&2
    exit 1
fi
echo "run_fuzz: all harnesses ran clean"
