#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Sources/GatewayFuzz) with -sanitize=fuzzer,address in their
# own scratch path and runs each for FUZZ_SECONDS (default 60), or only FUZZ_TARGET. docs/fuzzing.md.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   FUZZ_SECONDS=20 scripts/fuzz.sh      the CI smoke
#   FUZZ_TARGET=resp scripts/fuzz.sh     one target
#   FUZZ_SKIP="config" scripts/fuzz.sh   every target but these
#
# Seeds are read from Fuzz/corpus/<target>/ (checked in, never written); what the fuzzer finds
# goes to .build/fuzz/corpus/<target>/ (kept between runs, not committed). A crash, leak or
# broken invariant stops that target, leaves its input in .build/fuzz/artifacts/ and makes the
# script fail after the other targets ran.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=(request_head jose json jwks config resp form cookie authorization http1)
if [[ -n "${FUZZ_TARGET:-}" ]]; then
    TARGETS=("$FUZZ_TARGET")
fi
# FUZZ_SKIP: targets left out (space-separated), each named in the output.
for skipped in ${FUZZ_SKIP:-}; do
    echo "== $skipped: skipped (FUZZ_SKIP)"
    TARGETS=($(printf '%s\n' "${TARGETS[@]}" | grep -vx "$skipped" || true))
done
SCRATCH=.build/fuzz
BINARY=$SCRATCH/debug/GatewayFuzz

dictionary() {
    case "$1" in
    request_head | form | cookie | authorization | http1) echo Fuzz/dict/http.dict ;;
    jose | json | jwks) echo Fuzz/dict/json.dict ;;
    config) echo Fuzz/dict/toml.dict ;;
    resp) echo Fuzz/dict/resp.dict ;;
    *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

started=$(date +%s)
DBGW_FUZZ=1 "$SWIFT" build -c debug --scratch-path "$SCRATCH" --product GatewayFuzz \
    -Xswiftc -sanitize=fuzzer,address
echo "fuzz build: $(($(date +%s) - started)) s"

mkdir -p "$SCRATCH/artifacts"
failed=()
summary=()
for target in "${TARGETS[@]}"; do
    dict=$(dictionary "$target")
    mkdir -p "$SCRATCH/corpus/$target"
    log="$SCRATCH/artifacts/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET} s (log: $log)"
    status=0
    # Swift's own backtracer reads the stack in a way AddressSanitizer reports; libFuzzer's
    # report is the one wanted.
    DBGW_FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no \
        LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp:print_suppressions=0" \
        "$BINARY" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -dict="$dict" -artifact_prefix="$SCRATCH/artifacts/$target-" \
        "$SCRATCH/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$target: ${runs:-?} executions, exit $status")
    if [[ $status -ne 0 ]]; then
        failed+=("$target")
        grep -E "ERROR|Fatal error|invariant broken|Test unit written" "$log" | head -5 || true
    fi
done
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: failures in ${failed[*]} (inputs in $SCRATCH/artifacts/)" >&2
    exit 1
fi
