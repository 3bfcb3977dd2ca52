#!/bin/sh
# sembed set-up: installs the Debian packages sembed needs, builds it, and
# runs the main job. Run as root (or with sudo) on Debian 12:
#   ./setup.sh            install + build + demo
#   ./setup.sh --deps     install the packages only (used by .ci/run)
set -eu
cd "$(dirname "$0")"

# Build: gcc, make. Libraries: jansson (JSON), utf8proc (Unicode data).
# Tests: python3-numpy (reads our .npy output), g++ (the header must compile as C++).
PKGS="build-essential libjansson-dev libutf8proc-dev python3 python3-numpy g++"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
[ "${1:-}" = "--deps" ] && exit 0

make -j"$(nproc)"

# The main job. The real default model (Universal Sentence Encoder lite)
# arrives with issue 3; until then the demo runs on the small random-weight
# reference model in tests/fixtures, so the numbers show the pipeline works,
# not semantic quality.
M=tests/fixtures/models/en-mean-norm
echo "== sembed info -m $M"
build/sembed info -m "$M"
echo "== sembed encode (first 6 values of each vector)"
printf 'A man is playing a guitar.\n一个男人在弹吉他。\n' | build/sembed encode -m "$M" | cut -c1-80
echo "== sembed similarity"
build/sembed similarity -m "$M" "A man is playing a guitar." "A man is playing a guitar." "The stock market fell."
