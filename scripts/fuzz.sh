#!/usr/bin/env bash
# The fuzzing and sanitizer checks (tests/fuzz/README.md). Installs clang-14 and libFuzzer from
# Debian when missing (needs root or sudo the first time), configures build-sanitize/ (clang,
# -DSSLD_SANITIZE=ON -DSSLD_FUZZ=ON: ASan + UBSan + libFuzzer coverage on ssld's code, libtorch
# uninstrumented) and builds only the fuzz targets and the sanitized tests.
#
#   scripts/fuzz.sh [SECONDS]       replay the regression inputs, then fuzz every target for
#                                   SECONDS (default 60) each; new findings are copied into
#                                   tests/fuzz/regressions/<target>/ (commit them with the fix)
#   scripts/fuzz.sh --replay        only replay tests/fuzz/regressions/
#   scripts/fuzz.sh --tests         only run the sanitized tests: the reader unit tests, then the
#                                   e2e suites that drive the program through its readers
#                                   (check, train with resume, sweep, mine) under ASan + UBSan
#   scripts/fuzz.sh --ci [SECONDS]  all three (what scripts/test.sh runs; default 20 s a target)
#
# FUZZ_TARGETS="idx config" limits the targets. The exit status is non-zero when a test fails,
# a regression input still fails, or (except with --ci) fuzzing found something.
#
# Sanitizer options (tests/fuzz/sanitizer_options.cpp sets the same defaults in the binaries):
#   ASAN_OPTIONS=detect_leaks=0   libtorch and OpenCV keep process-lifetime singletons that are
#                                 never freed; LeakSanitizer would report them at every exit.
#   UBSAN_OPTIONS=print_stacktrace=1  without it a UBSan report names only the faulting line.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

mode=fuzz
seconds=60
case "${1:-}" in
  --replay) mode=replay ;;
  --tests) mode=tests ;;
  --ci) mode=ci; seconds=${2:-20} ;;
  "") ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] | --replay | --tests | --ci [SECONDS]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac

packages=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

build=build-sanitize
export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
if [ ! -f "$build/build.ninja" ]; then
  # -O1 with line tables: ASan's recommended speed, symbolized stacks, a quicker build than -O2 -g.
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" -DSSLD_SANITIZE=ON -DSSLD_FUZZ=ON
fi
build_targets=()
if [ "$mode" != tests ]; then build_targets+=(ssld_fuzz_targets); fi
# The e2e suites run the sanitized program with the sanitized built-in and test plugins.
e2e_suites=(ssld_cli_tests ssld_train_tests ssld_sweep_tests ssld_mine_tests ssld_feature_tests)
if [ "$mode" = tests ] || [ "$mode" = ci ]; then
  build_targets+=(ssld_reader_tests ssld ssld_builtin_plugins ssld_test_plugins "${e2e_suites[@]}")
fi
started=$SECONDS
cmake --build "$build" -j "$(nproc)" --target "${build_targets[@]}"
echo "fuzz: build took $((SECONDS - started)) s"

all_targets=(torch_file safetensors checkpoint idx config teacher_cache cache_key mine_state sweep_manifest image_decode)
read -r -a targets <<< "${FUZZ_TARGETS:-${all_targets[*]}}"
status=0
libfuzzer_flags=(-rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=10)

# The 20-trial kill -9 and concurrent-writer loops are left to the normal build: they repeat
# what the resume and teacher-cache tests already drive through the same readers, at ten times
# their time under ASan. So is the Python-trained teacher's test, whose time is Python's.
e2e_filter() {
  case "$1" in
    ssld_train_tests) echo "-Train.KilledAtRandomMoments*:Train.TwoRunsFillingOneTeacherCacheKey*:PythonTeacher.*" ;;
    ssld_sweep_tests) echo "-Sweep.TwoSweepsFillingOneTeacherCacheStore*" ;;
    *) echo "*" ;;
  esac
}

