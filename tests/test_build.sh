#!/bin/sh
# test_build.sh - build hygiene (issue 9): CI builds with -Werror, the kernel
# objects come from one pattern rule with per-file flags, every test is
# named once (the Makefile's lists drive tests/run.sh and `make tsan`), and
# NOTES.md says what the code does about mapped weights.
# Run from the repo root: sh tests/test_build.sh
. tests/shtest.sh
unset MAKEFLAGS MFLAGS MAKELEVEL

# .ci/run, run in a scratch tree with a stub setup.sh and a stub make that
# record their calls: it sets up without the demo, then runs `make check`,
# both with -Werror (setup.sh's build is the optimised one make check uses).
t_ci_werror() {
    mkdir -p "$T/ci/.ci" "$T/ci/bin"
    cp .ci/run "$T/ci/.ci/run"
    printf '#!/bin/sh\necho "setup.sh $* EXTRA_CFLAGS=$EXTRA_CFLAGS" >>"%s"\n' "$T/ci/calls" >"$T/ci/setup.sh"
    printf '#!/bin/sh\necho "make $* EXTRA_CFLAGS=$EXTRA_CFLAGS" >>"%s"\n' "$T/ci/calls" >"$T/ci/bin/make"
    chmod 755 "$T/ci/setup.sh" "$T/ci/bin/make"
    PATH="$T/ci/bin:$PATH" sh "$T/ci/.ci/run" || say ".ci/run failed" || return
    grep -q '^setup.sh --no-demo ' "$T/ci/calls" || say "no setup.sh --no-demo:" "$(cat "$T/ci/calls")" || return
    # setup.sh's own `make` builds the optimised tree: -Werror there too
    grep '^setup.sh' "$T/ci/calls" | grep -q -- '-Werror' || say "setup.sh builds without -Werror:" "$(cat "$T/ci/calls")" || return
    grep -q '^make .*check' "$T/ci/calls" || say "no make check:" "$(cat "$T/ci/calls")" || return
    grep '^make .*check' "$T/ci/calls" | grep -q -- '-Werror' || say "make check without -Werror:" "$(cat "$T/ci/calls")" || return
}

# One pattern rule builds every library object; the kernels get their
# instruction-set flags through target-specific variables.
t_kernel_pattern_rule() {
    n=$(grep -c '^\$(BUILD)/obj/kernels_[a-z0-9]*\.o:.*src/' Makefile)
    [ "$n" -eq 0 ] || say "$n copied kernel rules in the Makefile" || return
    flags() { make -s -n -B BUILD="$T/b" "$T/b/obj/$1.o" | grep -- "-c src/$1.c"; }
    flags kernels_avx2 | grep -q -- '-mavx2 -mfma' || say "kernels_avx2: $(flags kernels_avx2)" || return
    flags kernels_avx512 | grep -q -- '-mavx512f -mfma' || say "kernels_avx512: $(flags kernels_avx512)" || return
    flags kernels_bf16 | grep -q -- '-mavx512f -mfma' || say "kernels_bf16: $(flags kernels_bf16)" || return
    flags kernels_bf16dp | grep -q -- '-mavx512f -mavx512bf16 -mfma' || say "kernels_bf16dp: $(flags kernels_bf16dp)" || return
    flags kernels_int8 | grep -q -- '-mavx512f -mavx512bw -mavx512vnni -mfma' || say "kernels_int8: $(flags kernels_int8)" || return
    for o in kernels encode model_gemm models/bert; do
        flags $o | grep -q -- '-DSE_BUILD -fvisibility=hidden' || say "$o: $(flags $o)" || return
        ! flags $o | grep -q -- '-mavx' || say "$o gets kernel flags: $(flags $o)" || return
    done
    # the CLI is built as a user of the library: no SE_BUILD (cli.o included)
    for o in cli cli_io; do
        ! flags $o | grep -q -- '-DSE_BUILD' || say "$o built with -DSE_BUILD: $(flags $o)" || return
    done
}

