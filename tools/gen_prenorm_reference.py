#!/usr/bin/env python3
"""Reference for se_encode_params.skip_normalize (TEI's `normalize: false`): the output of
every fixture model whose pipeline ends with Normalize, with that Normalize left out.

It follows sentence-transformers: the modules of `modules.json` run in order on the
Pooling output and stop before the final Normalize.  The Pooling output is the fixture's own
PyTorch reference (`pooled` in `expected.jsonl`, exact float32 values); a Dense module after
it is applied here with gen_fixtures.py's `st_dense` (F.linear + activation, float32) on the
module's weights read from its `model.safetensors`.  With no module between Pooling and
Normalize the result is `pooled` itself.  Writes tests/fixtures/encode-api/prenorm.jsonl:
line 1 a header, then one `{"model", "sentence", "prenorm"}` per model and sentence.

    /usr/bin/python3 tools/gen_prenorm_reference.py

Deterministic: a rerun is byte-identical.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "encode-api", "prenorm.jsonl")
sys.path.insert(0, HERE)
import gen_fixtures  # noqa: E402  (st_dense, f32list, jsonl_line)


def read_safetensors_f32(path):
    """The F32 tensors of a safetensors file as torch tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError("%s: %s is %s, not F32" % (path, name, t["dtype"]))
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy().reshape(t["shape"]))
    return out


def main():
    header = {"magic": "sembed-fixture", "version": 1, "generator": "tools/gen_prenorm_reference.py",
              "torch": torch.__version__,
              "notes": "The sentence-transformers pipeline of each model up to, not including, its final "
                       "Normalize: Pooling output (expected.jsonl 'pooled'), then any Dense module in float32."}
    lines = [gen_fixtures.jsonl_line(header)]
    for name in sorted(os.listdir(FIX)):
        d = os.path.join(FIX, name)
        mj = os.path.join(d, "modules.json")
        if not os.path.isfile(mj):
            continue
        with open(mj) as f:
            mods = json.load(f)
        if not mods[-1]["type"].endswith("Normalize"):
            continue
        between = mods[2:-1]  # after Transformer and Pooling
        dense = []
        for m in between:
            if not m["type"].endswith("Dense"):
                raise ValueError("%s: module %s is not handled" % (name, m["type"]))
            md = os.path.join(d, m["path"])
            if not os.path.isfile(os.path.join(md, "model.safetensors")):
                break  # a torch.save twin: the safetensors folder gives the same values
            with open(os.path.join(md, "config.json")) as f:
                dcfg = json.load(f)
            dense.append((dcfg, read_safetensors_f32(os.path.join(md, "model.safetensors"))))
        if len(dense) != len(between):
            continue
        with open(os.path.join(d, "expected.jsonl"), encoding="utf-8") as f:
            recs = [json.loads(l) for l in f][1:]
        for i, r in enumerate(recs):
            v = torch.tensor(r["pooled"], dtype=torch.float32)
            for dcfg, w in dense:
                v = gen_fixtures.st_dense(dcfg, w, v)
            lines.append(gen_fixtures.jsonl_line({"model": name, "sentence": i, "prenorm": gen_fixtures.f32list(v)}))
        print("  %-20s %d sentences, %d Dense" % (name, len(recs), len(dense)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
