"""sembed.util against tests/fixtures/util/util-reference.json (the
expected outputs of sentence_transformers.util), and its shapes."""
import json
import os

import numpy as np
import pytest

from sembed import util
from conftest import ROOT

with open(os.path.join(ROOT, "tests", "fixtures", "util", "util-reference.json")) as f:
    REF = json.load(f)
EMB = np.asarray(REF["embeddings"], dtype=np.float32)
QRY = np.asarray(REF["queries"], dtype=np.float32)
FNS = {"cosine": util.cos_sim, "dot": util.dot_score, "euclidean": util.euclidean_sim, "manhattan": util.manhattan_sim}


@pytest.mark.parametrize("name", sorted(FNS))
def test_util_similarity_matrices(name):
    got = FNS[name](QRY, EMB)
    want = np.asarray(REF["similarity"][name])
    assert got.shape == want.shape == (7, 90) and got.dtype == np.float32
    assert np.allclose(got, want, rtol=2e-5, atol=2e-5)


def test_util_semantic_search():
    for case in REF["semantic_search"]:
        fn = util.cos_sim if case["score_function"] == "cosine" else util.dot_score
        got = util.semantic_search(QRY, EMB, query_chunk_size=case["query_chunk_size"],
                                   corpus_chunk_size=case["corpus_chunk_size"], top_k=case["top_k"], score_function=fn)
        assert len(got) == len(case["result"])
        for g, w in zip(got, case["result"]):
            assert [h["corpus_id"] for h in g] == [h["corpus_id"] for h in w]
            assert np.allclose([h["score"] for h in g], [h["score"] for h in w], rtol=2e-5, atol=2e-5)
            assert all(type(h["corpus_id"]) is int and type(h["score"]) is float for h in g)


def test_util_semantic_search_other_score_function():
    # any callable is scored in blocks, as sentence-transformers does
    want = util.semantic_search(QRY, EMB, top_k=5)
    got = util.semantic_search(QRY, EMB, top_k=5, score_function=lambda a, b: util.cos_sim(a, b) * 2, query_chunk_size=3)
    assert [[h["corpus_id"] for h in r] for r in got] == [[h["corpus_id"] for h in r] for r in want]
    assert np.allclose([h["score"] for r in got for h in r], [2 * h["score"] for r in want for h in r])


def test_util_paraphrase_mining():
    for case in REF["paraphrase_mining"]:
        got = util.paraphrase_mining_embeddings(EMB, query_chunk_size=case["query_chunk_size"],
                                                corpus_chunk_size=case["corpus_chunk_size"],
                                                max_pairs=case["max_pairs"], top_k=case["top_k"])
        want = case["result"]
        assert [(i, j) for _, i, j in got] == [(i, j) for _, i, j in want]
        assert np.allclose([s for s, _, _ in got], [s for s, _, _ in want], rtol=2e-5, atol=2e-5)


def test_util_community_detection():
    for case in REF["community_detection"]:
        got = util.community_detection(EMB, threshold=case["threshold"],
                                       min_community_size=case["min_community_size"], batch_size=case["batch_size"])
        assert got == case["result"]


def test_util_quantize():
    qz = REF["quantize"]
    cal = np.asarray(qz["calibration"], dtype=np.float32)
    ranges = np.asarray(qz["ranges"], dtype=np.float32)
    for prec, dt in (("int8", np.int8), ("uint8", np.uint8)):
        got = util.quantize_embeddings(EMB, prec, ranges=ranges)
        assert got.dtype == dt and np.array_equal(got, np.asarray(qz[prec]))
        assert np.array_equal(util.quantize_embeddings(EMB, prec, calibration_embeddings=cal), got)
    assert np.array_equal(util.quantize_embeddings(EMB, "int8"), np.asarray(qz["int8_self"]))
    b = util.quantize_embeddings(EMB, "binary")
    assert b.dtype == np.int8 and b.shape == (90, 3) and np.array_equal(b, np.asarray(qz["binary"]))
    ub = util.quantize_embeddings(EMB, "ubinary")
    assert ub.dtype == np.uint8 and np.array_equal(ub, np.asarray(qz["ubinary"]))
    assert util.quantize_embeddings(EMB, "float32") is EMB
    with pytest.raises(ValueError, match="ranges must have shape"):
        util.quantize_embeddings(EMB, "int8", ranges=ranges[:, :5])
    with pytest.raises(ValueError, match="not supported"):
        util.quantize_embeddings(EMB, "int4")


def test_util_shapes_and_types():
    v = EMB[0]
    assert util.cos_sim(v, v).shape == (1, 1)
    assert util.cos_sim(v, EMB).shape == (1, 90)
    assert util.pairwise_cos_sim(EMB[:5], EMB[:5]).shape == (5,)
    assert np.allclose(util.pairwise_cos_sim(EMB[:5], EMB[:5]), 1, atol=1e-6)
    assert np.allclose(util.pairwise_dot_score(QRY, EMB[:7]), np.diag(util.dot_score(QRY, EMB[:7])), atol=1e-5)
    assert np.allclose(util.pairwise_euclidean_sim(QRY, EMB[:7]), np.diag(util.euclidean_sim(QRY, EMB[:7])), atol=1e-5)
    assert np.allclose(util.pairwise_manhattan_sim(QRY, EMB[:7]), np.diag(util.manhattan_sim(QRY, EMB[:7])), atol=1e-4)
    assert np.allclose(np.linalg.norm(util.normalize_embeddings(EMB), axis=1), 1, atol=1e-6)
    assert util.cos_sim(np.zeros((0, 24), np.float32), EMB).shape == (0, 90)
    with pytest.raises(ValueError, match="different dimensions"):
        util.cos_sim(EMB, EMB[:, :5])
    with pytest.raises(ValueError, match="top_k"):
        util.semantic_search(QRY, EMB, top_k=0)
    assert util.semantic_search(QRY, EMB[:3], top_k=10)[0].__len__() == 3


def test_util_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    t = util.cos_sim(torch.from_numpy(QRY), torch.from_numpy(EMB))
    assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), util.cos_sim(QRY, EMB))
    assert util.community_detection(torch.from_numpy(EMB), 0.75, 3) == REF["community_detection"][0]["result"] \
        or REF["community_detection"][0]["threshold"] != 0.75
