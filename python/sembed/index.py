"""sembed.Index: the persistent vector index (se_index_*) with the model
that fills and queries it, as `sembed index` and `sembed search` use it."""

import ctypes
import json
import math
import os

import numpy as np

from . import _lib
from ._lib import lib
from .sentence_transformer import SentenceTransformer

_KINDS = {"flat": 0, "hnsw": 1}
_METRICS = {"cosine": 0, "dot": 1, "l2": 2}
_MODES = {"vector": 0, "keyword": 1, "hybrid": 2}          # se_search_mode
_FUSIONS = {None: 0, "rrf": 1, "score": 2}                # se_fusion (None: SE_FUSION_DEFAULT)


class Index:
    """A document index file. Make one with Index.build (new file) or
    Index.open (existing file); add(), delete(), search(), info(), close()
    (also a context manager). Documents longer than the model reads are
    split into chunks (se_chunk_text) so nothing is truncated, as
    `sembed index build` does. search() may run in several threads at once."""

    def __init__(self, handle, model, path, read_only):
        self._h = handle
        self.model = model
        self.path = path
        self.read_only = read_only
        info = self.info()
        self._chunk = (info["chunk_tokens"], info["chunk_overlap"])

    @classmethod
    def build(cls, path, model, documents=None, ids=None, metadata=None, kind="hnsw", metric="cosine", M=16,
              ef_construction=200, ef_search=64, chunk_tokens=0, chunk_overlap=0, batch_size=64):
        """Creates a new index file at path (an existing file is an error)
        for model (a SentenceTransformer or a model folder), and adds the
        documents if given."""
        if os.path.exists(path):
            raise FileExistsError("sembed: %s exists; open it with Index.open" % path)
        if kind not in _KINDS:
            raise ValueError("kind must be 'hnsw' or 'flat', not %r" % (kind,))
        if metric not in _METRICS:
            raise ValueError("metric must be 'cosine', 'dot' or 'l2', not %r" % (metric,))
        if not isinstance(model, SentenceTransformer):
            model = SentenceTransformer(model)
        if model.truncate_dim:
            raise ValueError("Index.build: a model with truncate_dim is not recorded by the index; use the full model")
        p = lib.se_index_default_params()
        p.kind, p.metric, p.M, p.ef_construction, p.ef_search = _KINDS[kind], _METRICS[metric], M, ef_construction, ef_search
        model_dir = os.path.abspath(model.model_name_or_path).encode()
        fp = model._m.fingerprint().encode()
        p.model, p.model_fingerprint = model_dir, fp
        p.chunk_tokens, p.chunk_overlap = chunk_tokens, chunk_overlap
        h = ctypes.c_void_p()
        err = _lib.se_error()
        _lib.check(lib.se_index_create(os.fsencode(path), model.get_sentence_embedding_dimension(), ctypes.byref(p),
                                       ctypes.byref(h), ctypes.byref(err)), err)
        idx = cls(_lib._Handle(h.value, _close), model, path, False)
        if documents is not None:
            idx.add(documents, ids=ids, metadata=metadata, batch_size=batch_size)
        return idx

    @classmethod
    def open(cls, path, model=None, read_only=False):
        """Opens an index file; model defaults to the folder the index
        recorded, and must be the model whose fingerprint it recorded."""
        h = ctypes.c_void_p()
        err = _lib.se_error()
        _lib.check(lib.se_index_open(os.fsencode(path), bool(read_only), _lib.LOG_FN(), None, ctypes.byref(h),
                                     ctypes.byref(err)), err)
        handle = _lib._Handle(h.value, _close)
        info = _info(handle.ptr)
        if model is None:
            if not info["model"]:
                handle.close()
                raise ValueError("sembed: %s records no model; pass model=" % path)
            model = info["model"]
        if not isinstance(model, SentenceTransformer):
            model = SentenceTransformer(model)
        if model.get_sentence_embedding_dimension() != info["dim"]:
            handle.close()
            raise ValueError("sembed: model %s gives %d-dimensional vectors, the index holds %d" %
                             (model.model_name_or_path, model.get_sentence_embedding_dimension(), info["dim"]))
        _lib.check(lib.se_index_check_model(handle.ptr, model._m.fingerprint().encode(), _lib.LOG_FN(), None,
                                            ctypes.byref(err)), err)
        return cls(handle, model, path, read_only)

    def _ptr(self):
        """The se_index pointer; ValueError once closed."""
        if not self._h.ptr:
            raise ValueError("sembed: the index %s is closed" % self.path)
        return self._h.ptr

    def close(self):
        """Writes the search graph and closes the file (idempotent)."""
        if self._h.ptr:
            p, self._h.ptr = self._h.ptr, None
            err = _lib.se_error()
            _lib.check(lib.se_index_close(p, ctypes.byref(err)), err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return self.info()["n_docs"]

    def info(self):
        """Parameters and counts as a dict (as `sembed index info --json`)."""
        return _info(self._ptr())

    def add(self, documents, ids=None, metadata=None, batch_size=64, titles=None):
        """Adds documents (str, or dicts with "text", optional "id", an
        optional str "title" and any other fields as metadata) in
        transactions of batch_size documents; an existing id is replaced.
        ids default to the position in the call (as strings); metadata is a
        list of dicts (JSON objects); titles a list of str or None. A title
        is stored, keyword-searched as its own BM25 field and returned with
        the hits; the vectors are of title + " " + text (each chunk), as
        `sembed index add` does with a JSONL "title"."""
        docs = list(documents)
        if titles is not None and len(titles) != len(docs):
            raise ValueError("titles has %d entries for %d documents" % (len(titles), len(docs)))
        if ids is not None and len(ids) != len(docs):
            raise ValueError("ids has %d entries for %d documents" % (len(ids), len(docs)))
        if metadata is not None and len(metadata) != len(docs):
            raise ValueError("metadata has %d entries for %d documents" % (len(metadata), len(docs)))
        rows = []
        for i, d in enumerate(docs):
            meta = dict(metadata[i]) if metadata is not None and metadata[i] is not None else {}
            did = ids[i] if ids is not None else None
            title = titles[i] if titles is not None else None
            if isinstance(d, dict):
                d = dict(d)
                if "text" not in d or not isinstance(d["text"], str):
                    raise TypeError("documents[%d] has no \"text\" string" % i)
                text = d.pop("text")
                did = d.pop("id", did)
                if "title" in d:
                    title = d.pop("title")
                meta.update(d)
            elif isinstance(d, str):
                text = d
            else:
                raise TypeError("documents[%d] must be a str or a dict, not %s" % (i, type(d).__name__))
            if title is not None and not isinstance(title, str):
                raise TypeError("documents[%d]: the title must be a str or None, not %s" % (i, type(title).__name__))
            did = str(i) if did is None else str(did)
            rows.append((did, text, json.dumps(meta, ensure_ascii=True, sort_keys=True) if meta else None, title or None))
        tok = self.model._m.tokenizer
        err = _lib.se_error()
        for s in range(0, len(rows), batch_size):
            part = rows[s:s + batch_size]
            spans, chunks, keep = [], [], []
            for did, text, meta, title in part:
                b = text.encode("utf-8")
                sp = ctypes.POINTER(ctypes.c_uint32)()
                nch = ctypes.c_size_t()
                st = lib.se_chunk_text(tok, b, len(b), self._chunk[0], self._chunk[1], ctypes.byref(sp),
                                       ctypes.byref(nch), ctypes.byref(err))
                if st != 0:
                    raise _lib.SembedError("document %s: %s" % (did, err.msg.decode("utf-8", "replace")), st)
                arr = np.ctypeslib.as_array(sp, shape=(2 * nch.value,)).copy()
                lib.se_free(sp)
                spans.append(arr)
                chunks.extend((title + " " if title else "") + b[arr[2 * k]:arr[2 * k + 1]].decode("utf-8")
                              for k in range(nch.value))
            vec = self.model.encode(chunks, batch_size=32) if chunks else np.empty((0, 0), np.float32)
            vec = np.ascontiguousarray(vec, dtype=np.float32)
            cd = (_lib.se_index_doc * len(part))()
            c = 0
            for j, (did, text, meta, title) in enumerate(part):
                nch = len(spans[j]) // 2
                sp = np.ascontiguousarray(spans[j], dtype=np.uint32)
                keep.extend([did.encode(), text.encode(), meta.encode() if meta else None, sp,
                             title.encode() if title else None])
                cd[j].id, cd[j].text, cd[j].meta = keep[-5], keep[-4], keep[-3]
                cd[j].title = keep[-1]
                cd[j].n_chunks = nch
                cd[j].spans = sp.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)) if nch > 1 else None
                cd[j].vectors = _lib.float_ptr(vec[c:c + nch])
                c += nch
            _lib.check(lib.se_index_add(self._ptr(), cd, len(part), ctypes.byref(err)), err)

    def delete(self, ids):
        """Deletes documents by id; returns how many existed."""
        if isinstance(ids, str):
            ids = [ids]
        raw = [str(i).encode() for i in ids]
        arr = (ctypes.c_char_p * max(len(raw), 1))(*raw)
        n = ctypes.c_size_t()
        err = _lib.se_error()
        _lib.check(lib.se_index_delete(self._ptr(), arr, len(raw), ctypes.byref(n), ctypes.byref(err)), err)
        return n.value

    def search(self, query, k=10, filter=None, ef_search=0, all_chunks=False, mode="vector", alpha=None, fusion=None):
        """The k best documents for a query (str) or queries (list of str):
        a list of {"id", "score", "chunk", "text", "metadata"} per query (one
        list for a str). filter: {field: value} (all must hold; a value may
        be a str, number or bool); unknown fields match nothing.
        mode: "vector" (default), "keyword" (BM25 over the texts; the model
        is not used) or "hybrid" (both fused: fusion "score" with alpha the
        vector weight in [0, 1], or "rrf"; None: the measured default, as
        `sembed search --hybrid`); keyword and hybrid hits add
        "vector_score" and "keyword_score" (None where that side did not
        return the document)."""
        qs, single = ([query], True) if isinstance(query, str) else (list(query), False)
        if not isinstance(k, int) or k < 1:
            raise ValueError("k must be a positive int, not %r" % (k,))
        if mode not in _MODES:
            raise ValueError("mode must be one of %s, not %r" % (", ".join(_MODES), mode))
        if fusion is not None and fusion not in _FUSIONS:
            raise ValueError("fusion must be \"score\" or \"rrf\", not %r" % (fusion,))
        if mode != "hybrid" and (alpha is not None or fusion is not None):
            raise ValueError("alpha and fusion are for mode=\"hybrid\"")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1):
            raise ValueError("alpha must be a number from 0 to 1, not %r" % (alpha,))
        if alpha is not None and fusion == "rrf":
            raise ValueError("alpha weighs fusion=\"score\", not rrf")
        flt = list((filter or {}).items())
        if len(flt) > 32:
            raise ValueError("at most 32 filter terms, not %d" % len(flt))
        keep = []
        fa = (_lib.se_index_filter * max(len(flt), 1))()
        for i, (key, v) in enumerate(flt):
            vs = json.dumps(v) if isinstance(v, (bool, int, float)) else str(v)
            keep.extend([str(key).encode(), vs.encode()])
            fa[i].key, fa[i].value = keep[-2], keep[-1]
        p = lib.se_index_search_default_params()
        p.k, p.ef_search, p.n_filters, p.best_chunk_per_doc = k, ef_search, len(flt), not all_chunks
        p.filters = fa if flt else None
        p.mode = _MODES[mode]
        p.fusion = _FUSIONS[fusion]
        p.alpha = -1.0 if alpha is None else float(alpha)
        Q = np.ascontiguousarray(self.model.encode(qs), dtype=np.float32) if mode != "keyword" else None
        hits = (_lib.se_index_hit * k)()
        nh = ctypes.c_size_t()
        err = _lib.se_error()
        out = []
        for q in range(len(qs)):
            qtext = qs[q].encode("utf-8")
            p.text = qtext
            _lib.check(lib.se_index_search(self._ptr(), _lib.float_ptr(Q[q]) if Q is not None else None, ctypes.byref(p),
                                           hits, ctypes.byref(nh), ctypes.byref(err)), err)
            res = []
            for h in hits[:nh.value]:
                d = _lib.se_index_doc_out()
                _lib.check(lib.se_index_fetch(self._ptr(), h.doc, ctypes.byref(d), ctypes.byref(err)), err)
                try:
                    did = ctypes.string_at(d.id).decode()
                    text = ctypes.string_at(d.text)
                    meta = json.loads(ctypes.string_at(d.meta).decode()) if d.meta else {}
                    title = ctypes.string_at(d.title).decode("utf-8", "replace") if d.title else None
                finally:
                    lib.se_free(d.id), lib.se_free(d.text), lib.se_free(d.meta), lib.se_free(d.title)
                r = {"id": did, "score": float(h.score), "chunk": int(h.chunk),
                     "text": text[min(h.start, len(text)):min(h.end, len(text))].decode("utf-8", "replace"),
                     "metadata": meta}
                if title is not None:
                    r["title"] = title
                if mode != "vector":
                    r["vector_score"] = None if math.isnan(h.vector_score) else float(h.vector_score)
                    r["keyword_score"] = None if math.isnan(h.keyword_score) else float(h.keyword_score)
                res.append(r)
            out.append(res)
        return out[0] if single else out


def _close(ptr):
    """se_index_close for a collected Index (errors dropped: nowhere to report)."""
    lib.se_index_close(ptr, None)


def _info(ptr):
    """se_index_get_info as a dict."""
    i = _lib.se_index_info()
    err = _lib.se_error()
    _lib.check(lib.se_index_get_info(ptr, ctypes.byref(i), ctypes.byref(err)), err)
    kinds = {v: k for k, v in _KINDS.items()}
    metrics = {v: k for k, v in _METRICS.items()}
    return {"dim": i.dim, "kind": kinds.get(i.params.kind), "metric": metrics.get(i.params.metric), "M": i.params.M,
            "ef_construction": i.params.ef_construction, "ef_search": i.params.ef_search,
            "model": i.params.model.decode() if i.params.model else None,
            "model_fingerprint": i.params.model_fingerprint.decode() if i.params.model_fingerprint else None,
            "chunk_tokens": i.params.chunk_tokens, "chunk_overlap": i.params.chunk_overlap, "n_docs": i.n_docs,
            "n_vectors": i.n_vectors, "n_free_slots": i.n_free_slots, "memory_bytes": i.memory_bytes,
            "format_version": i.format_version}
