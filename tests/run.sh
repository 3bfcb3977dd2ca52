#!/bin/sh
# Runs the whole test suite against one build directory and prints the
# closing line "tests: N passed, N failed". `make test` runs it with the
# test lists of the Makefile (TESTS, CLI_TESTS, SH_TESTS: the only place
# tests are named); run by hand, from the repo root, it asks make for them:
#   BUILD=build SEMBED=build/sembed sh tests/run.sh
# Each test prints its own "name: N passed, N failed" line and exits
# non-zero on failure; this script counts suites.
BUILD=${BUILD:-build}
SEMBED=${SEMBED:-$BUILD/sembed}
[ -n "${TESTS+set}" ] || TESTS=$(make -s --no-print-directory print-TESTS)
[ -n "${CLI_TESTS+set}" ] || CLI_TESTS=$(make -s --no-print-directory print-CLI_TESTS)
[ -n "${SH_TESTS+set}" ] || SH_TESTS=$(make -s --no-print-directory print-SH_TESTS)
export BUILD SEMBED
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
# listed NAME: true when NAME is one of $TESTS
listed() {
    case " $TESTS " in *" $1 "*) return 0 ;; esac
    return 1
}
for t in $TESTS; do
    run "$t" "$BUILD/tests/$t"
done
# the same reference checks on every kernel set this CPU can run; the
# AVX2 set only where it is not already the default (a CPU with AVX-512),
# and bf16's widening kernel only where AVX512-BF16 would otherwise be used
cpu_has() { [ ! -r /proc/cpuinfo ] || grep -qw "$1" /proc/cpuinfo; }
avx2_differs=false
cpu_has avx512f && avx2_differs=true
bf16_differs=false
cpu_has avx512_bf16 && bf16_differs=true
$avx2_differs && listed test_model && run test_model_avx2 env SE_KERNELS=avx2 "$BUILD/tests/test_model"
listed test_model && run test_model_ref env SE_KERNELS=ref "$BUILD/tests/test_model"
listed test_index && run test_index_ref env SE_KERNELS=ref "$BUILD/tests/test_index"
listed test_train_kernels && run test_train_kernels_ref env SE_KERNELS=ref "$BUILD/tests/test_train_kernels"
$avx2_differs && listed test_archs && run test_archs_avx2 env SE_KERNELS=avx2 "$BUILD/tests/test_archs"
listed test_archs && run test_archs_ref env SE_KERNELS=ref "$BUILD/tests/test_archs"
$avx2_differs && listed test_rerank && run test_rerank_avx2 env SE_KERNELS=avx2 "$BUILD/tests/test_rerank"
listed test_rerank && run test_rerank_ref env SE_KERNELS=ref "$BUILD/tests/test_rerank"
# bf16 on the widening kernel too (CPUs with AVX-512 but no AVX512-BF16)
$bf16_differs && listed test_model && run test_model_bf16_widen env SE_BF16=widen "$BUILD/tests/test_model"
$avx2_differs || echo "skip test_model_avx2, test_archs_avx2, test_rerank_avx2: AVX2 is this CPU's default set (no AVX-512)"
$bf16_differs || echo "skip test_model_bf16_widen: no AVX512-BF16 here, bf16 widens by default"
run header_c test -f "$BUILD/tests/test_header_c"
run header_cpp test -f "$BUILD/tests/test_header_cpp"
run fuzz_replay "$BUILD/tests/fuzz_replay"
for t in $CLI_TESTS; do
    run "$t" /usr/bin/python3 "tests/$t.py" "$SEMBED"
done
for t in $SH_TESTS; do
    run "$t" sh "tests/$t.sh"
done
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
