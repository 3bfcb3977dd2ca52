#!/usr/bin/python3
"""Encoding throughput from Python (sembed.SentenceTransformer.encode) against
the CLI (`sembed encode`), on the first 10,000 sentences of the STS Benchmark
(tests/fixtures/eval/stsbenchmark.tsv.gz: sentence1 then sentence2 of each
row, in file order). Prints one JSON object.

Run from the repo root after `make`:
    /usr/bin/python3 bench/python/bench_encode.py [-m models/use-lite] [-n 10000] [-r 3] [-o result.json]

Both sides do the same work: load the model, encode every sentence with
batch size 32 and the default threads, and keep the float32 vectors (the
CLI writes them as .npy into a temporary file; Python keeps the array). The
best of -r alternated runs of each is reported; "ratio" is Python's
throughput over the CLI's (the issue's goal is >= 0.95). The vectors are
compared bit for bit.
"""
import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sentences(n):
    """The first n sentences of the STS Benchmark TSV."""
    out = []
    with gzip.open(os.path.join(ROOT, "tests", "fixtures", "eval", "stsbenchmark.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            out.extend(cols[6:8])
            if len(out) >= n:
                break
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "models", "use-lite"))
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("-b", "--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-o", "--output")
    a = ap.parse_args()
    os.environ.setdefault("SEMBED_LIBRARY", os.path.join(a.build, "libsembed.so"))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import numpy as np
    import sembed

    texts = sentences(a.n)
    tmp = tempfile.mkdtemp(prefix="sembed-bench-py-")
    src, dst = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.npy")
    with open(src, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(t) + "\n" for t in texts)
    cli_t, py_t = [], []
    emb = None
    for _ in range(a.runs):
        t0 = time.perf_counter()
        subprocess.run([os.path.join(a.build, "sembed"), "encode", "-m", a.model, "--jsonl-input", "-i", src, "-o", dst,
                        "-b", "32", "-q"], check=True)
        cli_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model = sembed.SentenceTransformer(a.model)
        emb = model.encode(texts, batch_size=32)
        py_t.append(time.perf_counter() - t0)
        del model
    same = emb.tobytes() == np.load(dst).tobytes()
    os.remove(src), os.remove(dst), os.rmdir(tmp)
    res = {"bench": "python-vs-cli-encode", "model": os.path.relpath(a.model, ROOT), "n_texts": len(texts),
           "batch_size": 32, "runs": a.runs, "cli_seconds": [round(t, 4) for t in cli_t],
           "python_seconds": [round(t, 4) for t in py_t], "cli_texts_per_s": round(len(texts) / min(cli_t), 1),
           "python_texts_per_s": round(len(texts) / min(py_t), 1), "ratio": round(min(cli_t) / min(py_t), 3),
           "bit_identical": same, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
           "machine": platform.machine(), "python": platform.python_version(), "sembed": sembed.__version__,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(res, indent=2)
    print(text)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
