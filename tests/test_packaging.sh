#!/bin/sh
# test_packaging.sh - what a user of the built tree meets (issue 9, items
# 21-23): `make install` / `make uninstall` into a DESTDIR (every file, the
# SONAME, pkg-config, the man page), the C example examples/quickstart.c
# built every way the README shows and run on the default model, and what
# the README and sembed.h's quick start say.
# Run from the repo root after `make`: BUILD=build sh tests/test_packaging.sh
# (CC and SAN, the sanitizer flags, come from `make test`).
. tests/shtest.sh
BUILD=${BUILD:-build}
CC=${CC:-cc}
SAN=${SAN:-}
MODEL=${MODEL:-models/use-lite}
D=$T/dest
VERSION=$(sed -n 's/^#define SE_VERSION_STRING "\(.*\)"$/\1/p' include/sembed.h)
# the nested make must not inherit the jobserver or the variables of `make test`
unset MAKEFLAGS MFLAGS MAKELEVEL

# qs_output_ok FILE: the example's output is real: the model's dimension,
# and the paraphrase pair far more similar than either unrelated pair.
qs_output_ok() {
    head -1 "$1" | grep -qx "dim 512, similarity cosine" || say "first line is not 'dim 512, similarity cosine':" "$(cat "$1")" || return
    awk 'NR > 1 { s[NR] = $1; if ($1 < -1.0001 || $1 > 1.0001) bad = 1 }
         END { exit !(NR == 4 && !bad && s[2] > 0.7 && s[2] > s[3] + 0.5 && s[2] > s[4] + 0.5) }' "$1" ||
        say "similarities are not paraphrase >> unrelated:" "$(cat "$1")" || return
}

t_install_files() {
    make -s install DESTDIR="$D" PREFIX=/usr BUILD="$BUILD" >"$T/install.log" 2>&1 || say "make install failed:" "$(cat "$T/install.log")" || return
    for f in bin/sembed lib/libsembed.a "lib/libsembed.so.$VERSION" include/sembed.h lib/pkgconfig/sembed.pc share/man/man1/sembed.1; do
        [ -f "$D/usr/$f" ] && [ ! -L "$D/usr/$f" ] || say "not installed as a regular file: /usr/$f" || return
    done
    [ -x "$D/usr/bin/sembed" ] || say "bin/sembed is not executable" || return
    [ "$(readlink "$D/usr/lib/libsembed.so.0")" = "libsembed.so.$VERSION" ] || say "libsembed.so.0 is not a link to libsembed.so.$VERSION" || return
    [ "$(readlink "$D/usr/lib/libsembed.so")" = "libsembed.so.0" ] || say "libsembed.so is not a link to libsembed.so.0" || return
    cmp -s include/sembed.h "$D/usr/include/sembed.h" || say "installed sembed.h differs" || return
    [ "$("$D/usr/bin/sembed" --version)" = "sembed $VERSION" ] || say "installed sembed --version: $("$D/usr/bin/sembed" --version)" || return
    n=$(find "$D" \( -type f -o -type l \) | wc -l)
    [ "$n" -eq 8 ] || say "expected 8 installed files and links, found $n:" "$(find "$D" -type f -o -type l)" || return
}

t_soname() {
    readelf -d "$D/usr/lib/libsembed.so.$VERSION" | grep -q 'SONAME.*\[libsembed\.so\.0\]' ||
        say "SONAME:" "$(readelf -d "$D/usr/lib/libsembed.so.$VERSION" | grep SONAME)" || return
    readelf -d "$BUILD/libsembed.so" | grep -q 'SONAME.*\[libsembed\.so\.0\]' || say "build/libsembed.so has no SONAME" || return
    # the library exports the API and nothing private
    nm -D --defined-only "$D/usr/lib/libsembed.so.$VERSION" | grep -q ' T se_encode$' || say "se_encode not exported" || return
    ! nm -D --defined-only "$D/usr/lib/libsembed.so.$VERSION" | awk '$2 == "T" && $3 !~ /^se_/' | grep -q . ||
        say "exports outside se_*:" "$(nm -D --defined-only "$D/usr/lib/libsembed.so.$VERSION" | awk '$2 == "T" && $3 !~ /^se_/')" || return
}

