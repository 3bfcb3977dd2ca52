#!/bin/sh
# Runs the whole test suite against one build directory and prints the
# closing line "tests: N passed, N failed". Run from the repo root:
#   BUILD=build SEMBED=build/sembed sh tests/run.sh
# Each unit binary prints its own "name: N passed, N failed" line and exits
# non-zero on failure; this script counts suites.
BUILD=${BUILD:-build}
SEMBED=${SEMBED:-$BUILD/sembed}
pass=0
fail=0
run() {
    name=$1
    shift
    start=$(date +%s)
    if "$@"; then
        pass=$((pass + 1))
        echo "ok   $name ($(($(date +%s) - start))s)"
    else
        fail=$((fail + 1))
        echo "FAIL $name"
    fi
}
for t in test_unicode test_kernels test_threadpool test_similarity test_tokenizer test_safetensors test_model test_use test_index test_util test_torch_bin; do
    run "$t" "$BUILD/tests/$t"
done
# the same reference checks on every kernel set this CPU can run
run test_model_avx2 env SE_KERNELS=avx2 "$BUILD/tests/test_model"
run test_model_ref env SE_KERNELS=ref "$BUILD/tests/test_model"
run test_index_ref env SE_KERNELS=ref "$BUILD/tests/test_index"
# bf16 on the widening kernel too (CPUs with AVX-512 but no AVX512-BF16)
run test_model_bf16_widen env SE_BF16=widen "$BUILD/tests/test_model"
run header_c test -f "$BUILD/tests/test_header_c"
run header_cpp test -f "$BUILD/tests/test_header_cpp"
run fuzz_replay "$BUILD/tests/fuzz_replay"
run test_cli /usr/bin/python3 tests/test_cli.py "$SEMBED"
run test_index_cli /usr/bin/python3 tests/test_index_cli.py "$SEMBED"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
