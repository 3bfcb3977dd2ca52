#!/usr/bin/env python3
"""Expected ids for tokenizer.json variants of the XLM-R sentencepiece file.

    NPM_ORACLES=/work/npm-oracles /usr/bin/python3 tools/gen_sentencepiece_variants.py

Starts from tests/fixtures/sentencepiece/test_model.xlmr.tokenizer.json (the
current XLMRobertaConverter's file) and changes one part at a time: the
Metaspace prepend_scheme (first, never, the legacy add_prefix_space form),
split, the normalizer (NFKC, Strip on both sides, none), byte_fallback (with
the 256 <0xNN> pieces appended to the vocabulary, score -20), the
RobertaProcessing post-processor, and added tokens with rstrip or with an id
beyond the vocabulary. Each variant is {"name", "set": {top-level key: new
value}, "byte_pieces": bool}; tests/test_sentencepiece.c applies it the same
way (json set, then the byte pieces) and compares its ids with the ones the
real Hugging Face tokenizers library (npm @anush008/tokenizers, see
gen_sentencepiece_oracles.py) gives for TEXTS (and a few pairs).

Writes tests/fixtures/sentencepiece/variants.jsonl: line 1 a header, then
one line per variant: {"name", "set", "byte_pieces", "cases": [{"text",
"pair", "ids"}]}.

With --long (needs python3-sentencepiece too) it writes instead
long_<model>.jsonl.gz: three 60 KB texts made of corpus lines, which the
tokenizer normalises in chunks, with "spm_ids" (python3-sentencepiece),
"hf_ids" and "hf_legacy_ids" (the two tokenizer.json files).
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "tests", "fixtures", "sentencepiece")
BASE = os.path.join(FIX, "test_model.xlmr.tokenizer.json")
OUT = os.path.join(FIX, "variants.jsonl")

TEXTS = [
    "Hello world", " Hello world", "  Hello  world  ", "Hello world ", "\tHello\u3000world\t", "", " ", "   ",
    "hello <mask> world", "hello<mask>world", "hello   <mask>   world", "<mask>", " <mask> ", "<s>hello</s>",
    "a <unk> b", "\u2581hello \u2581 world", "\u2581", "caf\u00e9 cafe\u0301", "\uff28\uff45\uff4c\uff4c\uff4f \u2460\u2461",
    "\u82f9\u679c\u624b\u673a", "emoji \U0001F600 and \U0001F469\u200d\U0001F4BB", "x\u00a0y\u2003z", "don't stop",
    "1,000 000 0000", "aaaaaaaaaaaaaaaa", "mixed \u4e2d\u6587 text", "\u0410\u0411\u0412 \u05d0\u05d1", "tab\tand\nnewline",
    "[X] marks [X]the spot", "end.", "\u00ad\u200bsoft", "UPPER lower", "x [X]",
]
PAIRS = [("Hello world", "  second  text "), ("<mask> first", "second <mask>"), (" ", "x")]

NFKC = {"type": "NFKC"}


def variants(base):
    pre = base["pre_tokenizer"]
    norm = base["normalizer"]
    prec = norm["normalizers"][0]
    added = base["added_tokens"]
    vocab_n = len(base["model"]["vocab"])
    mask_r = copy.deepcopy(added)
    for a in mask_r:
        if a["content"] == "<mask>":
            a["rstrip"] = True
    extra = copy.deepcopy(added) + [{"id": vocab_n, "content": "[X]", "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": False}]
    yield "current", {}, False
    yield "prepend_first", {"pre_tokenizer": dict(pre, prepend_scheme="first")}, False
    yield "prepend_never", {"pre_tokenizer": dict(pre, prepend_scheme="never")}, False
    yield "no_split", {"pre_tokenizer": dict(pre, split=False)}, False
    yield "legacy_add_prefix_space", {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                                        "add_prefix_space": True}}, False
    yield "nfkc_strip", {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True}, NFKC]}}, False
    yield "precompiled_nfkc", {"normalizer": {"type": "Sequence", "normalizers": [prec, NFKC]}}, False
    yield "no_normalizer", {"normalizer": None}, False
    yield "byte_fallback", {}, True
    yield "roberta_processing", {"post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                                                    "trim_offsets": True, "add_prefix_space": True}}, False
    yield "mask_rstrip", {"added_tokens": mask_r}, False
    yield "added_beyond_vocab", {"added_tokens": extra}, False


def apply(base, set_, byte_pieces):
    t = copy.deepcopy(base)
    for k, v in set_.items():
        t[k] = v
    if byte_pieces:
        t["model"]["vocab"] += [["<0x%02X>" % b, -20.0] for b in range(256)]
        t["model"]["byte_fallback"] = True
    return t


JS = r"""
const fs = require("fs");
const tk = require("@anush008/tokenizers");
(async () => {
  const [tokPath, inPath] = process.argv.slice(2);
  const tok = tk.Tokenizer.fromFile(tokPath);
  const cases = JSON.parse(fs.readFileSync(inPath, "utf8"));
  const out = [];
  for (const [text, pair] of cases) {
    const e = pair === null ? await tok.encode(text) : await tok.encode(text, pair);
    out.push(e.getIds());
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def main():
    npm = os.environ.get("NPM_ORACLES", "/work/npm-oracles")
    base = json.load(open(BASE, encoding="utf-8"))
    cases = [(t, None) for t in TEXTS] + [list(p) for p in PAIRS]
    lines = [json.dumps({"magic": "sembed-spm-variants", "version": 1, "generator": "tools/gen_sentencepiece_variants.py",
                         "base": "test_model.xlmr.tokenizer.json", "oracle": "@anush008/tokenizers"})]
    with tempfile.TemporaryDirectory() as d:
        js = os.path.join(d, "oracle.js")
        open(js, "w").write(JS)
        inp = os.path.join(d, "cases.json")
        json.dump(cases, open(inp, "w", encoding="utf-8"), ensure_ascii=False)
        for name, set_, bp in variants(base):
            tp = os.path.join(d, "tokenizer.json")
            json.dump(apply(base, set_, bp), open(tp, "w", encoding="utf-8"), ensure_ascii=False)
            env = dict(os.environ, NODE_PATH=os.path.join(npm, "node_modules"))
            ids = json.loads(subprocess.run(["node", js, tp, inp], env=env, check=True, capture_output=True).stdout)
            rec = {"name": name, "set": set_, "byte_pieces": bp,
                   "cases": [{"text": c[0], "pair": c[1], "ids": i} for c, i in zip(cases, ids)]}
            lines.append(json.dumps(rec, ensure_ascii=False))
            print(name, "ok", file=sys.stderr)
    open(OUT, "w", encoding="utf-8").write("\n".join(lines) + "\n")


if __name__ == "__main__" and len(sys.argv) == 1:
    main()


# ---- long texts: the chunked normalisation against whole-text references --

def long_texts():
    """Three texts of 50-70 KB built from corpus lines (so the tokenizer
    normalises them in chunks): English and accents joined by spaces; every
    section in turn (emoji, controls, whitespace runs, compat forms);
    Chinese and Japanese."""
    import gzip
    lines = [json.loads(l) for l in gzip.open(os.path.join(FIX, "corpus.jsonl.gz"), "rt", encoding="utf-8")]
    pick = [list(range(0, 3000)) + list(range(6500, 7500)), list(range(7500, 11000, 3)) + list(range(0, 3000, 7)),
            list(range(3000, 6500))]
    out = []
    for idx in pick:
        t, n = [], 0
        for i in idx:
            t.append(lines[i])
            n += len(lines[i].encode())
            if n > 60000:
                break
        out.append(" ".join(t))
    return out


def main_long():
    import gzip
    import sentencepiece as spm
    npm = os.environ.get("NPM_ORACLES", "/work/npm-oracles")
    texts = long_texts()
    for model in ["test_model", "test_ja_model"]:
        sp = spm.SentencePieceProcessor(model_file=os.path.join(FIX, model + ".model"))
        recs = [{"text": t, "spm_ids": sp.encode(t)} for t in texts]
        with tempfile.TemporaryDirectory() as d:
            js = os.path.join(d, "oracle.js")
            open(js, "w").write(JS)
            inp = os.path.join(d, "cases.json")
            json.dump([[t, None] for t in texts], open(inp, "w", encoding="utf-8"), ensure_ascii=False)
            for key, f in [("hf_ids", "xlmr"), ("hf_legacy_ids", "xlmr-legacy")]:
                env = dict(os.environ, NODE_PATH=os.path.join(npm, "node_modules"))
                tp = os.path.join(FIX, "%s.%s.tokenizer.json" % (model, f))
                ids = json.loads(subprocess.run(["node", js, tp, inp], env=env, check=True, capture_output=True).stdout)
                for r, i in zip(recs, ids):
                    r[key] = i
        with gzip.open(os.path.join(FIX, "long_%s.jsonl.gz" % model), "wt", encoding="utf-8") as g:
            for r in recs:
                g.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(model, [len(r["spm_ids"]) for r in recs], file=sys.stderr)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--long":
    main_long()