t_pkgconfig() {
    pc="pkg-config --define-variable=prefix=$D/usr"
    out=$(PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" $pc --cflags --libs sembed 2>&1) || say "pkg-config failed: $out" || return
    for w in "-I$D/usr/include" "-L$D/usr/lib" -lsembed; do
        case " $out " in *" $w "*) ;; *) say "pkg-config --cflags --libs sembed lacks $w: '$out'" || return ;; esac
    done
    v=$(PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" pkg-config --modversion sembed)
    [ "$v" = "$VERSION" ] || say "pkg-config --modversion: $v" || return
    st=$(PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" $pc --static --libs sembed)
    for l in -lsembed -ljansson -lutf8proc -lsqlite3 -lz -lm -pthread; do
        case " $st " in *" $l "*) ;; *) say "pkg-config --static --libs lacks $l: $st" || return ;; esac
    done
    grep -qx 'prefix=/usr' "$D/usr/lib/pkgconfig/sembed.pc" || say "sembed.pc prefix is not /usr:" "$(cat "$D/usr/lib/pkgconfig/sembed.pc")" || return
}

# The program built against the installed copy with the README's
# pkg-config command (relocated into DESTDIR) runs on the default model.
t_example_installed() {
    cmd=$(readme_cc | grep 'pkg-config --cflags --libs sembed') || say "README shows no pkg-config build of the example" || return
    cmd=$(echo "$cmd" | sed "s#pkg-config #pkg-config --define-variable=prefix=$D/usr #")
    PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" build_readme "$cmd" "$T/qs_installed" || return
    readelf -d "$T/qs_installed" | grep -q 'NEEDED.*\[libsembed\.so\.0\]' || say "not linked against libsembed.so.0" || return
    LD_LIBRARY_PATH="$D/usr/lib" "$T/qs_installed" "$MODEL" >"$T/qs.out" 2>&1 || say "quickstart failed:" "$(cat "$T/qs.out")" || return
    qs_output_ok "$T/qs.out"
}

t_man_page() {
    man --warnings -l "$D/usr/share/man/man1/sembed.1" >"$T/man.txt" 2>"$T/man.err" || say "man -l failed:" "$(cat "$T/man.err")" || return
    [ ! -s "$T/man.err" ] || say "man -l warnings:" "$(cat "$T/man.err")" || return
    grep -q '^SEMBED(1)' "$T/man.txt" || say "no SEMBED(1) header:" "$(head -5 "$T/man.txt")" || return
    # every command of `sembed --help` has its section, with its options
    for c in $("$BUILD/sembed" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z0-9-]*\)  .*/\1/p'); do
        grep -q "^   $c\$" "$T/man.txt" || say "no section for command $c" || return
        "$BUILD/sembed" "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u | while read -r o; do
            grep -q -- "$o" "$T/man.txt" || { echo "option $o of $c not in the man page"; exit 1; }
        done || return
    done
    grep -q -- '--truncate-dim N' "$T/man.txt" || say "encode's --truncate-dim missing" || return
}

t_uninstall() {
    make -s uninstall DESTDIR="$D" PREFIX=/usr BUILD="$BUILD" >"$T/uninstall.log" 2>&1 || say "make uninstall failed:" "$(cat "$T/uninstall.log")" || return
    left=$(find "$D" \( -type f -o -type l \))
    [ -z "$left" ] || say "left after uninstall:" "$left" || return
}

# readme_cc: the `cc ...` command lines of README.md's "The library" section.
readme_cc() {
    sed -n '/^## The library/,/^## /p' README.md | sed -n 's/^    \(cc .*\)/\1/p'
}

# build_readme CMD OUT: runs a README build command in the repo root with
# this test's compiler and sanitizer flags, the build directory of this run,
# and OUT as the program.
build_readme() {
    c=$(echo "$1" | sed -e "s#^cc #$CC $SAN #" -e "s#-o quickstart#-o $2#" -e "s#\([ L/\"]\)build\([/ \"]\)#\1$BUILD\2#g" -e "s#build\$#$BUILD#")
    sh -c "$c" >"$T/cc.log" 2>&1 || say "README build command failed: $c" "$(cat "$T/cc.log")" || return
}

# The README's static build in the tree: no run-time path needed.
t_example_static() {
    cmd=$(readme_cc | grep 'libsembed\.a') || say "README shows no static build of the example" || return
    build_readme "$cmd" "$T/qs_static" || return
    ! readelf -d "$T/qs_static" | grep -q 'NEEDED.*libsembed' || say "static build needs libsembed.so" || return
    env -u LD_LIBRARY_PATH "$T/qs_static" "$MODEL" >"$T/qs.out" 2>&1 || say "quickstart failed:" "$(cat "$T/qs.out")" || return
    qs_output_ok "$T/qs.out"
}

