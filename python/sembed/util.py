"""sembed.util: sentence_transformers.util's embedding helpers on
libsembed, with the same signatures and return shapes. numpy in and out;
torch tensors are accepted too, and a function given a tensor returns one
(as sentence-transformers always does)."""

import ctypes

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["cos_sim", "dot_score", "euclidean_sim", "manhattan_sim", "pairwise_cos_sim", "pairwise_dot_score",
           "pairwise_euclidean_sim", "pairwise_manhattan_sim", "normalize_embeddings", "semantic_search",
           "paraphrase_mining", "paraphrase_mining_embeddings", "community_detection", "quantize_embeddings"]

_COSINE, _DOT, _EUCLIDEAN, _MANHATTAN = 0, 1, 2, 3


def _is_torch(x):
    """Whether x is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


def _matrix(x, name):
    """x as a C-contiguous float32 (n, dim) array: a 1-D vector becomes one
    row, as sentence-transformers' _convert_to_batch_tensor does."""
    if _is_torch(x):
        x = x.detach().cpu().float().numpy()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError("%s must be a vector or a 2-D matrix, not %d-D" % (name, a.ndim))
    return a


def _back(out, like):
    """out as a torch tensor when any of like is one, else as is."""
    if any(_is_torch(x) for x in like):
        import torch
        return torch.from_numpy(np.ascontiguousarray(out))
    return out


def _sim(fn, a, b):
    """The (na, nb) matrix of library similarity fn."""
    A, B = _matrix(a, "a"), _matrix(b, "b")
    if A.shape[1] != B.shape[1]:
        raise ValueError("a and b have different dimensions: %d and %d" % (A.shape[1], B.shape[1]))
    out = np.empty((A.shape[0], B.shape[0]), dtype=np.float32)
    err = _lib.se_error()
    if A.shape[0] and B.shape[0]:
        _lib.check(lib.se_similarity_matrix(fn, _lib.float_ptr(A), A.shape[0], _lib.float_ptr(B), B.shape[0],
                                            A.shape[1], _lib.float_ptr(out), ctypes.byref(err)), err)
    return _back(out, (a, b))


def cos_sim(a, b):
    """cos_sim(a[i], b[j]) for all i and j: an (na, nb) matrix."""
    return _sim(_COSINE, a, b)


def dot_score(a, b):
    """dot(a[i], b[j]) for all i and j: an (na, nb) matrix."""
    return _sim(_DOT, a, b)


def euclidean_sim(a, b):
    """Minus the Euclidean distance of a[i] and b[j]: an (na, nb) matrix."""
    return _sim(_EUCLIDEAN, a, b)


def manhattan_sim(a, b):
    """Minus the Manhattan distance of a[i] and b[j]: an (na, nb) matrix."""
    return _sim(_MANHATTAN, a, b)


def _pair(a, b):
    """a and b as float32 matrices of the same shape."""
    A, B = _matrix(a, "a"), _matrix(b, "b")
    if A.shape != B.shape:
        raise ValueError("a and b must have the same shape, not %s and %s" % (A.shape, B.shape))
    return A, B


def normalize_embeddings(embeddings):
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    A = _matrix(embeddings, "embeddings")
    n = np.linalg.norm(A, axis=1, keepdims=True)
    return _back(A / np.maximum(n, 1e-12), (embeddings,))


def pairwise_cos_sim(a, b):
    """cos_sim(a[i], b[i]) for each i: an (n,) vector."""
    A, B = _pair(a, b)
    na, nb = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    return _back((A * B).sum(axis=1) / np.maximum(na, 1e-12) / np.maximum(nb, 1e-12), (a, b))


def pairwise_dot_score(a, b):
    """dot(a[i], b[i]) for each i: an (n,) vector."""
    A, B = _pair(a, b)
    return _back((A * B).sum(axis=1), (a, b))


def pairwise_euclidean_sim(a, b):
    """Minus the Euclidean distance of a[i] and b[i]: an (n,) vector."""
    A, B = _pair(a, b)
    return _back(-np.sqrt(((A - B) ** 2).sum(axis=1)), (a, b))


