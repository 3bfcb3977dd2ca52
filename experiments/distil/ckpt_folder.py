#!/usr/bin/python3
"""Makes a loadable sentence-transformers folder from a `sembed train` checkpoint.

A checkpoint (OUT/checkpoint-N) holds the weights only: model.safetensors with the
transformer's tensors and the Dense module's as "2_Dense/linear.weight" / "2_Dense/linear.bias".
This copies the configs and tokenizer of the folder the run started from (-m INIT) and
splits the tensors into OUT_DIR/model.safetensors and OUT_DIR/2_Dense/model.safetensors.

  ckpt_folder.py INIT_DIR CHECKPOINT_DIR OUT_DIR
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from teacher_init import read_safetensors, write_safetensors  # noqa: E402


def main():
    """Copies INIT_DIR's files to OUT_DIR, then writes the checkpoint's tensors there."""
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    init, ckpt, out = sys.argv[1:]
    names, ts, meta = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(init, out, ignore=shutil.ignore_patterns("trainer_state.json", "checkpoint-*"))
    body = [k for k in names if "/" not in k]
    write_safetensors(os.path.join(out, "model.safetensors"), body, ts, meta)
    for sub in sorted({k.split("/")[0] for k in names if "/" in k}):
        dn, dt, dm = read_safetensors(os.path.join(init, sub, "model.safetensors"))
        for k in dn:
            dt[k] = ts[sub + "/" + k]
        write_safetensors(os.path.join(out, sub, "model.safetensors"), dn, dt, dm)


if __name__ == "__main__":
    main()