# The test lists: every tests/test_*.c is in TESTS, every tests/test_*.py in
# CLI_TESTS (tests/clitest.py is their helper), every tests/test_*.sh in
# SH_TESTS, every tests/fuzz/fuzz_*.c in FUZZ_TARGETS, and TSAN_TESTS is a
# subset of TESTS that `make tsan` builds and runs.
t_lists_complete() {
    tests=" $(make -s print-TESTS) " cli=" $(make -s print-CLI_TESTS) " sh=" $(make -s print-SH_TESTS) "
    fuzz=" $(make -s print-FUZZ_TARGETS) " tsan=$(make -s print-TSAN_TESTS)
    for f in tests/test_*.c; do
        n=$(basename "$f" .c)
        [ "$n" = test_header ] && continue # compiled only, as C and C++
        case "$tests" in *" $n "*) ;; *) say "$f is not in TESTS" || return ;; esac
    done
    for f in tests/test_*.py; do
        n=$(basename "$f" .py)
        case "$cli" in *" $n "*) ;; *) say "$f is not in CLI_TESTS" || return ;; esac
    done
    for f in tests/test_*.sh; do
        n=$(basename "$f" .sh)
        case "$sh" in *" $n "*) ;; *) say "$f is not in SH_TESTS" || return ;; esac
    done
    for f in tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        case "$fuzz" in *" $n "*) ;; *) say "$f is not in FUZZ_TARGETS" || return ;; esac
    done
    [ -n "$tsan" ] || say "TSAN_TESTS is empty" || return
    make -s -n tsan >"$T/tsan.n" 2>&1 || say "make -n tsan failed:" "$(cat "$T/tsan.n")" || return
    for n in $tsan; do
        case "$tests" in *" $n "*) ;; *) say "TSAN_TESTS names $n, not in TESTS" || return ;; esac
        grep -q "build-tsan/tests/$n" "$T/tsan.n" || say "make tsan does not build $n:" "$(cat "$T/tsan.n")" || return
    done
    make -s -n TSAN_TESTS="test_nope" tsan >"$T/tsan2.n" 2>&1 && say "TSAN_TESTS outside TESTS accepted" || true
    grep -q 'TSAN_TESTS names tests not in TESTS: test_nope' "$T/tsan2.n" || say "no error for TSAN_TESTS outside TESTS:" "$(cat "$T/tsan2.n")" || return
    # fuzz_replay is built from every fuzz target
    make -s -n -B BUILD="$T/b" "$T/b/tests/fuzz_replay" | grep -- '-o '"$T/b/tests/fuzz_replay" >"$T/fz.n"
    for n in $fuzz; do
        grep -q "tests/fuzz/$n.c" "$T/fz.n" || say "fuzz_replay is not built from $n:" "$(cat "$T/fz.n")" || return
    done
}

# tests/run.sh runs what the lists name and nothing else: given one fake
# unit test and empty CLI and shell lists, it runs that test and the three
# fixed checks (header_c, header_cpp, fuzz_replay), in a fake build dir.
t_run_sh_uses_lists() {
    mkdir -p "$T/fake/tests"
    for b in test_fake fuzz_replay; do printf '#!/bin/sh\necho "%s ran"\n' "$b" >"$T/fake/tests/$b"; done
    : >"$T/fake/tests/test_header_c"
    : >"$T/fake/tests/test_header_cpp"
    chmod 755 "$T/fake/tests/test_fake" "$T/fake/tests/fuzz_replay"
    TESTS=test_fake CLI_TESTS="" SH_TESTS="" BUILD="$T/fake" sh tests/run.sh >"$T/run.out" 2>&1 ||
        say "run.sh failed:" "$(cat "$T/run.out")" || return
    tail -1 "$T/run.out" | grep -qx 'tests: 4 passed, 0 failed' || say "run.sh ran other tests:" "$(cat "$T/run.out")" || return
    grep -q '^test_fake ran$' "$T/run.out" || say "test_fake did not run:" "$(cat "$T/run.out")" || return
    # the make target hands run.sh the Makefile's lists
    make -s -n test >"$T/test.n" 2>&1
    grep -qF "TESTS=\"$(make -s print-TESTS)\"" "$T/test.n" ||
        say "make test does not pass TESTS to run.sh:" "$(grep -B1 run.sh "$T/test.n")" || return
}

# NOTES.md no longer says the mapped originals "could be released": the
# code releases them (release_pages in src/model_gemm.c).
t_notes_madvise() {
    grep -q 'release_pages\|madvise' src/model_gemm.c || say "model_gemm.c no longer releases pages: recheck NOTES.md" || return
    ! grep -qi 'could be released with' NOTES.md || say "NOTES.md: stale madvise line:" "$(grep -i -A1 'could be released' NOTES.md)" || return
    grep -q 'MADV_DONTNEED' NOTES.md || say "NOTES.md does not say how mapped weights are released" || return
}

check ci_run_werror t_ci_werror
check makefile_kernel_pattern_rule t_kernel_pattern_rule
check makefile_test_lists_complete t_lists_complete
check run_sh_uses_make_lists t_run_sh_uses_lists
check notes_madvise_current t_notes_madvise
report test_build