run_tests() {
  local started=$SECONDS
  echo "fuzz: reader unit tests under ASan + UBSan"
  if ! "$build/bin/ssld_reader_tests" --gtest_brief=1; then status=1; fi
  echo "fuzz: reader tests took $((SECONDS - started)) s"
  # The e2e suites, two at a time (the machine's two cores; each is mostly waiting on a child
  # process), each into its own log, printed when the suite fails.
  started=$SECONDS
  echo "fuzz: e2e suites under ASan + UBSan: ${e2e_suites[*]}"
  mkdir -p "$build/fuzz-out"
  local pids=() names=()
  for suite in "${e2e_suites[@]}"; do
    "$build/bin/$suite" --gtest_brief=1 --gtest_filter="$(e2e_filter "$suite")" \
      > "$build/fuzz-out/$suite.log" 2>&1 &
    pids+=($!) names+=("$suite")
    if ((${#pids[@]} == 2)); then wait_suites; fi
  done
  wait_suites
  echo "fuzz: e2e suites took $((SECONDS - started)) s"
}

wait_suites() {
  local i
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      echo "fuzz: ${names[$i]} passed ($(grep -oE '[0-9]+ tests? from .* ran\.' "$build/fuzz-out/${names[$i]}.log" | tail -1))"
    else
      echo "fuzz: ${names[$i]} FAILED under the sanitizers:"
      grep -E "FAILED|ERROR: AddressSanitizer|runtime error|Failure" "$build/fuzz-out/${names[$i]}.log" | head -40
      echo "  (log: $build/fuzz-out/${names[$i]}.log)"
      status=1
    fi
  done
  pids=() names=()
}

# The first report line and the first frame in ssld's own code (for an escaped exception, in
# the trace of where it was thrown): one finding per signature.
signature() {
  local log=$1 kind frame
  kind=$(grep -m1 -oE "ERROR: AddressSanitizer: [a-z-]+|runtime error: [^0-9']+|unexpected failure \(exit 1 in ssld\): [^ ]+|ERROR: libFuzzer: [a-z-]+" "$log" || true)
  frame=$(grep -oE "(${repo}/)?(host|plugins|sdk)/[^ ]+:[0-9]+" "$log" | head -1 | sed "s|^${repo}/||" || true)
  echo "${kind:-unknown} at ${frame:-?}"
}

replay() {
  local failed=0
  for target in "${targets[@]}"; do
    local folder="tests/fuzz/regressions/$target"
    [ -d "$folder" ] || continue
    for input in "$folder"/*; do
      [ -f "$input" ] || continue
      local log="$build/fuzz-out/replay.log"
      mkdir -p "$build/fuzz-out"
      if ! "$build/fuzz/fuzz_$target" "${libfuzzer_flags[@]}" "$input" > "$log" 2>&1; then
        echo "fuzz: regression $input still fails: $(signature "$log")"
        failed=1
      fi
    done
  done
  [ "$failed" = 0 ] && echo "fuzz: every regression input passes" || status=1
}

fuzz() {
  local table="$build/fuzz-out/summary.txt" findings_file="$build/fuzz-out/findings.txt"
  mkdir -p "$build/fuzz-out"
  : > "$findings_file"
  printf '%-16s | %12s | %8s | %s\n' target executions findings "new regression inputs" > "$table"
  for target in "${targets[@]}"; do
    local binary="$build/fuzz/fuzz_$target" seeds="$build/fuzz-seeds/$target" corpus="$build/fuzz-corpus/$target"
    local artifacts="$build/fuzz-out/$target/" log="$build/fuzz-out/$target.log"
    rm -rf "$seeds" "$artifacts" "$build/fuzz-out/$target.findings"
    mkdir -p "$seeds" "$corpus" "$artifacts"
    # Seeds: the target's own (ssld's writers), then files from python3-torch, PIL and configs/.
    if ! SSLD_FUZZ_WRITE_SEEDS="$seeds" "$binary" > "$log" 2>&1; then
      echo "fuzz: $target could not write its seeds:"; tail -5 "$log"; status=1
    fi
    case "$target" in
      torch_file) /usr/bin/python3 tests/unit/fixtures/torch_files.py write "$seeds" > /dev/null || status=1 ;;
      image_decode) /usr/bin/python3 tests/unit/fixtures/make_image_fixtures.py "$seeds" > /dev/null || status=1 ;;
      config) find configs -name '*.toml' -exec cp {} "$seeds/" \; ;;
    esac
    echo "fuzz: $target for $seconds s ($(ls "$seeds" | wc -l) seeds, $(ls "$corpus" | wc -l) in the corpus)"
    # -fork=1 with -ignore_*: a finding does not end the run; each one lands in $artifacts.
    "$binary" "${libfuzzer_flags[@]}" -max_total_time="$seconds" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
      -ignore_ooms=1 -artifact_prefix="$artifacts" "$corpus" "$seeds" > "$log" 2>&1 || true
    local executions
    executions=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    # Keep one input per distinct finding (the same defect is hit by many inputs).
    local -A seen=()
    local found=0 added=0
    for artifact in "$artifacts"*; do
      [ -f "$artifact" ] || continue
      found=$((found + 1))
      local replay_log
      replay_log="$build/fuzz-out/$target.findings/$(basename "$artifact").log"
      mkdir -p "$(dirname "$replay_log")"
      "$binary" "${libfuzzer_flags[@]}" "$artifact" > "$replay_log" 2>&1 || true
      local sig
      sig=$(signature "$replay_log")
      [ -z "${seen[$sig]:-}" ] || continue
      seen[$sig]=1
      mkdir -p "tests/fuzz/regressions/$target"
      local name
      name="tests/fuzz/regressions/$target/$(basename "$artifact")"
      if [ ! -f "$name" ]; then
        cp "$artifact" "$name"
        added=$((added + 1))
      fi
      printf '%s: %s\n  input %s\n  log %s\n' "$target" "$sig" "$name" "$replay_log" >> "$findings_file"
    done
    # A finding fails a fuzzing run; in --ci it is reported and kept as a regression input but does
    # not fail the run: a short random search that happens on a new defect opens an issue with its
    # input, while the replayed regressions and the sanitized tests guard what was fixed.
    if ((found > 0)) && [ "$mode" != ci ]; then status=1; fi
    printf '%-16s | %12s | %8s | %s\n' "$target" "${executions:-?}" "${#seen[@]}" "$added" >> "$table"
    unset seen
  done
  echo
  cat "$table"
  if [ -s "$findings_file" ]; then
    echo
    cat "$findings_file"
  fi
}

case "$mode" in
  tests) run_tests ;;
  replay) replay ;;
  fuzz) replay; fuzz ;;
  ci) run_tests; replay; fuzz ;;
esac
exit "$status"
