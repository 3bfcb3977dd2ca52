#!/usr/bin/python3
"""make_lengths.py - the token lengths of real training pairs, for bench_train --lengths.

Tokenizes STS Benchmark's train pairs (sentence1, sentence2; ../shared/data/eval/stsbenchmark.tsv.gz,
the same file the tests and experiments read) with all-MiniLM-L6-v2's tokenizer (../shared's
all-minilm-l6-v2.tokenizer.json, bert-base-uncased's vocabulary; [CLS] and [SEP] counted, at most
128 tokens) through `sembed tokenize`, shuffles the pairs with a fixed seed and writes one pair per
line: "anchor_length positive_length". Only the lengths are written, no text.

    /usr/bin/python3 bench/train/make_lengths.py [--sembed build/sembed] > bench/train/lengths-stsb-train.txt
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sembed", default=os.path.join(ROOT, "build", "sembed"))
    ap.add_argument("--stsb", default=os.path.join(ROOT, "..", "shared", "data", "eval", "stsbenchmark.tsv.gz"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "data", "tokenizers",
                                                        "all-minilm-l6-v2.tokenizer.json"))
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    pairs = []
    with gzip.open(a.stsb, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            c = line.rstrip("\r\n").split("\t")
            if len(c) >= 8 and c[0] == "train":
                pairs.append((c[6], c[7]))
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(a.tokenizer, os.path.join(d, "tokenizer.json"))
        texts = "".join(json.dumps(t) + "\n" for p in pairs for t in p)
        r = subprocess.run([a.sembed, "tokenize", "-m", d, "--jsonl-input", "--max-length", "128"], input=texts,
                           capture_output=True, text=True, check=True)
    n = [len(json.loads(l)) for l in r.stdout.splitlines()]
    if len(n) != 2 * len(pairs):
        sys.exit("make_lengths: %d token lists for %d texts" % (len(n), 2 * len(pairs)))
    rows = [(n[2 * i], n[2 * i + 1]) for i in range(len(pairs))]
    random.Random(a.seed).shuffle(rows)
    for x, y in rows:
        print(x, y)


if __name__ == "__main__":
    main()
