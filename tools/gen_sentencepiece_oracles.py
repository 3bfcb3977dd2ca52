#!/usr/bin/env python3
"""Expected outputs for the sentencepiece tokenizer from two real references.

    apt-get install -y python3-sentencepiece nodejs npm
    mkdir -p /work/npm-oracles && (cd /work/npm-oracles && npm install @anush008/tokenizers)
    /usr/bin/python3 tools/gen_sentencepiece_corpus.py
    NPM_ORACLES=/work/npm-oracles /usr/bin/python3 tools/gen_sentencepiece_oracles.py

For each .model in tests/fixtures/sentencepiece/ (test_model, test_ja_model):

1. model.json: what the protobuf holds, read by this file's own small protobuf
   decoder (piece count, special ids, normaliser spec, a sample of pieces
   with their scores and types) and cross-checked against
   python3-sentencepiece's own accessors (GetPieceSize, IdToPiece, GetScore,
   unk/bos/eos/pad ids, IsControl/IsUnknown/IsUnused/IsByte).
2. <model>.xlmr.tokenizer.json and <model>.xlmr-legacy.tokenizer.json: the
   tokenizer.json Hugging Face's XLMRobertaConverter
   (transformers/convert_slow_tokenizer.py) writes for that model:
     vocab  <s>=0 <pad>=1 </s>=2 <unk>=3, pieces[3:] (their ids +1), <mask> last; unk_id 3
     normalizer, current converter:  Sequence[Precompiled(charsmap),
                Strip(right), Replace(Regex " {2,}" -> "\u2581")]
     normalizer, legacy converter (the one that wrote the tokenizer.json files
                on the hub for xlm-roberta-base and the multilingual
                sentence-transformers models): Sequence[Precompiled(charsmap),
                Replace(Regex " {2,}" -> " ")]
     pre_tokenizer Metaspace(replacement "\u2581", prepend_scheme "always", split true)
     post_processor TemplateProcessing "<s> $A </s>" / "<s> $A </s> </s> $B </s>"
     added_tokens <s> <pad> </s> <unk> <mask> (special, not normalised; <mask> lstrip)
3. expected_<model>.jsonl.gz: one JSON object per corpus line:
     spm_ids    python3-sentencepiece encode(text) (the model's own ids, no offset)
     spm_norm   sentencepiece's normalised text: the concatenation of the
                encoded pieces (the sentencepiece 0.1.97 in Debian has no
                normalize(); Unigram pieces always tile the normalised text,
                and an unknown piece carries its normalised surface)
     hf_ids     @anush008/tokenizers (the Rust tokenizers 0.22 crate)
                encode(text) ids with special tokens, current converter
     hf_legacy_ids   the same with the legacy converter's tokenizer.json
     hf_norm    the current tokenizer.json's whole normalizer on the text
     hf_pre     the Precompiled normaliser alone (tokenizers' spm_precompiled)
     hf_pair_ids / hf_legacy_pair_ids  (first 500 lines) encode(line i, line i+1)
4. disagreements_<model>.jsonl: the lines where the references differ:
   line number, corpus section, `reasons` (`ids`: the current converter's
   hf_ids != <s> + spm_ids with the fairseq offset + </s>; `legacy_ids`: the
   same for the legacy converter; `current_vs_legacy`: the two HF files
   differ), a heuristic `kind` (see classify) and the text's first 200
   characters (the whole text is the corpus line).

Needs nothing at test time: the C tests read the committed outputs.
"""
import base64
import collections
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "tests", "fixtures", "sentencepiece")
MODELS = ["test_model", "test_ja_model"]
N_PAIRS = 500
SPACE = "\u2581"


# ---- a small protobuf decoder (wire format only) -------------------------