def pairwise_manhattan_sim(a, b):
    """Minus the Manhattan distance of a[i] and b[i]: an (n,) vector."""
    A, B = _pair(a, b)
    return _back(-np.abs(A - B).sum(axis=1), (a, b))


def _fn_code(score_function, what):
    """The library's similarity code for cos_sim / dot_score (ours or
    sentence-transformers'), or None for another callable."""
    name = getattr(score_function, "__name__", None)
    if name == "cos_sim":
        return _COSINE
    if name == "dot_score":
        return _DOT
    if not callable(score_function):
        raise TypeError("%s: score_function must be callable" % what)
    return None


def _positive(v, name):
    """v, checked to be an int >= 1."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError("%s must be a positive int, not %r" % (name, v))
    return int(v)


def semantic_search(query_embeddings, corpus_embeddings, query_chunk_size=100, corpus_chunk_size=500000, top_k=10,
                    score_function=cos_sim):
    """For each query, the top_k corpus rows: a list (one per query) of
    lists of {"corpus_id": int, "score": float}, best first (ties: lower id).
    cos_sim and dot_score run in the library; another score_function is
    called on (queries, corpus) blocks as sentence-transformers does."""
    top_k = _positive(top_k, "top_k")
    _positive(query_chunk_size, "query_chunk_size")
    _positive(corpus_chunk_size, "corpus_chunk_size")
    Q, C = _matrix(query_embeddings, "query_embeddings"), _matrix(corpus_embeddings, "corpus_embeddings")
    if Q.shape[1] != C.shape[1]:
        raise ValueError("query and corpus embeddings have different dimensions: %d and %d" % (Q.shape[1], C.shape[1]))
    nq, nc = Q.shape[0], C.shape[0]
    kk = min(top_k, nc)
    fn = _fn_code(score_function, "semantic_search")
    if fn is not None:
        hits = (_lib.se_hit * max(nq * kk, 1))()
        err = _lib.se_error()
        _lib.check(lib.se_semantic_search(fn, _lib.float_ptr(Q), nq, _lib.float_ptr(C), nc, Q.shape[1], top_k, hits,
                                          ctypes.byref(err)), err)
        return [[{"corpus_id": int(hits[q * kk + t].corpus_id), "score": float(hits[q * kk + t].score)}
                 for t in range(kk)] for q in range(nq)]
    out = []
    for q in range(0, nq, query_chunk_size):
        s = np.asarray(_matrix(score_function(Q[q:q + query_chunk_size], C), "scores"))
        for r in s:
            order = np.argsort(-r, kind="stable")[:kk]
            out.append([{"corpus_id": int(i), "score": float(r[i])} for i in order])
    return out


def paraphrase_mining_embeddings(embeddings, query_chunk_size=5000, corpus_chunk_size=100000, max_pairs=500000,
                                 top_k=100, score_function=cos_sim):
    """Pairs of similar rows: [[score, i, j], ...] with i < j, best first,
    as sentence-transformers' paraphrase_mining_embeddings (top_k per row
    within each corpus_chunk_size slice; at most max_pairs - 1 pairs)."""
    top_k = _positive(top_k, "top_k")
    max_pairs = _positive(max_pairs, "max_pairs")
    corpus_chunk_size = _positive(corpus_chunk_size, "corpus_chunk_size")
    _positive(query_chunk_size, "query_chunk_size")
    fn = _fn_code(score_function, "paraphrase_mining")
    if fn is None:
        raise ValueError("paraphrase_mining: score_function must be cos_sim or dot_score here")
    E = _matrix(embeddings, "embeddings")
    pairs = ctypes.POINTER(_lib.se_pair)()
    n = ctypes.c_size_t()
    err = _lib.se_error()
    _lib.check(lib.se_paraphrase_mining(fn, _lib.float_ptr(E), E.shape[0], E.shape[1], top_k, max_pairs,
                                        corpus_chunk_size, ctypes.byref(pairs), ctypes.byref(n), ctypes.byref(err)), err)
    try:
        return [[float(pairs[t].score), int(pairs[t].i), int(pairs[t].j)] for t in range(n.value)]
    finally:
        lib.se_free(pairs)


def paraphrase_mining(model, sentences, show_progress_bar=False, batch_size=32, query_chunk_size=5000,
                      corpus_chunk_size=100000, max_pairs=500000, top_k=100, score_function=cos_sim):
    """paraphrase_mining_embeddings over model.encode(sentences)."""
    emb = model.encode(list(sentences), show_progress_bar=show_progress_bar, batch_size=batch_size)
    return paraphrase_mining_embeddings(emb, query_chunk_size, corpus_chunk_size, max_pairs, top_k, score_function)


def community_detection(embeddings, threshold=0.75, min_community_size=10, batch_size=1024, show_progress_bar=False):
    """Groups of rows at cosine >= threshold, each at least
    min_community_size rows: a list of lists of row ids, largest first, as
    sentence-transformers' community_detection."""
    min_community_size = _positive(min_community_size, "min_community_size")
    _positive(batch_size, "batch_size")
    E = _matrix(embeddings, "embeddings")
    members = ctypes.POINTER(ctypes.c_int32)()
    starts = ctypes.POINTER(ctypes.c_size_t)()
    nc = ctypes.c_size_t()
    err = _lib.se_error()
    _lib.check(lib.se_community_detection(_lib.float_ptr(E), E.shape[0], E.shape[1], float(threshold),
                                          min_community_size, ctypes.byref(members), ctypes.byref(starts),
                                          ctypes.byref(nc), ctypes.byref(err)), err)
    try:
        return [[int(members[t]) for t in range(starts[k], starts[k + 1])] for k in range(nc.value)]
    finally:
        lib.se_free(members)
        lib.se_free(starts)


