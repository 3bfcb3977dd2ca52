"""sembed.Index.search(mode=, alpha=, fusion=) against `sembed search --keyword / --hybrid`
on the same file: the same ids, float32 scores and component scores."""
import json

import numpy as np
import pytest

from sembed import Index
from conftest import cli, corpus_lines

QUERIES = ["Will it rain this weekend?", "\" AND NEAR( * )", "weather forecast"]


def cli_json(path, query, *flags):
    rc, out, err = cli("search", path, "-k", "5", "--json", "-q", *flags, query)
    assert rc == 0, err
    return json.loads(out.decode().splitlines()[0])["results"]


def same(got, want, components):
    assert [g["id"] for g in got] == [w["id"] for w in want]
    assert [np.float32(g["score"]) for g in got] == [np.float32(w["score"]) for w in want]
    if components:
        for g, w in zip(got, want):
            for f in ("vector_score", "keyword_score"):
                assert (g[f] is None) == (w[f] is None)
                assert g[f] is None or np.float32(g[f]) == np.float32(w[f])
    else:
        assert all("vector_score" not in g for g in got)


def test_index_search_modes_as_cli(tmp_path, use_model):
    path = str(tmp_path / "h.idx")
    texts = corpus_lines()
    Index.build(path, use_model, texts, kind="flat").close()
    cases = [(dict(mode="keyword"), ["--keyword"]), (dict(mode="hybrid"), ["--hybrid"]),
             (dict(mode="hybrid", fusion="rrf"), ["--hybrid", "--fusion", "rrf"]),
             (dict(mode="hybrid", fusion="score", alpha=0.6), ["--hybrid", "--fusion", "score", "--alpha", "0.6"]),
             (dict(), [])]
    with Index.open(path, read_only=True) as idx:
        for kw, flags in cases:
            for q in QUERIES:
                same(idx.search(q, k=5, **kw), cli_json(path, q, *flags), bool(flags))
        hits = idx.search("rain", k=3, mode="keyword")
        assert hits and all(h["keyword_score"] > 0 and h["vector_score"] is None for h in hits)
        assert idx.search("?!", k=3, mode="keyword") == []
        with pytest.raises(ValueError, match="mode must be"):
            idx.search("x", mode="bm25")
        with pytest.raises(ValueError, match="for mode=\"hybrid\""):
            idx.search("x", alpha=0.5)
        with pytest.raises(ValueError, match="alpha must be"):
            idx.search("x", mode="hybrid", alpha=2)
        with pytest.raises(ValueError, match="not rrf"):
            idx.search("x", mode="hybrid", fusion="rrf", alpha=0.5)
