"""sembed.CrossEncoder against the ce-* fixtures' PyTorch references and
`sembed rerank`; sembed.Index against `sembed search` on the same file."""
import json
import os
import shutil

import numpy as np
import pytest

import sembed
from sembed import CrossEncoder, Index
from conftest import FIX, USE, cli, corpus_lines


def header(model):
    with open(os.path.join(FIX, model, "expected.jsonl")) as f:
        return json.loads(f.readline())


def test_cross_encoder_rank_as_reference_and_cli(tmp_path):
    path = os.path.join(FIX, "ce-bert-1")
    ce = CrossEncoder(path)
    r = header("ce-bert-1")["rank"]
    got = ce.rank(r["query"], r["documents"], return_documents=True)
    assert [g["corpus_id"] for g in got] == r["order"]
    assert np.allclose([g["score"] for g in got], r["scores"], atol=1e-6)
    assert [g["text"] for g in got] == [r["documents"][i] for i in r["order"]]
    raw = ce.rank(r["query"], r["documents"], activation_fn="identity", top_k=2)
    assert len(raw) == 2 and np.allclose([g["score"] for g in raw], r["raw_scores"][:2], atol=1e-5)
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(d + "\n" for d in r["documents"]))
    rc, out, err = cli("rerank", "-m", path, r["query"], "-i", str(docs), "--json", "-q")
    assert rc == 0, err
    want = [json.loads(l) for l in out.decode().splitlines()]
    assert [np.float32(w["score"]) for w in want] == [np.float32(g["score"]) for g in got]


def test_cross_encoder_predict():
    path = os.path.join(FIX, "ce-bert-1")
    ce = CrossEncoder(path)
    r = header("ce-bert-1")["rank"]
    pairs = [[r["query"], d] for d in r["documents"]]
    s = ce.predict(pairs, batch_size=4)
    assert s.shape == (6,) and s.dtype == np.float32
    assert np.allclose(np.sort(s)[::-1], r["scores"], atol=1e-6)
    one = ce.predict(pairs[2])
    assert np.ndim(one) == 0 and one == s[2]
    torch = pytest.importorskip("torch")
    assert np.allclose(ce.predict(pairs, activation_fn=torch.nn.Identity()), ce.predict(pairs, activation_fn="identity"))
    with pytest.raises(TypeError, match=r"sentences\[0\] must be a pair"):
        ce.predict([["a", "b", "c"]])
    with pytest.raises(ValueError, match="not a cross-encoder"):
        CrossEncoder(USE)


def test_index_build_search_filter_delete_as_cli(tmp_path, use_model):
    path = str(tmp_path / "c.idx")
    texts = corpus_lines()
    meta = [{"lang": "en" if i % 2 == 0 else "fr", "n": i} for i in range(len(texts))]
    with Index.build(path, use_model, texts, metadata=meta, kind="flat") as idx:
        assert len(idx) == len(texts) and idx.info()["dim"] == 512
        res = idx.search("Will it rain this weekend?", k=3)
        assert len(res) == 3 and res[0]["score"] >= res[1]["score"] >= res[2]["score"]
        assert res[0]["text"] == texts[int(res[0]["id"])]
        fr = idx.search("Will it rain this weekend?", k=3, filter={"lang": "fr"})
        assert fr and all(h["metadata"]["lang"] == "fr" for h in fr)
        assert idx.search("x", k=2, filter={"n": 4})[0]["id"] == "4"
        assert idx.delete([res[0]["id"], "no-such-id"]) == 1
        assert res[0]["id"] not in [h["id"] for h in idx.search("Will it rain this weekend?", k=3)]
        idx.add([{"id": "new", "text": "Heavy rain is expected on Saturday and Sunday.", "lang": "en"}])
    # the CLI reads the same file and gives the same answer
    rc, out, err = cli("search", path, "-k", "3", "--json", "-q", "Will it rain this weekend?")
    assert rc == 0, err
    want = json.loads(out.decode().splitlines()[0])["results"]
    with Index.open(path, read_only=True) as idx:
        got = idx.search("Will it rain this weekend?", k=3)
        assert [g["id"] for g in got] == [w["id"] for w in want]
        assert [np.float32(g["score"]) for g in got] == [np.float32(w["score"]) for w in want]
        assert got[0]["id"] == "new"


def test_index_refuses_another_model(tmp_path, use_model):
    path = str(tmp_path / "e.idx")
    Index.build(path, os.path.join(FIX, "en-mean-norm"), ["a", "b"]).close()
    with pytest.raises(ValueError, match="512-dimensional vectors, the index holds 32"):
        Index.open(path, model=use_model)
    # a model of the same shape with other weights (a fine-tuned copy): the library's fingerprint check names it
    other = tmp_path / "other"
    shutil.copytree(os.path.join(FIX, "en-mean-norm"), other)
    w = bytearray((other / "model.safetensors").read_bytes())
    w[-4:] = b"\x00\x00\x80\x3f"
    (other / "model.safetensors").write_bytes(bytes(w))
    with pytest.raises(sembed.SembedError, match="weights"):
        Index.open(path, model=str(other))
    with pytest.raises(FileExistsError):
        Index.build(path, use_model)
    with pytest.raises(sembed.SembedError):
        Index.open(str(tmp_path / "missing.idx"))
