#!/usr/bin/python3
"""The sentencepiece oracle for token offsets and decode of `.model` folders:
writes tests/fixtures/tokenizers/offsets_spm.jsonl.gz.

    /usr/bin/python3 tools/tok_offsets_spm_ref.py

Needs Debian's python3-sentencepiece; run from the project root;
deterministic. A folder holding only sentencepiece.bpe.model is read the
XLMRobertaTokenizer way (fairseq ids: <s>=0 <pad>=1 </s>=2 <unk>=3, piece
i -> i + 1; <s> A </s> and <s> A </s></s> B </s>), so each record gives:

  {"model": M (a .model under tests/fixtures/sentencepiece), "text": S,
   "pair": S|null, "ids": fairseq ids with the specials,
   "offsets": [[start, end], ...] in BYTES (encode's immutable_proto gives
   begin/end in code points in Python; converted here), specials [0, 0],
   "seq": 0, 1, or -1 for a special token,
   "dec_skip": sentencepiece's decode of the content ids}
"""
import gzip
import json

import sentencepiece as spm

MODELS = ["test_model", "test_ja_model"]
OUT = "tests/fixtures/tokenizers/offsets_spm.jsonl.gz"


def byte_at(text):
    """Code point index -> byte offset of text."""
    at = [0]
    for c in text:
        at.append(at[-1] + len(c.encode("utf-8")))
    return at


def encode(sp, text):
    """Fairseq ids and byte offsets of text's pieces (no specials)."""
    at = byte_at(text)
    p = sp.encode(text, out_type="immutable_proto")
    ids = [3 if x.id == 0 else x.id + 1 for x in p.pieces]
    offs = [[at[x.begin], at[x.end]] for x in p.pieces]
    return ids, offs, [x.id for x in p.pieces]


def main():
    with gzip.open("tests/fixtures/sentencepiece/corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f if line.strip()]
    with open("tests/fixtures/models/sentences.jsonl", encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f if line.strip()]
    extra = ["  leading and trailing  ", "a  b   c\td\n\ne", "e\u0301te\u0301 \u3000 z", "\ufb01ne \u2460\u0301 x", "", " ",
             "<s> <mask> </s> literal", "\uff26\uff55\uff4c\uff4c \uff7a\uff9e"]
    texts = sentences + extra + [t for i, t in enumerate(corpus) if i % 20 == 0]
    out = []
    for m in MODELS:
        sp = spm.SentencePieceProcessor(model_file=f"tests/fixtures/sentencepiece/{m}.model")
        for text in texts:
            ids, offs, sids = encode(sp, text)
            out.append({"model": m, "text": text, "pair": None, "ids": [0] + ids + [2],
                        "offsets": [[0, 0]] + offs + [[0, 0]], "seq": [-1] + [0] * len(ids) + [-1],
                        "dec_skip": sp.decode(sids)})
        for i in range(0, len(sentences) - 1, 2):
            a, b = sentences[i], sentences[i + 1]
            ia, oa, sa = encode(sp, a)
            ib, ob, sb = encode(sp, b)
            out.append({"model": m, "text": a, "pair": b, "ids": [0] + ia + [2, 2] + ib + [2],
                        "offsets": [[0, 0]] + oa + [[0, 0], [0, 0]] + ob + [[0, 0]],
                        "seq": [-1] + [0] * len(ia) + [-1, -1] + [1] * len(ib) + [-1],
                        "dec_skip": sp.decode(sa + sb)})
    with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out).encode("utf-8"))
    print(f"{OUT}: {len(out)} records")


if __name__ == "__main__":
    main()
