#!/bin/sh
# bench/ir/run.sh - retrieval quality (nDCG@10 and the rest) and search latency on BEIR SciFact
# and a Chinese question -> passage set, through `sembed eval ir` (bench/README.md, "ir").
#
#   bench/ir/run.sh [-o FILE] [--rerank CE_DIR [--rerank-meaningless]] [--work DIR] [--threads N]
#
# Builds build/sembed when missing, then runs bench/ir/driver.py (Debian's python3 with numpy),
# which prints one JSON object (and writes it to -o FILE). Steps are cached in bench/ir/.work
# (delete it to redo them): embedding SciFact's chunks takes tens of minutes on one core.
set -eu
cd "$(dirname "$0")/../.."
[ -x build/sembed ] || make -j2 build/sembed >&2
exec /usr/bin/python3 bench/ir/driver.py "$@"
