"""sembed.CrossEncoder: sentence-transformers' CrossEncoder (predict, rank)
over libsembed's se_predict / se_rank."""

import ctypes
import os

import numpy as np

from . import _lib
from ._lib import lib
from .sentence_transformer import _resolve_path, _torch

_ACTS = {None: 0, "model": 0, "identity": 1, "sigmoid": 2, "tanh": 3, "softmax": 4}


def _activation(fn):
    """The library's se_score_act for activation_fn: None (the model's), a
    name ("sigmoid", "identity", "tanh", "softmax") or a torch.nn module of
    those classes (Sigmoid(), Identity(), Tanh(), Softmax())."""
    if fn is None or isinstance(fn, str):
        key = fn.lower() if isinstance(fn, str) else fn
        if key not in _ACTS:
            raise ValueError("activation_fn must be one of sigmoid, identity, tanh, softmax, not %r" % (fn,))
        return _ACTS[key]
    name = type(fn).__name__.lower()
    if name in _ACTS and name != "model":
        return _ACTS[name]
    raise ValueError("activation_fn %r is not supported: use Sigmoid, Identity, Tanh or Softmax" % (fn,))


class CrossEncoder:
    """A cross-encoder (reranker) folder, as
    sentence_transformers.CrossEncoder: predict() scores text pairs,
    rank() orders documents for a query."""

    def __init__(self, model_name_or_path, device=None, n_threads=0, **kwargs):
        if device not in (None, "cpu") and str(device) != "cpu":
            raise ValueError("sembed runs on the CPU only: device must be None or 'cpu', not %r" % (device,))
        path = os.fspath(model_name_or_path)
        self._m = _lib.Model(_resolve_path(path), n_threads=n_threads)
        info = self._m.info
        if not info.head:
            raise ValueError("%s is an embedding model, not a cross-encoder: load it with sembed.SentenceTransformer"
                             % path)
        self.model_name_or_path = path
        self.num_labels = int(info.n_labels)
        self.max_length = int(info.n_tokens_max)
        self.config = {"architectures": [info.head.decode()],
                       "id2label": {i: info.labels[i].decode() for i in range(info.n_labels)} if info.labels else {},
                       "activation": info.activation.decode() if info.activation else None}

    def _params(self, activation_fn, apply_softmax):
        """se_predict_params for predict()/rank()'s arguments."""
        p = lib.se_predict_default_params()
        p.activation = _activation(activation_fn)
        p.apply_softmax = bool(apply_softmax)
        return p

    def predict(self, sentences, batch_size=32, show_progress_bar=None, activation_fn=None, apply_softmax=False,
                convert_to_numpy=True, convert_to_tensor=False, **kwargs):
        """Scores of [text, text_pair] pairs: an (n,) float32 array for a
        one-label model, (n, num_labels) otherwise; one pair (a list or tuple
        of two str) gives one score (or one row)."""
        if isinstance(sentences, (list, tuple)) and len(sentences) == 2 and all(isinstance(s, str) for s in sentences):
            pairs, single = [sentences], True
        else:
            pairs, single = list(sentences), False
        for i, pr in enumerate(pairs):
            if not isinstance(pr, (list, tuple)) or len(pr) != 2 or not all(isinstance(s, str) for s in pr):
                raise TypeError("sentences[%d] must be a pair of str (a list or tuple of two), not %r" % (i, pr))
        _lib_check_batch(batch_size)
        n, L = len(pairs), self.num_labels
        out = np.empty((n, L), dtype=np.float32)
        p = self._params(activation_fn, apply_softmax)
        err = _lib.se_error()
        ctx = self._m.ctx()
        for s in range(0, n, batch_size):
            part = pairs[s:s + batch_size]
            a, al, ka = _lib.text_arrays([x[0] for x in part])
            b, bl, kb = _lib.text_arrays([x[1] for x in part])
            rows = out[s:s + len(part)]
            _lib.check(lib.se_predict(ctx, a, al, b, bl, len(part), ctypes.byref(p), _lib.float_ptr(rows), rows.size,
                                      None, ctypes.byref(err)), err)
        res = out[:, 0] if L == 1 else out
        if convert_to_tensor:
            torch = _torch()
            if torch is None:
                raise ImportError("sembed: convert_to_tensor=True needs torch, which does not import here")
            res = torch.from_numpy(np.ascontiguousarray(res))
        return res[0] if single else res

    def rank(self, query, documents, top_k=None, return_documents=False, batch_size=32, show_progress_bar=None,
             activation_fn=None, apply_softmax=False, convert_to_numpy=True, convert_to_tensor=False, **kwargs):
        """The documents ordered by score for query: a list of
        {"corpus_id": int, "score": float[, "text": str]}, best first (ties in
        input order), at most top_k (None: all)."""
        if not isinstance(query, str):
            raise TypeError("query must be a str, not %s" % type(query).__name__)
        docs = list(documents)
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise TypeError("documents[%d] must be a str, not %s" % (i, type(d).__name__))
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError("top_k must be a positive int or None, not %r" % (top_k,))
        if self.num_labels != 1:
            raise ValueError("rank needs a model with one label; %s has %d" % (self.model_name_or_path, self.num_labels))
        n = len(docs)
        k = min(top_k or n, n)
        hits = (_lib.se_hit * max(k, 1))()
        nh = ctypes.c_size_t()
        qb = query.encode("utf-8")
        d, dl, keep = _lib.text_arrays(docs)
        p = self._params(activation_fn, apply_softmax)
        err = _lib.se_error()
        _lib.check(lib.se_rank(self._m.ctx(), qb, len(qb), d, dl, n, ctypes.byref(p), top_k or 0, hits, ctypes.byref(nh),
                               ctypes.byref(err)), err)
        out = []
        for t in range(nh.value):
            r = {"corpus_id": int(hits[t].corpus_id), "score": float(hits[t].score)}
            if return_documents:
                r["text"] = docs[hits[t].corpus_id]
            out.append(r)
        return out


def _lib_check_batch(batch_size):
    """ValueError unless batch_size is an int >= 1."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError("batch_size must be a positive int, not %r" % (batch_size,))
