#!/usr/bin/env bash
# bench/index/run.sh - sembed's vector index vs hnswlib vs FAISS on the same vectors (README.md).
#
#   bench/index/run.sh [options] > result.json
#
# Prints ONE JSON object on stdout (a copy goes to bench/index/.work/last-result.json);
# progress goes to stderr. Steps:
#   1. prerequisites: g++ and Debian's libhnswlib-dev, libfaiss-dev, wordnet-base and
#      python3-numpy (installed with apt-get when missing and running as root; otherwise the
#      apt-get command is printed and the script exits 1)
#   2. builds the engines into bench/index/.work/: bench_hnswlib, bench_faiss and
#      bench_faiss_native (FAISS with a -march=native inner product, see bench_faiss.cpp)
#   3. makes the datasets with make_data.py unless cached in .work/data/ (real needs
#      build/sembed, built with make when missing, and models/use-lite from ./setup.sh --no-demo)
#   4. runs every engine binary that exists on every dataset, in this order:
#        hnswlib            .work/bench_hnswlib
#        faiss-hnsw         .work/bench_faiss
#        faiss-hnsw-native  .work/bench_faiss_native
#        sembed             .work/bench_sembed      (yours: same contract; run when present)
#        faiss-flat         .work/bench_faiss --index flat
#        faiss-flat-native  .work/bench_faiss_native --index flat
#        sembed-flat        .work/bench_sembed --flat
#      (bench_sembed is built from bench_sembed.c and build/libsembed.a when that source exists
#      and the binary is missing or older than either; a failed build is a warning)
#      and summarises each: the smallest ef whose recall@k >= 0.95, its qps, and build_s.
# Options:
#   --datasets LIST   real,synthetic (default both)
#   --engines LIST    run only these engine names (default: all of the above that exist)
#   --M N             HNSW links per node (default 16)
#   --efc N           HNSW efConstruction (default 200)
#   --ef LIST         search ef values (default 10,16,24,32,48,64,96,128,192,256)
#   --k N             recall@k (default 10)
#   --threads N       build threads (default 1; searches are always one query at a time, 1 thread)
#   --min-time S      timed search seconds per ef (default 1; passed as BENCH_MIN_TIME, which
#                     engines built on engine.h read)
#   --quick           smoke run: 20,000-vector datasets (real-20000, synthetic-20000), --min-time 0.2
#   --no-build        use the engine binaries already in .work
#   -h, --help        this help
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
WORK="$HERE/.work"
log() { echo "[run.sh] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

datasets=real,synthetic engines="" M=16 efc=200 ef=10,16,24,32,48,64,96,128,192,256 k=10 threads=1
min_time="" quick=0 build=1
need_val() { [ $# -ge 2 ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
    --datasets) need_val "$@"; datasets="$2"; shift ;;
    --engines) need_val "$@"; engines="$2"; shift ;;
    --M) need_val "$@"; M="$2"; shift ;;
    --efc) need_val "$@"; efc="$2"; shift ;;
    --ef) need_val "$@"; ef="$2"; shift ;;
    --k) need_val "$@"; k="$2"; shift ;;
    --threads) need_val "$@"; threads="$2"; shift ;;
    --min-time) need_val "$@"; min_time="$2"; shift ;;
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
n=100000
if [ "$quick" = 1 ]; then
    n=20000
    [ -n "$min_time" ] || min_time=0.2
fi
[ -n "$min_time" ] || min_time=1
for d in ${datasets//,/ }; do
    case "$d" in real | synthetic) ;; *) die "unknown dataset $d (real, synthetic)" ;; esac
done