_QUANT = {"int8": (0, np.int8), "uint8": (1, np.uint8), "binary": (2, np.int8), "ubinary": (3, np.uint8)}


def quantize_embeddings(embeddings, precision, ranges=None, calibration_embeddings=None):
    """sentence-transformers' quantize_embeddings: float32 (unchanged),
    float16, int8 / uint8 (per-dimension ranges (2, dim) from ranges, else
    from calibration_embeddings, else from embeddings themselves), binary
    (int8) / ubinary (uint8), one bit per dimension packed into dim / 8
    bytes. Returns a numpy array."""
    if _is_torch(embeddings):
        embeddings = embeddings.detach().cpu().numpy()
    if precision == "float32":
        return embeddings
    if precision == "float16":
        return np.asarray(embeddings).astype(np.float16)
    if precision not in _QUANT:
        raise ValueError("Precision %r is not supported" % (precision,))
    E = _matrix(embeddings, "embeddings")
    n, dim = E.shape
    err = _lib.se_error()
    rp = None
    if precision in ("int8", "uint8"):
        if ranges is None and calibration_embeddings is not None:
            C = _matrix(calibration_embeddings, "calibration_embeddings")
            if C.shape[1] != dim:
                raise ValueError("calibration_embeddings have dimension %d, the embeddings %d" % (C.shape[1], dim))
            R = np.empty((2, dim), dtype=np.float32)
            _lib.check(lib.se_quant_ranges(_lib.float_ptr(C), C.shape[0], dim, _lib.float_ptr(R), ctypes.byref(err)),
                       err)
            rp = R
        elif ranges is not None:
            R = np.ascontiguousarray(np.asarray(ranges, dtype=np.float32))
            if R.shape != (2, dim):
                raise ValueError("ranges must have shape (2, %d), not %s" % (dim, R.shape))
            rp = R
    q, dt = _QUANT[precision]
    rb = lib.se_quant_row_bytes(q, dim)
    out = np.empty((n, rb), dtype=dt)
    if n:
        _lib.check(lib.se_quantize_embeddings(q, _lib.float_ptr(E), n, dim, _lib.float_ptr(rp) if rp is not None else None,
                                              out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(err)), err)
    return out
