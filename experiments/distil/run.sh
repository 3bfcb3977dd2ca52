#!/bin/sh
# Issue 15's experiments (a) and (b), as they were run: distil the default
# model (USE lite) into a 4 x 256 BERT student, then fine-tune the student
# on STS-B train with CoSENT. Each step is skipped when its output exists, so
# an interrupted run goes on where it stopped (a training step itself resumes
# from its last checkpoint: sembed train --resume OUT/checkpoint-N).
#   WORK=/path/to/work SEMBED=build/sembed sh experiments/distil/run.sh [N_SENTENCES]
# Needs Debian's wordnet-base (the corpus's WordNet glosses) and ../shared.
# run2.sh is (a)'s second attempt (a teacher-derived init, 318,000 sentences), run after this.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEMBED=${SEMBED:-$ROOT/build/sembed}
WORK=${WORK:-$ROOT/experiments/distil/.work}
N=${1:-150000}
THREADS=${THREADS:-2}
SHARED=$ROOT/../shared/data
STSB=$SHARED/eval/stsbenchmark.tsv.gz
mkdir -p "$WORK"
cd "$WORK"
# 1. the corpus: English sentences found on this machine (corpus.py says which)
[ -s sentences.jsonl ] || /usr/bin/python3 "$ROOT/experiments/distil/corpus.py" sentences.jsonl
[ -s "s$N.jsonl" ] || head -n "$N" sentences.jsonl > "s$N.jsonl"
[ -s "s$N.txt" ] || /usr/bin/python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["sentence"])' < "s$N.jsonl" > "s$N.txt"
# 2. the teacher's vectors (USE lite, 512-d, unit length)
[ -s "t$N.npy" ] || "$SEMBED" encode -m "$ROOT/models/use-lite" -i "s$N.txt" -o "t$N.npy" -b 64 -t "$THREADS"
# 3. (a) the student: BERT 4 x 256 (4 heads, FF 1024), bert-base-uncased's vocabulary, mean
#    pooling, Dense 256 -> 512, Normalize; MSE to the teacher's vectors
[ -s student/model.safetensors ] || "$SEMBED" train --init random --arch bert \
    --vocab "$SHARED/tokenizers/bert-base-uncased.vocab.txt" --layers 4 --hidden 256 --heads 4 --dense 512 \
    --max-seq-length 64 --loss mse --teacher-vectors "t$N.npy" --data "s$N.jsonl" \
    --epochs "${EPOCHS:-2}" --batch-size 64 --lr 3e-4 --warmup-ratio 0.05 --weight-decay 0.01 \
    --eval-sts "$STSB" --eval-split dev --eval-steps 500 --save-steps 500 --seed 15 -t "$THREADS" \
    -o student --progress
"$SEMBED" eval sts -m student "$STSB" --split test -q
# 4. (b) fine-tune the student on STS-B train with CoSENT
[ -s stsb-train.tsv ] || zcat "$STSB" | tr -d '\r' | awk -F'\t' 'BEGIN{OFS="\t"; print "sentence1","sentence2","score"}
    $1=="train"{print $7,$8,$6/5}' > stsb-train.tsv
[ -s student-sts/model.safetensors ] || "$SEMBED" train -m student --loss cosent --data stsb-train.tsv \
    --epochs 4 --batch-size 16 --lr 2e-5 --warmup-ratio 0.1 --seed 15 -t "$THREADS" \
    --eval-sts "$STSB" --eval-split dev -o student-sts --progress
"$SEMBED" eval sts -m student-sts "$STSB" --split test -q
