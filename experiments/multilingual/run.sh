#!/bin/sh
# Issue 15's experiment (c): multilingual distillation (Reimers & Gurevych
# 2020). The student of experiment (a) gains the CJK characters of
# bert-base-chinese's vocabulary and learns to put a Chinese string on the
# teacher's (USE lite's) vector of its English translation, from the zh_CN
# message catalogues Debian installs. English rows from (a)'s corpus keep its
# English. Steps are skipped when their output exists.
#   WORK=... SEMBED=build/sembed sh experiments/multilingual/run.sh A_STUDENT A_SENTENCES_JSONL
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEMBED=${SEMBED:-$ROOT/build/sembed}
WORK=${WORK:-$ROOT/experiments/multilingual/.work}
A=$1
SENT=$2
THREADS=${THREADS:-2}
SHARED=$ROOT/../shared/data
PREP=$ROOT/experiments/multilingual/prep.py
mkdir -p "$WORK"
cd "$WORK"
[ -s zh-pairs.jsonl ] || /usr/bin/python3 "$PREP" pairs zh-pairs.jsonl
# rows: {"en", "zh"} pairs, then 20,000 English sentences of (a)'s corpus as {"en": s, "zh": s}
[ -s rows.jsonl ] || { cat zh-pairs.jsonl; tail -n 20000 "$SENT" | /usr/bin/python3 -c 'import json,sys
for l in sys.stdin:
    s = json.loads(l)["sentence"]; print(json.dumps({"en": s, "zh": s}, ensure_ascii=False))'; } > rows.jsonl
[ -s rows-en.txt ] || /usr/bin/python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["en"])' < rows.jsonl > rows-en.txt
[ -s teacher.npy ] || "$SEMBED" encode -m "$ROOT/models/use-lite" -i rows-en.txt -o teacher.npy -b 64 -t "$THREADS"
[ -s init/model.safetensors ] || /usr/bin/python3 "$PREP" student "$A" "$SHARED/tokenizers/bert-base-chinese.vocab.txt" init
[ -s student-zh/model.safetensors ] || "$SEMBED" train -m init --loss mse --teacher-vectors teacher.npy \
    --data rows.jsonl --columns en,zh --epochs "${EPOCHS:-2}" --batch-size 64 --lr 2e-4 --warmup-ratio 0.05 \
    --weight-decay 0.01 --seed 15 -t "$THREADS" --save-steps 200 \
    --eval-sts "$SHARED/eval/stsbenchmark.tsv.gz" --eval-split dev --eval-steps 200 -o student-zh --progress
for m in "$ROOT/models/use-lite" "$A" student-zh; do
    echo "$m: $("$SEMBED" eval sts -m "$m" "$SHARED/eval/zh-STS-B.test.data" -q)"
    echo "$m: $("$SEMBED" eval sts -m "$m" "$SHARED/eval/stsbenchmark.tsv.gz" --split test -q)"
done
