#!/usr/bin/python3
"""Writes the pytorch_model.bin fixtures of tests/fixtures/torch_bin/ with Debian's torch.

Run from the project root with Debian's Python (apt-get install python3-torch):

    /usr/bin/python3 tools/gen_torch_bin.py

Every checkpoint is written by torch.save itself, so the C reader (src/torch_bin.c) is
tested on exactly what torch writes. Each loadable checkpoint has a safetensors twin
holding the same tensors (contiguous copies, same dtype, same bits), written by the small
writer below from the tensors' raw bytes; tests/test_torch_bin.c reads both files and
compares every tensor bit for bit, so the expected values never pass through the code
under test. The twin's __metadata__ names the generator and the torch version.

What is written (see tests/fixtures/torch_bin/README.md, which is kept; everything else in
the folder is deleted and rewritten):
  bert_f32/pytorch_model.bin   a tiny BERT-shaped state_dict() in float32, with its
  bert_f32/model.safetensors   twin: an int64 embeddings.position_ids buffer, q/k/v
                               weights that are views into one storage at offsets 0,
                               64 and 128, a tied cls.predictions.decoder.weight (the
                               same storage as the word embeddings), a 0-dim scalar, an
                               empty (0, 4) tensor and an int32 buffer; the OrderedDict
                               carries the _metadata attribute every state_dict() has
  bert_f16/..., bert_bf16/...  the same model in float16 and bfloat16 (the integer
                               buffers stay integer, as module.half() leaves them)
  param.bin (+ .safetensors)   a dict of nn.Parameter objects: torch._utils._rebuild_parameter
  proto4.bin (+ .safetensors)  torch.save(..., pickle_protocol=4): FRAME, SHORT_BINUNICODE,
                               STACK_GLOBAL, MEMOIZE
  many.bin                     1024 tensors "layer.<i>.w" = [2i, 2i+1], views of one
                               storage arange(2048.) at offset 2i: more than the 1000
                               items Python's pickler puts in one SETITEMS batch
  noncontig.bin                a transposed view (stride (1, 3)): the reader refuses it
  legacy.bin                   _use_new_zipfile_serialization=False (the pre-1.6 format):
                               the reader refuses it
  deflated.bin                 bert_f32 re-zipped by Python's zipfile with deflate: the
                               reader refuses compressed entries
  restored.bin                 bert_f32 re-zipped by Python's zipfile, stored but without
                               torch's 64-byte alignment: most storages are unaligned
  zip64.bin                    bert_f32 rewritten by write_zip64 below: every size and
                               offset in zip64 extra fields (0xFFFFFFFF in the 32-bit
                               fields), zip64 end records, data aligned to 64 as torch does

Output is deterministic (fixed seeds; torch's zip writer stores no timestamps): a rerun
is byte-identical.
"""

import collections
import io
import json
import os
import shutil
import struct
import sys
import zipfile
import zlib

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch_bin")

ST_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.float64: "F64", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}

# BERT-shaped and tiny: vocab V, hidden H, FFN I, positions P, token types 2, one layer.
V, H, I, P = 20, 8, 16, 12


def raw_bytes(t):
    """Returns a tensor's elements as little-endian bytes in row-major order."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """Writes name -> tensor as a safetensors file (names sorted, header padded to 8)."""
    header = {"__metadata__": {"generator": "tools/gen_torch_bin.py", "torch": torch.__version__}}
    blobs, off = [], 0
    for name in sorted(tensors):
        b = raw_bytes(tensors[name])
        header[name] = {"dtype": ST_DTYPES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_zip64(path, entries):
    """Writes (name, bytes) entries as a stored zip in which every entry uses zip64
    extra fields (as a multi-GB checkpoint's large entries do) and the archive ends
    with the zip64 end-of-central-directory record and locator. Data is aligned to
    64 bytes with a padding extra field, as torch's writer does."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        n = name.encode()
        crc = zlib.crc32(data)
        header = len(out)
        z64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = -(header + 30 + len(n) + len(z64) + 4) % 64
        extra = z64 + struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x800, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(n), len(extra)) + n + extra
        assert len(out) % 64 == 0
        out += data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), header)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x800, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(n), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + n + cextra
    cd_off = len(out)
    out += central
    z64_off = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64_off, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)


def put(root, path, tensor, buffer=False, param=None):
    """Registers tensor (or the given Parameter object) at dotted path under root,
    creating the intermediate modules, so state_dict() names it path."""
    parts = path.split(".")
    m = root
    for p in parts[:-1]:
        if not hasattr(m, p):
            m.add_module(p, torch.nn.Module())
        m = getattr(m, p)
    if buffer:
        m.register_buffer(parts[-1], tensor)
    else:
        m.register_parameter(parts[-1], param if param is not None else torch.nn.Parameter(tensor, requires_grad=False))


