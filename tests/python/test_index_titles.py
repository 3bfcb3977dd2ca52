"""sembed.Index.add with titles (a dict's "title", or titles=): stored apart from the text and
the metadata, keyword-searched as its own field, returned with the hits, embedded as
title + " " + text; the same file and hits as `sembed index build` of the same JSONL."""
import json

import numpy as np

from sembed import Index
from conftest import cli, USE

DOCS = [{"id": "t1", "title": "Zebrafish fin regeneration", "text": "The fins grow back within weeks.", "lang": "en"},
        {"id": "t2", "text": "Router restarts fix most wifi drops."},
        {"id": "t3", "title": None, "text": "Pasta cooks in ten minutes."}]


def test_index_titles_as_cli(tmp_path, use_model):
    path = str(tmp_path / "py.idx")
    with Index.build(path, use_model, DOCS[:2], kind="flat") as idx:
        idx.add([DOCS[2]["text"]], ids=["t3"], titles=[None])
        hits = idx.search("zebrafish", mode="keyword", k=3)
        assert [(h["id"], h.get("title"), h["text"], h["metadata"]) for h in hits] == [
            ("t1", "Zebrafish fin regeneration", "The fins grow back within weeks.", {"lang": "en"})]
        vec = idx.search("Zebrafish fin regeneration The fins grow back within weeks.", k=3)
        assert vec[0]["id"] == "t1" and abs(vec[0]["score"] - 1.0) < 1e-4 and "title" not in vec[1]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    cpath = str(tmp_path / "cli.idx")
    rc, _, err = cli("index", "build", "-m", USE, "-i", str(src), "-o", cpath, "--flat", "-q")
    assert rc == 0, err
    for q, flags in (("zebrafish fins", ["--keyword"]), ("fish that regrow fins", [])):
        rc, out, err = cli("search", cpath, "-k", "3", "--json", "-q", *flags, q)
        assert rc == 0, err
        want = json.loads(out.decode().splitlines()[0])["results"]
        with Index.open(path, read_only=True) as idx:
            got = idx.search(q, mode="keyword" if flags else "vector", k=3)
        assert [(g["id"], g.get("title")) for g in got] == [(w["id"], w.get("title")) for w in want]
        assert [np.float32(g["score"]) for g in got] == [np.float32(w["score"]) for w in want]


def test_index_titles_bad(tmp_path, use_model):
    import pytest
    with Index.build(str(tmp_path / "b.idx"), use_model, kind="flat") as idx:
        with pytest.raises(TypeError, match="title"):
            idx.add([{"text": "x", "title": 5}])
        with pytest.raises(ValueError, match="titles"):
            idx.add(["x", "y"], titles=["a"])
