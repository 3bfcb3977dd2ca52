# shtest.sh - the harness of the shell tests (tests/test_*.sh), sourced by
# each of them, in the spirit of tests/test.h and tests/clitest.py:
#     . tests/shtest.sh
#     check label_of_the_check some_function_or_command args...
#     report
# A check passes when its command exits 0; a failing check prints
# "FAIL label" and the command's output. `report` prints the closing line
# "NAME: N passed, N failed" and returns non-zero if anything failed.
# Sets T, a scratch directory removed on exit, and ROOT, the repo root
# (tests run from there).

ROOT=$(pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/sembed-shtest.XXXXXX")
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT
sh_pass=0
sh_fail=0

# check LABEL CMD...: runs CMD with its output captured; counts the result.
check() {
    sh_label=$1
    shift
    if "$@" >"$T/.check_out" 2>&1; then
        sh_pass=$((sh_pass + 1))
    else
        sh_fail=$((sh_fail + 1))
        echo "FAIL $sh_label"
        sed -n '1,40s/^/    /p' "$T/.check_out"
    fi
}

# skip LABEL WHY: notes a check that cannot run here (not counted).
skip() {
    echo "skip $1: $2"
}

# say MSG...: in a check, explains a failure (goes to the captured output).
say() {
    echo "$@"
    return 1
}

# report NAME: the closing line; non-zero when a check failed.
report() {
    echo "$1: $sh_pass passed, $sh_fail failed"
    [ "$sh_fail" -eq 0 ]
}
