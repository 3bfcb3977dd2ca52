#!/bin/sh
# bench/serve/run.sh [--quick] [-o FILE] [bench_serve.py options]: the load benchmark of
# `sembed serve` (see bench/serve/README.md). Builds build/sembed, then runs
# bench_serve.py from the repo root: the JSON goes to stdout (and to FILE with -o), progress to
# stderr. --quick takes about a minute; the full run about 14 minutes. Needs wrk (Debian).
set -e
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "bench/serve: wrk is not installed (Debian package wrk)" >&2; exit 1; }
[ -f models/use-lite/model.safetensors ] || { echo "bench/serve: models/use-lite is missing (./setup.sh)" >&2; exit 1; }
make -s -j2 build/sembed >&2
exec /usr/bin/python3 bench/serve/bench_serve.py "$@"
