#!/usr/bin/python3
"""Data and student for issue 15's experiment (c), multilingual distillation
(Reimers & Gurevych 2020): a student that maps a Chinese sentence onto the
teacher's vector of its English translation.

  prep.py pairs OUT.jsonl
      English-Chinese pairs from the zh_CN message catalogues Debian installs
      (/usr/share/locale/zh_CN/LC_MESSAGES/*.mo): {"en": ..., "zh": ...} a line,
      deduplicated, in a fixed shuffled order. Strings with printf/format
      placeholders, markup or fewer than 3 English words are left out.
  prep.py student SRC_DIR CJK_VOCAB OUT_DIR
      A copy of the sentence-transformers folder SRC_DIR (a BERT student with a
      WordPiece vocab.txt, e.g. experiment (a)'s) whose vocabulary gains the
      single CJK characters of CJK_VOCAB (bert-base-chinese's vocab.txt) it
      lacks; their embedding rows are drawn as BERT's init (normal, std 0.02,
      seed 15); every other weight is copied. BERT's basic tokenizer splits CJK
      text into characters, so one piece per character covers Chinese.
Run with Debian's python: /usr/bin/python3 experiments/multilingual/prep.py ...
"""
import gettext, glob, json, os, random, re, shutil, struct, sys

import numpy as np

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def pairs(out):
    """Writes the catalogues' English-Chinese pairs to out."""
    seen, rows = set(), []
    for path in sorted(glob.glob("/usr/share/locale/zh_CN/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:  # a catalogue this gettext cannot read: skipped
            continue
        for k, v in cat.items():
            if isinstance(k, tuple):
                k = k[0]
            if not k or not isinstance(v, str):
                continue
            en = re.sub(r"\s+", " ", k).strip()
            zh = re.sub(r"\s+", " ", v).strip()
            if (len(en.split()) < 3 or len(en) > 300 or not CJK.search(zh) or re.search(r"[%{}<>\\_$@]", en + zh)
                    or en.lower() in seen):
                continue
            seen.add(en.lower())
            rows.append({"en": en.rstrip(":"), "zh": zh.rstrip(":：")})
    random.Random(15).shuffle(rows)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(out + ".tmp", out)
    print(f"{len(rows)} pairs -> {out}", file=sys.stderr)


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays, with its metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", None)
    dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, h in head.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt[h["dtype"]]).reshape(h["shape"])
    return out, meta


def write_safetensors(path, tensors, meta):
    """Writes tensors (name -> numpy array) as a safetensors file, via a temporary name."""
    dt = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}
    head, blobs, off = {}, [], 0
    if meta:
        head["__metadata__"] = meta
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name]).tobytes()
        head[name] = {"dtype": dt[tensors[name].dtype], "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def student(src, cjk_vocab, out):
    """Copies src to out with the CJK characters of cjk_vocab added to its vocabulary."""
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    vocab = open(os.path.join(src, "vocab.txt"), encoding="utf-8").read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    have = set(vocab)
    new = [t for t in open(cjk_vocab, encoding="utf-8").read().split("\n")
           if len(t) == 1 and CJK.match(t) and t not in have]
    st_path = os.path.join(out, "model.safetensors")
    ts, meta = read_safetensors(st_path)
    key = [k for k in ts if k.endswith("word_embeddings.weight")][0]
    emb = ts[key]
    assert emb.shape[0] == len(vocab), f"{key} has {emb.shape[0]} rows, vocab.txt {len(vocab)} lines"
    rows = np.random.default_rng(15).normal(0, 0.02, (len(new), emb.shape[1])).astype(emb.dtype)
    ts[key] = np.concatenate([emb, rows])
    write_safetensors(st_path, ts, meta)
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab + new) + "\n")
    cfg_path = os.path.join(out, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["vocab_size"] = len(vocab) + len(new)
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    for stale in ("tokenizer.json",):  # a fast tokenizer file would still have the old vocabulary
        p = os.path.join(out, stale)
        if os.path.exists(p):
            os.unlink(p)
    print(f"{len(vocab)} + {len(new)} CJK characters -> {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "pairs":
        pairs(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "student":
        student(*sys.argv[2:])
    else:
        sys.exit(__doc__)