# The README's shared build in the tree with an rpath runs as it is; the
# same link without the rpath fails to start exactly as the README says.
t_example_shared_rpath() {
    cmd=$(readme_cc | grep -- '-Wl,-rpath') || say "README shows no rpath build of the example" || return
    build_readme "$cmd" "$T/qs_rpath" || return
    env -u LD_LIBRARY_PATH "$T/qs_rpath" "$MODEL" >"$T/qs.out" 2>&1 || say "quickstart (rpath) failed:" "$(cat "$T/qs.out")" || return
    qs_output_ok "$T/qs.out" || return
    norp=$(echo "$cmd" | sed 's# -Wl,-rpath,[^ ]*##')
    build_readme "$norp" "$T/qs_norpath" || return
    if ldconfig -p 2>/dev/null | grep -q 'libsembed\.so\.0 '; then
        echo "(libsembed.so.0 is installed on this machine: the no-rpath failure is not checked)"
    else
        ! env -u LD_LIBRARY_PATH "$T/qs_norpath" "$MODEL" >"$T/qs.out" 2>&1 || say "ran without rpath" || return
        grep -q 'libsembed.so.0: cannot open shared object file' "$T/qs.out" || say "unexpected failure:" "$(cat "$T/qs.out")" || return
        grep -q 'libsembed.so.0: cannot open shared object file' README.md || say "README does not quote the loader's error" || return
        LD_LIBRARY_PATH="$BUILD" "$T/qs_norpath" "$MODEL" >"$T/qs.out" 2>&1 || say "with LD_LIBRARY_PATH:" "$(cat "$T/qs.out")" || return
        qs_output_ok "$T/qs.out" || return
    fi
}

# Every failure prints the library's message: a missing model folder.
t_example_error() {
    ! env -u LD_LIBRARY_PATH "$T/qs_static" "$T/no-such-model" >"$T/qs.out" 2>&1 || say "succeeded on a missing model" || return
    grep -q "^SE_E_IO: .*$T/no-such-model" "$T/qs.out" || say "error does not name the folder:" "$(cat "$T/qs.out")" || return
}

# The README's "The library" snippet is the example's code, line for line,
# and the example never hard-codes a dimension.
t_readme_snippet_is_example() {
    sed -n '/^## The library/,/^## /p' README.md | sed -n '/^    /p' | grep -v '^    cc \|^    \./quickstart\|^    LD_LIBRARY_PATH' |
        sed 's/^    //' >"$T/snippet"
    [ "$(wc -l <"$T/snippet")" -ge 10 ] || say "README library snippet too short:" "$(cat "$T/snippet")" || return
    while IFS= read -r line; do
        case "$line" in "" | "...") continue ;; esac
        grep -qF -- "$line" examples/quickstart.c || { echo "README line not in examples/quickstart.c: $line"; return 1; }
    done <"$T/snippet"
    grep -q 'se_encode_dim' "$T/snippet" || say "README snippet does not ask the model its dimension" || return
    ! sed 's#/\*.*\*/##' "$T/snippet" examples/quickstart.c | grep -E '\b(384|512|768)\b' || say "a hard-coded dimension" || return
}

# sembed.h's quick start asks the dimension and checks statuses.
t_header_quick_start() {
    sed -n '/Quick start/,/\*\//p' include/sembed.h >"$T/qs.h"
    grep -q 'se_encode_dim' "$T/qs.h" || say "quick start does not call se_encode_dim" || return
    ! grep -q '384' "$T/qs.h" || say "quick start hard-codes 384" || return
    [ "$(grep -c '!= SE_OK' "$T/qs.h")" -ge 3 ] || say "quick start ignores statuses:" "$(cat "$T/qs.h")" || return
}

# The README (outside "Using it") says where the binary is, how to
# install, that the default model is English-only and how to get others.
t_readme_where_things_are() {
    sed '/^## Using it/,/^## The library/d' README.md >"$T/readme"
    for s in 'build/sembed' 'make install' 'make uninstall' 'English-only' 'unknown' 'Chinese' 'huggingface.co' \
        'libsembed.so.0' 'sembed.pc' 'sembed.1' 'PREFIX' 'DESTDIR'; do
        grep -qF "$s" "$T/readme" || say "README does not mention '$s'" || return
    done
}

check packaging_install_files t_install_files
check packaging_soname t_soname
check packaging_pkgconfig t_pkgconfig
check packaging_man_page t_man_page
check example_installed_pkgconfig t_example_installed
check packaging_uninstall t_uninstall
check example_static t_example_static
check example_shared_rpath t_example_shared_rpath
check example_error_message t_example_error
check readme_snippet_is_example t_readme_snippet_is_example
check header_quick_start t_header_quick_start
check readme_where_things_are t_readme_where_things_are
report test_packaging
