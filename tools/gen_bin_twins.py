#!/usr/bin/python3
"""Writes pytorch_model.bin twins of safetensors fixtures, for the loader's .bin path.

Run from the project root with Debian's Python (python3-torch):

    /usr/bin/python3 tools/gen_bin_twins.py

For each twin, tests/fixtures/models/<name>-bin/ holds the same tensors as the
safetensors fixture <name>, saved by torch.save (the zip format torch >= 1.6
writes) the way checkpoints that ship only pytorch_model.bin store them, and
relative symlinks to the fixture's other files (configs, tokenizer). A model
loaded from the twin must give bit-identical embeddings (tests/test_model.c:
test_model_bin_twins). Twins:
  zh-cls-dense-f16-bin   F16 weights in pytorch_model.bin, an int64
                         embeddings.position_ids buffer as older checkpoints
                         carry, and the Dense module as 2_Dense/pytorch_model.bin
                         (as sentence-transformers < 2.3 saved it);
  en-plain-hf-bin        sharded: pytorch_model-0000N-of-00002.bin with
                         pytorch_model.bin.index.json (a plain Hugging Face
                         folder, tensors named with the bert. prefix).
The safetensors files are read here with a few lines of struct/numpy, not the
safetensors package. Output is deterministic apart from torch.save's own
zip layout, which torch 1.13 writes the same way each run.
"""

import collections
import json
import os
import shutil
import struct

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "models")


def read_safetensors(path):
    """Returns an OrderedDict name -> torch tensor, in file order."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n :]
    out = collections.OrderedDict()
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = t["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype=np.uint8).copy()
        dt = t["dtype"]
        if dt == "F32":
            x = torch.from_numpy(raw.view(np.float32).copy())
        elif dt == "F16":
            x = torch.from_numpy(raw.view(np.float16).copy())
        elif dt == "BF16":
            x = torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16)
        elif dt == "I64":
            x = torch.from_numpy(raw.view(np.int64).copy())
        else:
            raise SystemExit(f"{path}: {name}: dtype {dt} not handled")
        out[name] = x.reshape(t["shape"])
    return out


def link_others(src, dst, skip):
    """Relative symlinks in dst to every file of src not in skip (recursing)."""
    for root, _, files in os.walk(src):
        rel = os.path.relpath(root, src)
        for fn in files:
            r = os.path.normpath(os.path.join(rel, fn))
            if r in skip:
                continue
            target = os.path.join(dst, r)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.path.relpath(os.path.join(src, r), os.path.dirname(target)), target)


def twin_dense_f16():
    src = os.path.join(FIX, "zh-cls-dense-f16")
    dst = os.path.join(FIX, "zh-cls-dense-f16-bin")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(os.path.join(dst, "2_Dense"))
    sd = read_safetensors(os.path.join(src, "model.safetensors"))
    n_pos = next(v.shape[0] for k, v in sd.items() if k.endswith("position_embeddings.weight"))
    sd["embeddings.position_ids"] = torch.arange(n_pos, dtype=torch.int64).reshape(1, n_pos)
    torch.save(sd, os.path.join(dst, "pytorch_model.bin"))
    dense = read_safetensors(os.path.join(src, "2_Dense", "model.safetensors"))
    torch.save(dense, os.path.join(dst, "2_Dense", "pytorch_model.bin"))
    link_others(src, dst, {"model.safetensors", os.path.join("2_Dense", "model.safetensors")})


def twin_sharded():
    src = os.path.join(FIX, "en-plain-hf")
    dst = os.path.join(FIX, "en-plain-hf-bin")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    with open(os.path.join(src, "model.safetensors.index.json")) as f:
        index = json.load(f)
    weight_map = {}
    for i, shard in enumerate(sorted(set(index["weight_map"].values()))):
        sd = read_safetensors(os.path.join(src, shard))
        name = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save(sd, os.path.join(dst, name))
        for k in sd:
            weight_map[k] = name
    with open(os.path.join(dst, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": index.get("metadata", {}), "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")
    link_others(src, dst, {"model.safetensors.index.json"} | set(index["weight_map"].values()))


def main():
    """Writes both twins (gen_fixtures.py calls this after rewriting the folders)."""
    twin_dense_f16()
    twin_sharded()
    print("  zh-cls-dense-f16-bin, en-plain-hf-bin: pytorch_model.bin twins")


if __name__ == "__main__":
    main()
