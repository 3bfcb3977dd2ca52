#!/bin/sh
# Issue 15's experiment (a), second attempt: the same distillation (USE lite -> BERT 4 x 256
# student, MSE to the teacher's vectors) on the first 318,000 sentences of the corpus (run.sh
# used 150,000; the other 168,000 are all of the rest whose teacher vectors were ready when the
# run started), from a teacher-derived init (teacher_init.py: the teacher's vector of every
# wordpiece, PCA'd to 256, as the word embeddings; the Dense layer fitted back to the teacher's
# space) instead of a random one; then (b) again from the new student. Steps are skipped when
# their output exists. Run run.sh first (it makes the corpus and the first 150,000 teacher
# vectors in the same WORK), or give WORK a sentences.jsonl and t150000.npy.
#   WORK=/path/to/work SEMBED=build/sembed sh experiments/distil/run2.sh
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEMBED=${SEMBED:-$ROOT/build/sembed}
WORK=${WORK:-$ROOT/experiments/distil/.work}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-1}
LR=${LR:-2e-4}
N=${N:-318000}
SHARED=$ROOT/../shared/data
STSB=$SHARED/eval/stsbenchmark.tsv.gz
VOCAB=$SHARED/tokenizers/bert-base-uncased.vocab.txt
mkdir -p "$WORK/a2"
cd "$WORK"
# 1. the teacher's vectors of sentences 150,001..N (run.sh made the first 150,000), then all N
R=$((N - 150000))
[ -s "s_next$R.jsonl" ] || head -n "$N" sentences.jsonl | tail -n +150001 > "s_next$R.jsonl"
[ -s "s_next$R.txt" ] || /usr/bin/python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["sentence"])' < "s_next$R.jsonl" > "s_next$R.txt"
[ -s "t_next$R.npy" ] || "$SEMBED" encode -m "$ROOT/models/use-lite" -i "s_next$R.txt" -o "t_next$R.npy" -b 64 -t "$THREADS"
[ -s "s$N.jsonl" ] || head -n "$N" sentences.jsonl > "s$N.jsonl"
[ -s "t$N.npy" ] || /usr/bin/python3 -c 'import numpy as np, sys
np.save(sys.argv[3], np.concatenate([np.load(sys.argv[1]), np.load(sys.argv[2])]).astype("<f4"))' \
    t150000.npy "t_next$R.npy" "t$N.npy"
cd a2
# 2. a random-init folder of the student's shape, as a template (one step at lr 1e-12 on
#    3 rows: `sembed train` has no zero-step mode; every tensor but the encoder layers'
#    is replaced in step 3, and those stay Hugging Face's random init)
[ -s tiny.npy ] || { head -n 3 ../s150000.jsonl > tiny.jsonl; /usr/bin/python3 -c 'import numpy as np
np.save("tiny.npy", np.load("../t150000.npy", mmap_mode="r")[:3].astype("<f4"))'; }
[ -s template/model.safetensors ] || "$SEMBED" train --init random --arch bert --vocab "$VOCAB" \
    --layers 4 --hidden 256 --heads 4 --dense 512 --max-seq-length 64 --loss mse \
    --teacher-vectors tiny.npy --data tiny.jsonl --epochs 1 --batch-size 64 --lr 1e-12 --seed 15 \
    -t 1 -o template -q
# 3. the teacher-derived init (teacher_init.py says how); its Dense is fitted on 30,000 rows
[ -s init/model.safetensors ] || /usr/bin/python3 "$ROOT/experiments/distil/teacher_init.py" \
    --sembed "$SEMBED" --teacher "$ROOT/models/use-lite" --template template \
    --fit-text ../s150000.txt --fit-vectors ../t150000.npy --fit-rows 30000 \
    --word-std 0.05 --dense-std 0.04 --seed 15 --threads "$THREADS" --work init-work -o init
"$SEMBED" eval sts -m init "$STSB" --split dev -q
# 4. (a) distil on the N sentences from the init
[ -s student/model.safetensors ] || "$SEMBED" train -m init --loss mse \
    --teacher-vectors "../t$N.npy" --data "../s$N.jsonl" \
    --epochs "$EPOCHS" --batch-size 64 --lr "$LR" --warmup-ratio 0.05 --weight-decay 0.01 \
    --eval-sts "$STSB" --eval-split dev --eval-steps 500 --save-steps 500 --seed 15 -t "$THREADS" \
    -o student --progress
"$SEMBED" eval sts -m student "$STSB" --split test -q
# 5. (b) fine-tune the new student on STS-B train with CoSENT (run.sh's step 4 command)
[ -s ../stsb-train.tsv ] || zcat "$STSB" | tr -d '\r' | awk -F'\t' 'BEGIN{OFS="\t"; print "sentence1","sentence2","score"}
    $1=="train"{print $7,$8,$6/5}' > ../stsb-train.tsv
[ -s student-sts/model.safetensors ] || "$SEMBED" train -m student --loss cosent --data ../stsb-train.tsv \
    --epochs 4 --batch-size 16 --lr 2e-5 --warmup-ratio 0.1 --seed 15 -t "$THREADS" \
    --eval-sts "$STSB" --eval-split dev -o student-sts --progress
"$SEMBED" eval sts -m student-sts "$STSB" --split test -q
