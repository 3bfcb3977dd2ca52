#!/usr/bin/python3
"""A teacher-derived init for issue 15's BERT student (Model2Vec-style).

Makes a sentence-transformers folder (BERT L x H + mean pooling + Dense H -> D + Normalize) whose
transformer starts out as a bag of the teacher's word vectors:

1. every wordpiece of the student's vocabulary is encoded as a text by the teacher
   (`sembed encode`, "##" stripped), giving a (vocab, D) matrix of unit vectors;
2. PCA of the ordinary wordpieces' vectors (not [PAD] [CLS] [unused7] ...) to H dimensions;
   the projected rows, scaled to a per-component std of --word-std, become
   embeddings.word_embeddings (the special pieces get random rows of that std, so that no
   row is constant: a constant row would make BERT's LayerNorm divide by ~sqrt(eps));
   position and token-type embeddings are drawn at --pos-scale x that std, so the word
   dominates each token's vector;
3. the encoder layers keep the template's random init (Hugging Face's: N(0, 0.02)
   weights, zero biases), which is close to the identity for a post-LN BERT (each
   residual branch adds ~10% of the token's norm); --zero-residual zeroes the attention
   and feed-forward output projections so that every layer starts as exactly the identity;
4. the Dense H -> D layer is the least-squares fit (with bias) of the teacher's vectors of
   --fit-rows training sentences from the init's own pooled outputs (`sembed encode` of
   a Transformer + Pooling copy of the folder), so the initial student already lands in
   the teacher's space; then scaled (Normalize follows, so the scale is free) to a weight
   std of --dense-std, so that AdamW's first steps do not swamp it.

The template is any `sembed train --init random ... --dense D` folder of the wanted shape
(its embeddings and Dense are replaced; its encoder layers, configs and tokenizer kept).
Deterministic for a seed and template: run2.sh's init is remade byte for byte.

  teacher_init.py --sembed BIN --teacher MODEL_DIR --template DIR --fit-text S.txt \
      --fit-vectors T.npy --work WORK -o OUT
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np


def read_safetensors(path):
    """Returns (ordered list of names, dict name -> float32 array, metadata) of a
    safetensors file holding F32 tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    tensors = {}
    for k in names:
        h = header[k]
        if h["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {k}: dtype {h['dtype']}, expected F32")
        a, b = h["data_offsets"]
        tensors[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(h["shape"]).copy()
    return names, tensors, meta


def write_safetensors(path, names, tensors, meta):
    """Writes the F32 tensors `names` (in that order) to a safetensors file: 8-byte
    little-endian header length, JSON header padded with spaces to a multiple of 8,
    then the raw little-endian data."""
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    off = 0
    blobs = []
    for k in names:
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def run(cmd):
    """Runs a command, echoing it on stderr; exits on failure."""
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def main():
    """Builds the init folder as the module docstring says."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sembed", required=True)
    ap.add_argument("--teacher", required=True, help="the teacher's model folder (USE lite)")
    ap.add_argument("--template", required=True, help="a --init random --dense D folder")
    ap.add_argument("--fit-text", required=True, help="training sentences, one a line")
    ap.add_argument("--fit-vectors", required=True, help="the teacher's .npy of those lines")
    ap.add_argument("--fit-rows", type=int, default=30000)
    ap.add_argument("--word-std", type=float, default=0.05)
    ap.add_argument("--dense-std", type=float, default=0.04)
    ap.add_argument("--pos-scale", type=float, default=0.1)
    ap.add_argument("--zero-residual", action="store_true")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--work", required=True)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rng = np.random.default_rng(a.seed)

    # 1. the teacher's vector of every wordpiece
    vocab = [l.rstrip("\n") for l in open(os.path.join(a.template, "vocab.txt"), encoding="utf-8")]
    vt = os.path.join(a.work, "vocab_texts.txt")
    vn = os.path.join(a.work, "vocab_t.npy")
    if not os.path.exists(vn):
        texts = [w[2:] if w.startswith("##") and len(w) > 2 else w for w in vocab]
        with open(vt, "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
        run([a.sembed, "encode", "-m", a.teacher, "-i", vt, "-o", vn, "-b", "256", "-t", a.threads, "-q"])
    T = np.load(vn).astype(np.float64)
    if T.shape[0] != len(vocab):
        raise SystemExit(f"{vn}: {T.shape[0]} rows, vocab has {len(vocab)}")

    # 2. PCA to the student's hidden size; word, position and type embeddings
    names, ts, meta = read_safetensors(os.path.join(a.template, "model.safetensors"))
    H = ts["embeddings.word_embeddings.weight"].shape[1]
    special = np.array([w.startswith("[") and w.endswith("]") for w in vocab])
    mu = T[~special].mean(0)
    _, S, Vt = np.linalg.svd(T[~special] - mu, full_matrices=False)
    kept = (S[:H] ** 2).sum() / (S ** 2).sum()
    z = (T - mu) @ Vt[:H].T
    z *= a.word_std / z[~special].std()
    z[special] = rng.standard_normal((int(special.sum()), H)) * a.word_std
    print(f"PCA {T.shape[1]} -> {H}: {100 * kept:.1f}% of the variance", file=sys.stderr)
    ts["embeddings.word_embeddings.weight"] = z.astype(np.float32)
    for k in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"):
        ts[k] = (rng.standard_normal(ts[k].shape) * a.word_std * a.pos_scale).astype(np.float32)
    if a.zero_residual:
        for k in names:
            if k.endswith("attention.output.dense.weight") or (k.endswith("output.dense.weight")
                                                              and ".attention." not in k):
                ts[k][:] = 0
    body = names

    # 3. the init's pooled outputs (Transformer + Pooling only) on the fit sentences
    pooled_dir = os.path.join(a.work, "pooled-model")
    if os.path.exists(pooled_dir):
        shutil.rmtree(pooled_dir)
    os.makedirs(pooled_dir)
    for f in os.listdir(a.template):
        p = os.path.join(a.template, f)
        if os.path.isfile(p) and f not in ("model.safetensors", "modules.json", "trainer_state.json"):
            shutil.copy(p, pooled_dir)
    shutil.copytree(os.path.join(a.template, "1_Pooling"), os.path.join(pooled_dir, "1_Pooling"))
    mods = json.load(open(os.path.join(a.template, "modules.json")))
    json.dump([m for m in mods if m["path"] in ("", "1_Pooling")],
              open(os.path.join(pooled_dir, "modules.json"), "w"), indent=2)
    write_safetensors(os.path.join(pooled_dir, "model.safetensors"), body, ts, meta)
    fit_txt = os.path.join(a.work, "fit.txt")
    with open(a.fit_text, encoding="utf-8") as f, open(fit_txt, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= a.fit_rows:
                break
            g.write(line)
    pooled = os.path.join(a.work, "fit_pooled.npy")
    run([a.sembed, "encode", "-m", pooled_dir, "-i", fit_txt, "-o", pooled, "-b", "64", "-t", a.threads, "-q"])
    X = np.load(pooled).astype(np.float64)
    Y = np.load(a.fit_vectors, mmap_mode="r")[: len(X)].astype(np.float64)

    # 4. Dense: least squares [X 1] W = Y
    # LayerNorm makes every pooled vector sum to ~0, so [X 1] is singular up to float32
    # noise: rcond drops that direction (numpy's default rcond fits the noise with weights
    # ~1e2 that any change of a LayerNorm bias in training then blows up).
    A = np.hstack([X, np.ones((len(X), 1))])
    W, *_ = np.linalg.lstsq(A, Y, rcond=1e-6)
    r = A @ W - Y
    cos = ((A @ W) * Y).sum(1) / np.linalg.norm(A @ W, axis=1)
    print(f"Dense fit on {len(X)} sentences: mse {np.mean(r ** 2):.3g}, mean cosine to the "
          f"teacher {cos.mean():.4f}", file=sys.stderr)
    # Normalize follows Dense, so W and b can be scaled freely: to a weight std of
    # --dense-std (a Linear's default init is ~0.036), so that AdamW's steps of ~lr per
    # weight are small beside the fitted weights (the least-squares ones have std ~0.007)
    c = a.dense_std / W[:H].std()
    print(f"Dense weights scaled by {c:.2f}", file=sys.stderr)
    W *= c
    dn, dt, dm = read_safetensors(os.path.join(a.template, "2_Dense", "model.safetensors"))
    dt["linear.weight"] = W[:H].T.astype(np.float32)
    dt["linear.bias"] = W[H].astype(np.float32)

    # 5. the output folder: the template's files with the new tensors
    if os.path.exists(a.output):
        shutil.rmtree(a.output)
    shutil.copytree(a.template, a.output, ignore=shutil.ignore_patterns("trainer_state.json", "checkpoint-*"))
    write_safetensors(os.path.join(a.output, "model.safetensors"), body, ts, meta)
    write_safetensors(os.path.join(a.output, "2_Dense", "model.safetensors"), dn, dt, dm)
    print(f"wrote {a.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