def read_varint(b, i):
    shift = 0
    v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def fields(b):
    """Yields (field_number, wire_type, value) of one message."""
    i = 0
    while i < len(b):
        key, i = read_varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 2:
            n, i = read_varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def int32(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def parse_model(data):
    m = {"pieces": [], "trainer": {"model_type": 1, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1,
                                   "byte_fallback": False, "vocab_size": 8000},
         "normalizer": {"name": "", "charsmap": b"", "add_dummy_prefix": True, "remove_extra_whitespaces": True,
                        "escape_whitespaces": True}}
    for f, wt, v in fields(data):
        if f == 1:
            p = {"piece": "", "score": 0.0, "type": 1}
            for f2, _, v2 in fields(v):
                if f2 == 1:
                    p["piece"] = v2.decode("utf-8")
                elif f2 == 2:
                    p["score"] = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    p["type"] = v2
            m["pieces"].append(p)
        elif f == 2:
            t = m["trainer"]
            names = {3: "model_type", 4: "vocab_size", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
            for f2, _, v2 in fields(v):
                if f2 in names:
                    t[names[f2]] = int32(v2)
                elif f2 == 35:
                    t["byte_fallback"] = bool(v2)
        elif f == 3:
            n = m["normalizer"]
            for f2, _, v2 in fields(v):
                if f2 == 1:
                    n["name"] = v2.decode("utf-8")
                elif f2 == 2:
                    n["charsmap"] = bytes(v2)
                elif f2 == 3:
                    n["add_dummy_prefix"] = bool(v2)
                elif f2 == 4:
                    n["remove_extra_whitespaces"] = bool(v2)
                elif f2 == 5:
                    n["escape_whitespaces"] = bool(v2)
    return m


# ---- tokenizer.json as XLMRobertaConverter writes it --------------------

def added(id_, content, lstrip=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer_json(m, legacy):
    vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
    vocab += [[p["piece"], p["score"]] for p in m["pieces"][3:]]
    vocab += [["<mask>", 0.0]]
    charsmap = base64.b64encode(m["normalizer"]["charsmap"]).decode("ascii")
    if legacy:
        norms = [{"type": "Precompiled", "precompiled_charsmap": charsmap},
                 {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    else:
        norms = [{"type": "Precompiled", "precompiled_charsmap": charsmap},
                 {"type": "Strip", "strip_left": False, "strip_right": True},
                 {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": SPACE}]
    st = lambda tok, tid: {"SpecialToken": {"id": tok, "type_id": tid}}
    sq = lambda s, tid: {"Sequence": {"id": s, "type_id": tid}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<s>"), added(1, "<pad>"), added(2, "</s>"), added(3, "<unk>"),
                         added(len(vocab) - 1, "<mask>", lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": norms},
        "pre_tokenizer": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [st("<s>", 0), sq("A", 0), st("</s>", 0)],
            "pair": [st("<s>", 0), sq("A", 0), st("</s>", 0), st("</s>", 0), sq("B", 0), st("</s>", 0)],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": False},
    }


def write_gz(path, lines):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as g:
        for line in lines:
            g.write((line + "\n").encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def classify(text, spm_norm, hf_norm):
    """Why the references disagree on a line (a heuristic label for people):
    `added_token` when the text holds a special token's text (tokenizer.json
    matches <s> </s> <unk> <pad> <mask> as added tokens; sentencepiece reads
    text), `segmentation` when both normalise to the same string (then the ids
    differ in the Unigram search: HF runs it per Metaspace word, ties),
    `literal_u2581` when the text holds the space symbol itself,
    `whitespace` when the text has leading/trailing whitespace or control
    characters that the two strip differently, else `charsmap` (the
    per-grapheme vs longest-match application of the charsmap)."""
    if any(t in text for t in ("<s>", "</s>", "<mask>", "<unk>", "<pad>")):
        return "added_token"
    hf = hf_norm.replace(" ", SPACE)
    if not hf.startswith(SPACE):
        hf = SPACE + hf
    if hf == spm_norm or hf_norm == "" and spm_norm == "":
        return "segmentation"
    if SPACE in text:
        return "literal_u2581"
    if text != text.strip() or any(unicodedata.category(c) in ("Cc", "Zs") and c != " " for c in text):
        return "whitespace"
    return "charsmap"


def section_of(i):
    bounds = [(3000, "en"), (5000, "zh"), (6500, "ja"), (7500, "accent"), (8300, "emoji"), (9100, "control"),
              (9900, "space"), (10200, "long"), (11000, "compat")]
    for end, name in bounds:
        if i < end:
            return name
    return "?"


def main():
    import sentencepiece as spm
    npm = os.environ.get("NPM_ORACLES", "/work/npm-oracles")
    with gzip.open(os.path.join(FIX, "corpus.jsonl.gz"), "rt", encoding="utf-8") as f:
        corpus_raw = f.read()
    corpus = [json.loads(l) for l in corpus_raw.split("\n") if l]
    tmp = tempfile.mkdtemp(prefix="spm-oracle-")
    corpus_path = os.path.join(tmp, "corpus.jsonl")
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.write(corpus_raw)
    summary = {}
    for name in MODELS:
        path = os.path.join(FIX, name + ".model")
        data = open(path, "rb").read()
        m = parse_model(data)
        sp = spm.SentencePieceProcessor(model_file=path)
        # cross-check the decoder against sentencepiece itself
        assert sp.get_piece_size() == len(m["pieces"])
        assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (
            m["trainer"]["unk_id"], m["trainer"]["bos_id"], m["trainer"]["eos_id"], m["trainer"]["pad_id"])
        types = collections.Counter()
        for i, p in enumerate(m["pieces"]):
            assert sp.id_to_piece(i) == p["piece"], i
            assert sp.get_score(i) == p["score"], i
            assert sp.is_unknown(i) == (p["type"] == 2) and sp.is_control(i) == (p["type"] == 3)
            assert sp.is_unused(i) == (p["type"] == 5) and sp.is_byte(i) == (p["type"] == 6)
            types[p["type"]] += 1
        sample = sorted(set([0, 1, 2, 3, 4, 5, 10, 100, len(m["pieces"]) // 2, len(m["pieces"]) - 1]))
        info = {
            "file": name + ".model", "n_pieces": len(m["pieces"]),
            "trainer": m["trainer"],
            "normalizer": {k: v for k, v in m["normalizer"].items() if k != "charsmap"},
            "charsmap_len": len(m["normalizer"]["charsmap"]),
            "type_counts": {str(k): v for k, v in sorted(types.items())},
            "sample": [{"id": i, "piece": m["pieces"][i]["piece"], "score": m["pieces"][i]["score"],
                        "type": m["pieces"][i]["type"]} for i in sample],
        }
        with open(os.path.join(FIX, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(info, f, ensure_ascii=False, indent=1)
            f.write("\n")
        charsmap_path = os.path.join(tmp, name + ".charsmap")
        with open(charsmap_path, "wb") as f:
            f.write(m["normalizer"]["charsmap"])
        hf = {}
        for flavour, legacy in (("xlmr", False), ("xlmr-legacy", True)):
            tj = os.path.join(FIX, f"{name}.{flavour}.tokenizer.json")
            with open(tj, "w", encoding="utf-8") as f:
                json.dump(tokenizer_json(m, legacy), f, ensure_ascii=False)
                f.write("\n")
            outp = os.path.join(tmp, f"{name}.{flavour}.out")
            env = dict(os.environ, NODE_PATH=os.path.join(npm, "node_modules"))
            subprocess.run(["node", os.path.join(HERE, "sentencepiece_hf_oracle.js"), tj, charsmap_path,
                            corpus_path, outp, str(N_PAIRS)], check=True, env=env)
            with open(outp, encoding="utf-8") as f:
                hf[flavour] = [json.loads(l) for l in f if l.strip()]
            assert len(hf[flavour]) == len(corpus)
        recs, dis = [], []
        n_ids = n_pre = 0
        for i, text in enumerate(corpus):
            ids = sp.encode(text)
            pieces = sp.encode(text, out_type=str)
            cur, leg = hf["xlmr"][i], hf["xlmr-legacy"][i]
            r = {"spm_ids": ids, "spm_norm": "".join(pieces), "hf_ids": cur["ids"], "hf_legacy_ids": leg["ids"],
                 "hf_norm": cur["norm"], "hf_pre": cur["pre"]}
            if "pair_ids" in cur:
                r["hf_pair_ids"] = cur["pair_ids"]
                r["hf_legacy_pair_ids"] = leg["pair_ids"]
            recs.append(json.dumps(r, ensure_ascii=False))
            want = [0] + [t + 1 if t else 3 for t in ids] + [2]  # XLMRobertaTokenizer: spm unk (0) -> 3
            reasons = []
            if cur["ids"] != want:
                reasons.append("ids")
                n_ids += 1
            if leg["ids"] != want:
                reasons.append("legacy_ids")
            if cur["ids"] != leg["ids"]:
                reasons.append("current_vs_legacy")
            if reasons:
                dis.append(json.dumps({"line": i, "section": section_of(i), "kind": classify(text, r["spm_norm"], cur["norm"]),
                                       "reasons": reasons, "text": text[:200]}, ensure_ascii=False))
        write_gz(os.path.join(FIX, f"expected_{name}.jsonl.gz"), recs)
        with open(os.path.join(FIX, f"disagreements_{name}.jsonl"), "w", encoding="utf-8") as f:
            for d in dis:
                f.write(d + "\n")
        by = collections.Counter()
        for d in dis:
            dd = json.loads(d)
            for reason in dd["reasons"]:
                by[(reason, dd["kind"])] += 1
        summary[name] = {"lines": len(corpus), "disagreeing lines": len(dis),
                         "by reason/kind": {f"{a}/{b}": c for (a, b), c in sorted(by.items())}}
        print(name, json.dumps(summary[name], indent=1))


if __name__ == "__main__":
    main()
