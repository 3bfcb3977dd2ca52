#!/bin/sh
# test_setup.sh - the README's set-up command (issue 9, item 20), without
# touching the system: setup.sh's package step (`--packages-only`) runs with
# a PATH of stub dpkg-query, apt-get and (or no) sudo that record their
# calls, as root and as an unprivileged user (runuser -u nobody).
# Run from the repo root: sh tests/test_setup.sh
. tests/shtest.sh

# The stub bin directories: $T/bin has no sudo, $T/bin-sudo has one.
# dpkg-query reports the packages named in $STUB_MISSING as not installed;
# apt-get and sudo append their command line (and apt-get its uid) to $LOG.
mkdir -p "$T/bin" "$T/log"
chmod 777 "$T/log"
for tool in sh dirname grep id cat env; do
    ln -s "$(command -v $tool)" "$T/bin/$tool"
done
cat >"$T/bin/dpkg-query" <<'EOF'
#!/bin/sh
for p in "$@"; do :; done
case " $STUB_MISSING " in *" $p "*) exit 1 ;; esac
printf 'install ok installed'
EOF
cat >"$T/bin/apt-get" <<'EOF'
#!/bin/sh
echo "apt-get uid=$(id -u) $*" >>"$LOG"
EOF
printf '#!/bin/sh\nexit 0\n' >"$T/bin/npm"
cp -a "$T/bin" "$T/bin-sudo"
cat >"$T/bin-sudo/sudo" <<'EOF'
#!/bin/sh
echo "sudo $*" >>"$LOG"
exec "$@"
EOF
chmod 755 "$T/bin/dpkg-query" "$T/bin/apt-get" "$T/bin/npm" "$T/bin-sudo/sudo" "$T/bin-sudo/dpkg-query" \
    "$T/bin-sudo/apt-get" "$T/bin-sudo/npm"

# The set-up command of README.md's "Set up" section (its first line that
# runs setup.sh, without the comment).
readme_cmd=$(sed -n '/^## Set up/,/^## /p' README.md | grep -m1 'setup\.sh' | sed -e 's/#.*//' -e 's/^ *//' -e 's/ *$//')

# as USER BIN MISSING CMD: runs CMD in the repo root as USER (root or
# nobody) with PATH=BIN only and STUB_MISSING=MISSING; output in $T/out,
# exit status in $T/rc, stub calls in $T/log/calls (fresh each time).
as() {
    u=$1 bin=$2 missing=$3
    shift 3
    : >"$T/log/calls"
    chmod 666 "$T/log/calls"
    set -- env -i PATH="$bin" STUB_MISSING="$missing" LOG="$T/log/calls" sh -c "cd '$ROOT' && $*"
    if [ "$u" = root ]; then "$@" >"$T/out" 2>&1; else runuser -u "$u" -- "$@" >"$T/out" 2>&1; fi
    echo $? >"$T/rc"
}

# The README's command, as root on a machine without sudo, installs the
# missing packages with apt-get directly.
t_readme_command_as_root_without_sudo() {
    case "$readme_cmd" in sudo*) say "README set-up command starts with sudo: '$readme_cmd'" || return ;; esac
    as root "$T/bin" "libjansson-dev sqlite3" "$readme_cmd --packages-only"
    [ "$(cat "$T/rc")" = 0 ] || say "'$readme_cmd --packages-only' as root without sudo: exit $(cat "$T/rc")" "$(cat "$T/out")" || return
    grep -q '^apt-get uid=0 update' "$T/log/calls" || say "no apt-get update as root:" "$(cat "$T/log/calls")" || return
    grep -q '^apt-get uid=0 install .*libjansson-dev sqlite3' "$T/log/calls" ||
        say "apt-get install of the missing packages not called as root:" "$(cat "$T/log/calls")" || return
    ! grep -q sudo "$T/log/calls" || say "sudo called" || return
}

# As an ordinary user with sudo, apt-get runs through sudo.
t_user_with_sudo() {
    as nobody "$T/bin-sudo" "zlib1g-dev" "$readme_cmd --packages-only"
    [ "$(cat "$T/rc")" = 0 ] || say "exit $(cat "$T/rc")" "$(cat "$T/out")" || return
    grep -q "^sudo .*apt-get install .*zlib1g-dev" "$T/log/calls" || say "no sudo apt-get install:" "$(cat "$T/log/calls")" || return
}

# As an ordinary user without sudo: a clear message naming the missing
# packages and what to do, exit 1, apt-get never called.
t_user_without_sudo_says_what_to_do() {
    as nobody "$T/bin" "libutf8proc-dev g++" "$readme_cmd --packages-only"
    [ "$(cat "$T/rc")" = 1 ] || say "exit $(cat "$T/rc"), expected 1" "$(cat "$T/out")" || return
    grep -q 'libutf8proc-dev g++' "$T/out" || say "message does not name the missing packages:" "$(cat "$T/out")" || return
    grep -q 'as root' "$T/out" || say "message does not say to run as root:" "$(cat "$T/out")" || return
    grep -q 'apt-get install' "$T/out" || say "message does not give the apt-get command:" "$(cat "$T/out")" || return
    ! grep -q 'not found' "$T/out" || say "a command was not found:" "$(cat "$T/out")" || return
    [ ! -s "$T/log/calls" ] || say "apt-get or sudo called:" "$(cat "$T/log/calls")" || return
}

# Nothing missing: no apt-get, no sudo, even for a user without sudo.
t_nothing_missing_no_apt() {
    as nobody "$T/bin" "" "$readme_cmd --packages-only"
    [ "$(cat "$T/rc")" = 0 ] || say "exit $(cat "$T/rc")" "$(cat "$T/out")" || return
    [ ! -s "$T/log/calls" ] || say "apt-get or sudo called:" "$(cat "$T/log/calls")" || return
}

# The packages the packaging tests need (pkg-config, man-db for `man -l`)
# are installed when missing.
t_packaging_tools_installed() {
    as root "$T/bin" "pkg-config man-db" "./setup.sh --packages-only"
    grep -q '^apt-get uid=0 install .*pkg-config man-db' "$T/log/calls" ||
        say "pkg-config and man-db not installed when missing:" "$(cat "$T/log/calls")" "$(cat "$T/out")" || return
}

if [ "$(id -u)" != 0 ]; then
    skip setup "needs root to run the package step as root and as nobody"
else
    check setup_readme_command_as_root_without_sudo t_readme_command_as_root_without_sudo
    check setup_packaging_tools_installed t_packaging_tools_installed
    if command -v runuser >/dev/null 2>&1 && id nobody >/dev/null 2>&1 &&
        runuser -u nobody -- test -r "$ROOT/setup.sh"; then
        check setup_user_with_sudo t_user_with_sudo
        check setup_user_without_sudo_says_what_to_do t_user_without_sudo_says_what_to_do
        check setup_nothing_missing_no_apt t_nothing_missing_no_apt
    else
        skip setup_user "runuser or user nobody missing, or nobody cannot read $ROOT"
    fi
fi
report test_setup
