#!/usr/bin/env bash
# bench/compare/run.sh - sembed vs ONNX Runtime vs PyTorch, side by side (see README.md).
#
#   bench/compare/run.sh [--no-build] [compare.py options] > result.json
#
# Prints ONE JSON object on stdout; progress goes to stderr. Steps:
#   1. prerequisites: Debian's python3-torch / python3-numpy, Debian's OpenBLAS for torch
#      (installed with apt when missing and running as root; the system's BLAS choice is
#      restored afterwards), node + npm, onnxruntime-node in bench/compare/node_modules
#   2. builds build/libsembed.a and build/sembed with make (skip with --no-build), then the
#      sembed engine bench/compare/.work/bench_sembed against the static library
#   3. runs compare.py (models and inputs are cached in bench/compare/.work)
# Every option other than --no-build goes to compare.py (e.g. --shapes minilm, --runs 3;
# `bench/compare/compare.py --help` lists them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
CACHE="$HERE/.work"
log() { echo "[run.sh] $*" >&2; }
die() { log "error: $*"; exit 1; }

build=1
args=()
for a in "$@"; do
    case "$a" in
    --no-build) build=0 ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) args+=("$a") ;;
    esac
done

apt_install() { # apt_install PKG... (root only)
    [ "$(id -u)" = 0 ] || die "missing Debian packages: $*; install them with: sudo apt-get install $*"
    log "installing $* with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    fi
}

# --- 1. prerequisites --------------------------------------------------------------------
[ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null || apt_install python3-torch python3-numpy
"$PY" -c 'import torch, numpy' || die "$PY cannot import torch and numpy"

# Debian's torch runs every Linear through the system libblas.so.3, by default the netlib
# reference BLAS (~2 GFLOP/s). compare.py points torch, and only torch, at OpenBLAS.
OPENBLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ ! -e "$OPENBLAS" ] && [[ " ${args[*]-} " != *" --torch-blas system "* ]]; then
    q() { update-alternatives --query "$1" 2>/dev/null | awk '/^Value:/ {print $2}'; }
    prev_blas="$(q libblas.so.3-x86_64-linux-gnu)"
    prev_lapack="$(q liblapack.so.3-x86_64-linux-gnu)"
    apt_install libopenblas0-openmp
    # installing it makes OpenBLAS the system BLAS: put the previous choice back
    [ -z "$prev_blas" ] || update-alternatives --set libblas.so.3-x86_64-linux-gnu "$prev_blas" >&2
    [ -z "$prev_lapack" ] || update-alternatives --set liblapack.so.3-x86_64-linux-gnu "$prev_lapack" >&2
fi

command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
if [ ! -e "$HERE/node_modules/onnxruntime-node/package.json" ]; then
    log "installing onnxruntime-node into bench/compare/node_modules (CPU provider only)"
    # its install script would download GPU binaries; the CPU provider ships in the package
    (cd "$HERE" && npm ci --onnxruntime-node-install=skip --no-audit --no-fund >&2)
fi

# --- 2. build ------------------------------------------------------------------------------
cd "$ROOT"
if [ "$build" = 1 ]; then
    log "make build/libsembed.a build/sembed"
    make -s build/libsembed.a build/sembed >&2 || die "the sembed build failed"
fi
[ -f build/libsembed.a ] && [ -x build/sembed ] || die "build/libsembed.a or build/sembed is missing (run make)"
mkdir -p "$CACHE"
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -o "$CACHE/bench_sembed" "$HERE/bench_sembed.c" build/libsembed.a \
    -ljansson -lutf8proc -lsqlite3 -lz -lm -pthread || die "could not build bench_sembed"

# --- 3. run ----------------------------------------------------------------------------------
exec "$PY" "$HERE/compare.py" --sembed-bin "$CACHE/bench_sembed" --sembed-cli "$ROOT/build/sembed" \
    --cache "$CACHE" ${args[@]+"${args[@]}"}