def bert_module(dtype, seed):
    """A module whose state_dict() has BERT's names and the layouts real checkpoints
    have: shared storages (q/k/v views at offsets, tied decoder weight), int64
    position_ids, plus a scalar, an empty tensor and an int32 buffer."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return (torch.randn(shape, generator=g) * 0.5).to(dtype)

    m = torch.nn.Module()
    word = torch.nn.Parameter(rnd(V, H), requires_grad=False)
    put(m, "embeddings.word_embeddings.weight", None, param=word)
    put(m, "embeddings.position_embeddings.weight", rnd(P, H))
    put(m, "embeddings.token_type_embeddings.weight", rnd(2, H))
    put(m, "embeddings.LayerNorm.weight", rnd(H) + 1)
    put(m, "embeddings.LayerNorm.bias", rnd(H))
    put(m, "embeddings.position_ids", torch.arange(P).expand((1, -1)), buffer=True)
    L = "encoder.layer.0."
    qkv = rnd(3 * H, H)  # one storage; q, k, v are views at element offsets 0, 64, 128
    for i, n in enumerate(("query", "key", "value")):
        put(m, L + "attention.self." + n + ".weight", qkv[i * H:(i + 1) * H])
        put(m, L + "attention.self." + n + ".bias", rnd(H))
    put(m, L + "attention.output.dense.weight", rnd(H, H))
    put(m, L + "attention.output.dense.bias", rnd(H))
    put(m, L + "attention.output.LayerNorm.weight", rnd(H) + 1)
    put(m, L + "attention.output.LayerNorm.bias", rnd(H))
    put(m, L + "intermediate.dense.weight", rnd(I, H))
    put(m, L + "intermediate.dense.bias", rnd(I))
    put(m, L + "output.dense.weight", rnd(H, I))
    put(m, L + "output.dense.bias", rnd(H))
    put(m, L + "output.LayerNorm.weight", rnd(H) + 1)
    put(m, L + "output.LayerNorm.bias", rnd(H))
    put(m, "pooler.dense.weight", rnd(H, H))
    put(m, "pooler.dense.bias", rnd(H))
    put(m, "cls.predictions.decoder.weight", None, param=word)  # tied to the word embeddings
    put(m, "extra.scalar", rnd(), buffer=True)
    put(m, "extra.empty", rnd(0, 4), buffer=True)
    put(m, "extra.int32", torch.arange(-3, 5, dtype=torch.int32), buffer=True)
    return m


def check_layouts(sd):
    """Asserts the state dict really has the layouts the fixture promises."""
    L = "encoder.layer.0.attention.self."
    q, k, v = sd[L + "query.weight"], sd[L + "key.weight"], sd[L + "value.weight"]
    assert q.storage().data_ptr() == k.storage().data_ptr() == v.storage().data_ptr()
    assert (q.storage_offset(), k.storage_offset(), v.storage_offset()) == (0, H * H, 2 * H * H)
    assert sd["cls.predictions.decoder.weight"].data_ptr() == sd["embeddings.word_embeddings.weight"].data_ptr()
    assert sd["embeddings.position_ids"].dtype == torch.int64
    assert hasattr(sd, "_metadata")


def save_with_twin(obj, bin_path, st_path):
    """torch.save(obj) and its safetensors twin; returns the tensors."""
    torch.save(obj, bin_path)
    back = torch.load(bin_path)  # what torch itself reads back
    assert list(back) == list(obj)
    for name, t in obj.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name
    write_safetensors(st_path, dict(obj))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):  # everything but the README is regenerated
        path = os.path.join(OUT, name)
        if name != "README.md":
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    for name, dtype, seed in (("bert_f32", torch.float32, 1), ("bert_f16", torch.float16, 2),
                              ("bert_bf16", torch.bfloat16, 3)):
        d = os.path.join(OUT, name)
        os.makedirs(d)
        sd = bert_module(dtype, seed).state_dict()
        check_layouts(sd)
        save_with_twin(sd, os.path.join(d, "pytorch_model.bin"), os.path.join(d, "model.safetensors"))

    g = torch.Generator().manual_seed(4)
    params = collections.OrderedDict(
        (n, torch.nn.Parameter(torch.randn(*s, generator=g))) for n, s in (("linear.weight", (3, 5)), ("linear.bias", (3,))))
    save_with_twin(params, os.path.join(OUT, "param.bin"), os.path.join(OUT, "param.safetensors"))

    sd = collections.OrderedDict([("a.weight", torch.randn(4, 3, generator=g)),
                                  ("a.ids", torch.arange(5)),
                                  ("a.half", torch.randn(6, generator=g).half())])
    torch.save(sd, os.path.join(OUT, "proto4.bin"), pickle_protocol=4)
    write_safetensors(os.path.join(OUT, "proto4.safetensors"), sd)

    base = torch.arange(2048.0)
    torch.save(collections.OrderedDict(("layer.%d.w" % i, base[2 * i:2 * i + 2]) for i in range(1024)),
               os.path.join(OUT, "many.bin"))

    torch.save(collections.OrderedDict([("w", torch.arange(12.0).reshape(3, 4).t())]), os.path.join(OUT, "noncontig.bin"))
    torch.save(collections.OrderedDict([("w", torch.ones(2))]), os.path.join(OUT, "legacy.bin"),
               _use_new_zipfile_serialization=False)

    # bert_f32 re-zipped with deflate, as a zip tool might
    with zipfile.ZipFile(os.path.join(OUT, "bert_f32", "pytorch_model.bin")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "deflated.bin"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, src.read(info.filename))
    # ... and stored, without alignment; and rewritten with zip64 records
    with zipfile.ZipFile(os.path.join(OUT, "bert_f32", "pytorch_model.bin")) as src:
        entries = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(os.path.join(OUT, "restored.bin"), "w", zipfile.ZIP_STORED) as dst:
        for name, data in entries:
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    write_zip64(os.path.join(OUT, "zip64.bin"), entries)
    for name in ("restored.bin", "zip64.bin"):  # torch reads both back unchanged
        back = torch.load(os.path.join(OUT, name))
        ref = torch.load(os.path.join(OUT, "bert_f32", "pytorch_model.bin"))
        assert list(back) == list(ref) and all(torch.equal(back[k], ref[k]) for k in ref), name

    total = 0
    for dirpath, _, files in os.walk(OUT):
        for f in sorted(files):
            total += os.path.getsize(os.path.join(dirpath, f))
    print("wrote %s (%d bytes), torch %s" % (OUT, total, torch.__version__), file=sys.stderr)


if __name__ == "__main__":
    main()