# --- 1. prerequisites ----------------------------------------------------------------------
apt_install() { # apt_install PKG... (root only)
    if [ "$(id -u)" != 0 ]; then
        log "error: missing Debian packages: $*"
        log "install them with: sudo apt-get install -y $*"
        exit 1
    fi
    log "installing $* with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    fi
}
missing=()
command -v g++ >/dev/null || missing+=(g++)
[ -e /usr/include/hnswlib/hnswlib.h ] || missing+=(libhnswlib-dev)
[ -e /usr/include/faiss/IndexHNSW.h ] && [ -e /usr/lib/x86_64-linux-gnu/libfaiss.a ] || missing+=(libfaiss-dev)
[ -e /usr/share/wordnet/data.noun ] || [[ ",$datasets," != *,real,* ]] || missing+=(wordnet-base)
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
[ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"

# --- 2. engines ----------------------------------------------------------------------------
mkdir -p "$WORK"
CXX=(g++ -O3 -march=native -fopenmp -std=c++17)
if [ "$build" = 1 ]; then
    log "building the engines into ${WORK#"$ROOT"/}"
    hv="$(dpkg-query -W -f='${Version}' libhnswlib-dev 2>/dev/null || echo unknown)"
    "${CXX[@]}" -DENGINE_VERSION="\"$hv\"" -o "$WORK/bench_hnswlib" "$HERE/bench_hnswlib.cpp" ||
        die "could not build bench_hnswlib"
    "${CXX[@]}" -o "$WORK/bench_faiss" "$HERE/bench_faiss.cpp" -lfaiss -lblas -llapack ||
        die "could not build bench_faiss"
    "${CXX[@]}" -DFAISS_NATIVE_IP -o "$WORK/bench_faiss_native" "$HERE/bench_faiss.cpp" \
        -Wl,--allow-multiple-definition -lfaiss -lblas -llapack || die "could not build bench_faiss_native"
    if [ -f "$HERE/bench_sembed.c" ]; then
        if make -s -C "$ROOT" build/libsembed.a >&2; then
            if [ ! -x "$WORK/bench_sembed" ] || [ "$HERE/bench_sembed.c" -nt "$WORK/bench_sembed" ] ||
                [ "$ROOT/build/libsembed.a" -nt "$WORK/bench_sembed" ]; then
                libs="$(sed -n 's/^LIBS *:= *//p' "$ROOT/Makefile")"
                [ -n "$libs" ] || libs="-ljansson -lutf8proc -lsqlite3 -lz -lm -pthread"
                log "building bench_sembed"
                # shellcheck disable=SC2086 # the Makefile's LIBS is a word list
                cc -O3 -march=native -std=c11 -D_GNU_SOURCE -I"$ROOT/include" -I"$HERE" -o "$WORK/bench_sembed" \
                    "$HERE/bench_sembed.c" "$ROOT/build/libsembed.a" $libs ||
                    { log "warning: could not build bench_sembed; sembed is skipped"; rm -f "$WORK/bench_sembed"; }
            fi
        else
            log "warning: make build/libsembed.a failed; bench_sembed is not rebuilt"
        fi
    fi
fi

# --- 3. data -------------------------------------------------------------------------------
if [[ ",$datasets," == *,real,* ]]; then
    folder=real
    [ "$n" = 100000 ] || folder="real-$n"
    if [ ! -e "$WORK/data/$folder/meta.json" ]; then
        [ -d "$ROOT/models/use-lite" ] || die "models/use-lite is missing: run ./setup.sh --no-demo in $ROOT first"
        if [ ! -x "$ROOT/build/sembed" ]; then
            log "make build/sembed"
            make -s -C "$ROOT" build/sembed >&2 || die "the sembed build failed"
        fi
    fi
fi
t0=$SECONDS
"$PY" "$HERE/make_data.py" --datasets "$datasets" --n "$n" --out "$WORK/data" >"$WORK/data-meta.json" ||
    die "make_data.py failed"
log "data ready in $((SECONDS - t0)) s"

# --- 4. run --------------------------------------------------------------------------------
ENGINES=( # name|binary|extra arguments
    "hnswlib|bench_hnswlib|"
    "faiss-hnsw|bench_faiss|"
    "faiss-hnsw-native|bench_faiss_native|"
    "sembed|bench_sembed|"
    "faiss-flat|bench_faiss|--index flat"
    "faiss-flat-native|bench_faiss_native|--index flat"
    "sembed-flat|bench_sembed|--flat"
)
export BENCH_MIN_TIME="$min_time"
# another busy process skews the timings: say so, and record the load in the result
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
awk '$1 > 0.5 { exit 1 }' /proc/loadavg ||
    log "warning: load average is $load_before before the runs: something else is using the CPU"
RES="$WORK/results"
rm -rf "$RES"
mkdir -p "$RES"
for d in ${datasets//,/ }; do
    folder="$d"
    [ "$n" = 100000 ] || folder="$d-$n"
    D="$WORK/data/$folder"
    mkdir -p "$RES/$d"
    for e in "${ENGINES[@]}"; do
        IFS='|' read -r name bin extra <<<"$e"
        read -r -a extra_args <<<"$extra"
        [ -z "$engines" ] || [[ ",$engines," == *",$name,"* ]] || continue
        if [ ! -x "$WORK/$bin" ]; then
            log "$d / $name: ${WORK#"$ROOT"/}/$bin does not exist, skipped"
            continue
        fi
        log "$d / $name"
        rc=0 t1=$SECONDS
        "$WORK/$bin" --base "$D/base.npy" --queries "$D/queries.npy" --gt "$D/gt.npy" --M "$M" --efc "$efc" \
            --ef "$ef" --k "$k" --threads "$threads" ${extra_args[@]+"${extra_args[@]}"} >"$RES/$d/$name.json" ||
            rc=$?
        if [ "$rc" != 0 ]; then
            log "$d / $name failed (exit $rc)"
            printf '{"engine": "%s", "error": "exited with status %d, see its stderr"}\n' "$name" "$rc" \
                >"$RES/$d/$name.json"
        fi
        log "$d / $name: $((SECONDS - t1)) s"
    done
done

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$RES" "$WORK/data-meta.json" "$datasets" "$M" "$efc" "$k" "$threads" "$min_time" "$quick" \
    "$load_before" "$load_after" \
    >"$WORK/last-result.json" <<'EOF' || die "could not assemble the result"
import json, os, subprocess, sys, time
res_dir, meta_path, datasets, M, efc, k, threads, min_time, quick, load_before, load_after = sys.argv[1:]
cpu, flags = "unknown", ""
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
order = ["hnswlib", "faiss-hnsw", "faiss-hnsw-native", "sembed", "faiss-flat", "faiss-flat-native", "sembed-flat"]
out = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "cpu": cpu,
    "cores": os.cpu_count(),
    "simd": [f for f in ("avx2", "fma", "avx512f", "avx512vnni") if f in flags],
    "params": {"M": int(M), "efc": int(efc), "k": int(k), "build_threads": int(threads), "search_threads": 1,
               "min_time_s": float(min_time), "quick": quick == "1"},
    "loadavg": {"before": load_before, "after": load_after},
    "data": json.load(open(meta_path)),
    "datasets": {},
    "summary": {},
}
for d in datasets.split(","):
    if not d:
        continue
    folder = os.path.join(res_dir, d)
    names = sorted(os.listdir(folder), key=lambda f: (order.index(f[:-5]) if f[:-5] in order else 99, f))
    results, summary = {}, {}
    for f in names:
        try:
            r = json.load(open(os.path.join(folder, f)))
        except ValueError as e:
            r = {"engine": f[:-5], "error": f"no JSON from the engine: {e}"}
        name = f[:-5]
        results[name] = r
        if "error" in r:
            summary[name] = {"error": r["error"]}
            continue
        ok = [p for p in r.get("curve", []) if p["recall"] >= 0.95]
        best = min(ok, key=lambda p: p.get("ef") or 0) if ok else None  # an exact index: ef null or 0
        summary[name] = {
            "ef": (best.get("ef") or None) if best else None,
            "recall": best["recall"] if best else None,
            "qps": best["qps"] if best else None,
            "us_per_query": best["us_per_query"] if best else None,
            "cpu_us_per_query": best.get("cpu_us_per_query") if best else None,
            "build_s": r.get("build_s"),
            "build_cpu_s": r.get("build_cpu_s"),
            "memory_mb": r.get("memory_mb"),
        }
        if not best:
            summary[name]["note"] = "no ef reached recall 0.95"
    out["datasets"][d] = results
    out["summary"][d] = summary
print(json.dumps(out, indent=1))
EOF
cat "$WORK/last-result.json"
log "done; a copy is in ${WORK#"$ROOT"/}/last-result.json"
