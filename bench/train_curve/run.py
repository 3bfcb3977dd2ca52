#!/usr/bin/python3
"""bench/train_curve/run.py - issue 15's loss-curve acceptance on a realistic shape.

"50 steps of MNRL from the same initial weights, data order and learning rate give
the same loss curve as PyTorch, within 0.1% at every step (explain any drift)."

The shape is MiniLM-L6's (6 layers x 384, 12 heads, FF 1536, 512 positions) with
BERT's random init (normal(0, 0.02), LayerNorm 1 / 0, biases 0; numpy, seed 0),
bert-base-uncased's vocabulary (../shared/data/tokenizers/), mean pooling and
Normalize, written here as a sentence-transformers folder. The data are the
first 800 STS Benchmark train pairs scored >= 4 as (anchor, positive)
(../shared/data/eval/stsbenchmark.tsv.gz): 50 batches of 16, one epoch = 50
steps. Both sides train from that folder with MNRL (scale 20), lr 1e-4, 5
warm-up steps (ratio 0.1), linear decay, weight decay 0.01, clipping at 1,
dropout 0.1 (config.json's) with the same masks, seed 42:
  - sembed:  build/sembed train -m FOLDER --loss mnrl ... -t 2 --logging-steps 1
  - PyTorch: tools/train_curve_ref.py (torch float32, 2 threads, OpenBLAS)
and the JSON holds both curves, each step's relative difference and the worst.

    /usr/bin/python3 bench/train_curve/run.py [-o bench/train_curve/result-DATE.json] [--work DIR]
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
SHAPE = dict(H=384, L=6, NH=12, FF=1536, P=512)
OPTS = ["--batch-size", "16", "--epochs", "1", "--lr", "1e-4", "--warmup-ratio", "0.1", "--weight-decay", "0.01",
        "--seed", "42", "--max-seq-length", "128"]


def write_st(path, tensors):
    """A safetensors file of F32 tensors (name -> numpy array)."""
    hdr, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, "<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def make_model(d):
    """The random MiniLM-L6-shaped BERT folder."""
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    shutil.copy(os.path.join(SHARED, "tokenizers", "bert-base-uncased.vocab.txt"), os.path.join(d, "vocab.txt"))
    V = sum(1 for _ in open(os.path.join(d, "vocab.txt"), encoding="utf-8"))
    H, L, NH, FF, P = (SHAPE[k] for k in ("H", "L", "NH", "FF", "P"))
    cfg = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
           "hidden_dropout_prob": 0.1, "hidden_size": H, "initializer_range": 0.02, "intermediate_size": FF,
           "layer_norm_eps": 1e-12, "max_position_embeddings": P, "model_type": "bert", "num_attention_heads": NH,
           "num_hidden_layers": L, "pad_token_id": 0, "position_embedding_type": "absolute",
           "torch_dtype": "float32", "type_vocab_size": 2, "vocab_size": V}
    files = {
        "config.json": cfg,
        "tokenizer_config.json": {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "sentence_bert_config.json": {"max_seq_length": 128, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": H, "pooling_mode_mean_tokens": True}}
    for k, v in files.items():
        with open(os.path.join(d, k), "w") as f:
            json.dump(v, f, indent=1)
    rng = np.random.RandomState(0)
    n = lambda *s: (0.02 * rng.standard_normal(s)).astype("<f4")
    w = {"embeddings.word_embeddings.weight": n(V, H), "embeddings.position_embeddings.weight": n(P, H),
         "embeddings.token_type_embeddings.weight": n(2, H),
         "embeddings.LayerNorm.weight": np.ones(H, "<f4"), "embeddings.LayerNorm.bias": np.zeros(H, "<f4")}
    for i in range(L):
        p = "encoder.layer.%d." % i
        for s, o, k in [("attention.self.query", H, H), ("attention.self.key", H, H), ("attention.self.value", H, H),
                        ("attention.output.dense", H, H), ("intermediate.dense", FF, H), ("output.dense", H, FF)]:
            w[p + s + ".weight"] = n(o, k)
            w[p + s + ".bias"] = np.zeros(o, "<f4")
        for s in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + s + ".weight"] = np.ones(H, "<f4")
            w[p + s + ".bias"] = np.zeros(H, "<f4")
    write_st(os.path.join(d, "model.safetensors"), w)


def make_data(path, n=800):
    """The first n STS-B train pairs scored >= 4 as JSONL (anchor, positive)."""
    rows = []
    with gzip.open(os.path.join(SHARED, "eval", "stsbenchmark.tsv.gz"), "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            c = line.rstrip("\n").split("\t")
            if c[0] == "train" and float(c[5]) >= 4.0:
                rows.append({"anchor": c[6], "positive": c[7]})
    with open(path, "w") as f:
        for r in rows[:n]:
            f.write(json.dumps(r) + "\n")
    return min(n, len(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output")
    ap.add_argument("--work", default="/tmp/sembed-bench-train-curve")
    ap.add_argument("--sembed", default=os.path.join(ROOT, "build", "sembed"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model, data, out = (os.path.join(a.work, x) for x in ("minilm-l6-random", "stsb-pairs-800.jsonl", "sembed-out"))
    if not os.path.isfile(os.path.join(model, "model.safetensors")):
        make_model(model)
    rows = make_data(data)
    shutil.rmtree(out, ignore_errors=True)
    load0 = os.getloadavg()
    cmd_s = [a.sembed, "train", "-m", model, "--loss", "mnrl", "--data", data, "-o", out, "-t", "2", "-q",
             "--logging-steps", "1"] + OPTS
    t0 = time.time()
    subprocess.run(cmd_s, check=True)
    t_s = time.time() - t0
    with open(os.path.join(out, "trainer_state.json")) as f:
        hist = json.load(f)["log_history"]
    ref_json = os.path.join(a.work, "torch.json")
    cmd_t = ["/usr/bin/python3", os.path.join(ROOT, "tools", "train_curve_ref.py"), "-m", model, "--data", data,
             "--sembed", a.sembed, "--threads", "2", "-o", ref_json] + OPTS
    env = dict(os.environ, LD_LIBRARY_PATH=OPENBLAS, OMP_NUM_THREADS="2")
    t0 = time.time()
    subprocess.run(cmd_t, check=True, env=env)
    t_t = time.time() - t0
    with open(ref_json) as f:
        ref = json.load(f)
    s_loss, t_loss = [e["loss"] for e in hist], ref["loss"]
    rel = [abs(x - y) / abs(y) for x, y in zip(s_loss, t_loss)]
    gn = [abs(e["grad_norm"] - y) / y for e, y in zip(hist, ref["grad_norm"])]
    res = {
        "what": "50 MNRL steps, MiniLM-L6 shape (6 x 384, 12 heads, FF 1536), random init, bert-base-uncased vocab, "
                "STS-B train pairs >= 4, batch 16, dropout 0.1 with the same masks: sembed vs PyTorch 1.13 float32",
        "rows": rows, "steps": len(s_loss), "options": OPTS,
        "sembed_command": " ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in cmd_s),
        "torch_command": "LD_LIBRARY_PATH=%s OMP_NUM_THREADS=2 " % OPENBLAS +
                         " ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in cmd_t),
        "torch_version": ref["torch"],
        "worst_relative_difference": max(rel), "worst_step": rel.index(max(rel)) + 1,
        "within_0.1pct": max(rel) < 1e-3,
        "worst_grad_norm_relative_difference": max(gn),
        "relative_difference": rel,
        "sembed_loss": s_loss, "torch_loss": t_loss,
        "sembed_grad_norm": [e["grad_norm"] for e in hist], "torch_grad_norm": ref["grad_norm"],
        "learning_rate": ref["learning_rate"],
        "seconds": {"sembed": round(t_s, 1), "torch": round(t_t, 1)},
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    s = json.dumps(res, indent=1)
    if a.output:
        with open(a.output, "w") as f:
            f.write(s + "\n")
    print(s)


if __name__ == "__main__":
    main()
