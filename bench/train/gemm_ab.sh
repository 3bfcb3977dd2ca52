#!/bin/sh
# gemm_ab.sh [-D...] V1.c V2.c [pairs]: two versions of src/train/train_gemm.c, A/B in one
# process on the twelve GEMMs of a MiniLM-L6 layer at 2048 tokens (32 pairs x 32 tokens:
# the forward's four Linears, the four input gradients, the four weight gradients with their
# bias sums). -D flags before the files apply to V2 only (e.g. -DMB_AT=192). Run from the
# repository after `make`; COLD=1 (the default here) brings the operands from memory.
#   git show HEAD:src/train/train_gemm.c > /tmp/old.c
#   sh bench/train/gemm_ab.sh /tmp/old.c src/train/train_gemm.c
set -e
V2FLAGS=
while [ $# -gt 0 ] && [ "${1#-D}" != "$1" ]; do V2FLAGS="$V2FLAGS $1"; shift; done
[ $# -ge 2 ] || { echo "usage: gemm_ab.sh [-D...] V1.c V2.c [pairs]" >&2; exit 2; }
V1=$1 V2=$2 PAIRS=${3:-16}
[ -f build/libsembed.a ] || { echo "gemm_ab.sh: run make first (build/libsembed.a)" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CF="-std=c11 -D_GNU_SOURCE -O2 -mavx2 -mfma -Iinclude -Isrc -DSE_BUILD"
ren() { echo "-Dse_tk_gemm_ref=$1_gemm_ref -Dse_tk_gemm_scratch=$1_gemm_scratch -Dse_tk_gemm=$1_gemm \
 -Dse_tk_rowsum_ref=$1_rowsum_ref -Dse_tk_gemm_rowsum=$1_gemm_rowsum -Dse_tk_gemm_mul=$1_gemm_mul \
 -Dse_tk_gemm_mul_ref=$1_gemm_mul_ref"; }
${CC:-cc} $CF $(ren v1) -c "$V1" -o "$OUT/v1.o"
${CC:-cc} $CF $V2FLAGS $(ren v2) -c "$V2" -o "$OUT/v2.o"
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude bench/train/gemm_ab.c "$OUT/v1.o" "$OUT/v2.o" build/libsembed.a \
  -o "$OUT/gemm_ab" $(pkg-config --libs jansson libutf8proc sqlite3 zlib libcurl libcrypto 2>/dev/null || echo -ljansson -lutf8proc -lsqlite3 -lz -lcurl -lcrypto) -lm -pthread
B=$OUT/gemm_ab
export COLD=${COLD:-1}
# forward: q|k|v, the attention output, FF1, FF2 (x W^T: B read transposed)
$B 2048 1152 384 384 1 1 384 0 "$PAIRS"
$B 2048 384 384 384 1 1 384 0 "$PAIRS"
$B 2048 1536 384 384 1 1 384 0 "$PAIRS"
$B 2048 384 1536 1536 1 1 1536 0 "$PAIRS"
# input gradients dy W: FF2's (stored, into dff), FF1's, the output's, q|k|v's (added)
$B 2048 1536 384 384 1 1536 1 0 "$PAIRS"
$B 2048 384 1536 1536 1 384 1 1 "$PAIRS"
$B 2048 384 384 384 1 384 1 0 "$PAIRS"
$B 2048 384 1152 1152 1 384 1 1 "$PAIRS"
# weight gradients dy^T x with the bias sums: FF2, FF1, the output, q|k|v
$B 384 1536 2048 1 384 1536 1 1 "$PAIRS" 1
$B 1536 384 2048 1 1536 384 1 1 "$PAIRS" 1
$B 384 384 2048 1 384 384 1 1 "$PAIRS" 1
$B 1152 384 2048 1 1152 384 1 1 "$PAIRS" 1
