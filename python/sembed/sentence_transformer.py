"""sembed.SentenceTransformer: sentence-transformers' SentenceTransformer
over libsembed (se_encode), with its encode() arguments and return shapes."""

import ctypes
import os

import numpy as np

from . import _lib
from ._lib import lib

_SIM_NAMES = ("cosine", "dot", "euclidean", "manhattan")
_PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


_SE_E_BUFFER = -6  # sembed.h se_status: a caller buffer is too small


def _torch():
    """torch when it imports, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _resolve_path(name, revision=None, token=None, cache_folder=None, local_files_only=False):
    """The model folder for model_name_or_path, as sentence-transformers
    finds it: a folder on disk, else a hub name in huggingface_hub's cache
    (ORG/NAME, or NAME for sentence-transformers/NAME), downloaded on first
    use unless local_files_only or HF_HUB_OFFLINE (libsembed's se_hub_resolve:
    the cache `sembed pull` and Python's huggingface_hub share)."""
    if os.path.isdir(name):
        return name
    repo = name if "/" in name else "sentence-transformers/" + name
    if not _lib.is_repo_id(repo):
        raise ValueError("sembed: %r is not a model folder (no such folder), nor a hub name (ORG/NAME)" % (name,))
    try:
        return _lib.hub_resolve(repo, revision=revision, token=token, cache_folder=cache_folder,
                                local_files_only=local_files_only)
    except _lib.SembedError as e:
        raise _lib.SembedError("%r is no model folder, and as a hub model: %s" % (name, e), e.code, e.status) from None


def _text_list(sentences, what="sentences"):
    """(list of str, was a single str) for encode's sentences argument;
    TypeError for anything but a str or an iterable of str."""
    if isinstance(sentences, str):
        return [sentences], True
    if isinstance(sentences, (bytes, bytearray)) or sentences is None or isinstance(sentences, dict):
        raise TypeError("%s must be a str or a list of str, not %s" % (what, type(sentences).__name__))
    try:
        texts = list(sentences)
    except TypeError:
        raise TypeError("%s must be a str or a list of str, not %s" % (what, type(sentences).__name__)) from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError("%s[%d] must be a str, not %s" % (what, i, type(t).__name__))
    return texts, False


class SentenceTransformer:
    """A sentence embedding model (a sentence-transformers or Hugging Face
    folder, or sembed's USE lite), as sentence_transformers.SentenceTransformer.

    device is accepted for compatibility and must be None or "cpu";
    truncate_dim keeps the first dimensions (Matryoshka); prompts and
    default_prompt_name override the model's configuration; n_threads is
    the library's worker threads per calling thread (0: online CPUs, at
    most 8)."""

    # sentence-transformers' other constructor arguments: accepted (revision, token, use_auth_token and
    # local_files_only apply to hub names), the others without effect here
    _IGNORED = ("modules", "trust_remote_code", "revision", "local_files_only", "token", "use_auth_token",
                "model_kwargs", "tokenizer_kwargs", "config_kwargs", "model_card_data", "backend")

    def __init__(self, model_name_or_path, device=None, prompts=None, default_prompt_name=None,
                 similarity_fn_name=None, truncate_dim=None, cache_folder=None, n_threads=0, **kwargs):
        for k in kwargs:
            if k not in self._IGNORED:
                raise TypeError("SentenceTransformer() got an unexpected keyword argument %r" % k)
        if device not in (None, "cpu") and str(device) != "cpu":
            raise ValueError("sembed runs on the CPU only: device must be None or 'cpu', not %r" % (device,))
        if truncate_dim is not None and (not isinstance(truncate_dim, int) or truncate_dim <= 0):
            raise ValueError("truncate_dim must be a positive int, not %r" % (truncate_dim,))
        if not isinstance(model_name_or_path, (str, os.PathLike)):
            raise TypeError("model_name_or_path must be a str or a path, not %s" % type(model_name_or_path).__name__)
        path = os.fspath(model_name_or_path)
        if cache_folder and not os.path.isdir(path) and os.path.isdir(os.path.join(cache_folder, path)):
            path = os.path.join(cache_folder, path)
        self._m = _lib.Model(_resolve_path(path, kwargs.get("revision"), kwargs.get("token") or kwargs.get("use_auth_token"),
                                           cache_folder, bool(kwargs.get("local_files_only"))), n_threads=n_threads)
        info = self._m.info
        if info.head:
            raise ValueError("%s is a cross-encoder (%s): load it with sembed.CrossEncoder" %
                             (path, info.head.decode()))
        self.model_name_or_path = path
        self.truncate_dim = truncate_dim
        if truncate_dim is not None and truncate_dim > info.dim:
            raise ValueError("truncate_dim %d exceeds the model's dimension %d" % (truncate_dim, info.dim))
        self.prompts = dict(self._m.prompts)
        if prompts:
            self.prompts.update(prompts)
        dpn = info.default_prompt_name.decode() if info.default_prompt_name else None
        self.default_prompt_name = default_prompt_name if default_prompt_name is not None else dpn
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError("default prompt name %r is not found in the configured prompts dictionary with keys %r"
                             % (self.default_prompt_name, list(self.prompts)))
        self._similarity_fn_name = _SIM_NAMES[info.similarity]
        self._max_seq_length = None  # None: the model's; else a shorter truncation (the ids path)
        if similarity_fn_name is not None:
            self.similarity_fn_name = similarity_fn_name
        self.device = "cpu"

    # ---- description -----------------------------------------------------

    def get_sentence_embedding_dimension(self):
        """The dimension of encode's vectors (truncate_dim when set)."""
        return self.truncate_dim if self.truncate_dim else int(self._m.info.dim)

    def get_max_seq_length(self):
        """max_seq_length: tokens a text is truncated to, specials included."""
        return self.max_seq_length

    @property
    def max_seq_length(self):
        """Tokens a text is truncated to (specials included): the model's
        configured length, or a shorter one set here (as
        `model.max_seq_length = 128` in sentence-transformers)."""
        return self._max_seq_length or int(self._m.info.n_tokens_max)

    @max_seq_length.setter
    def max_seq_length(self, value):
        limit = int(self._m.info.n_tokens_max)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise ValueError("max_seq_length must be an int in 1..%d (the model's length), not %r" % (limit, value))
        self._max_seq_length = value if value < limit else None

    @property
    def similarity_fn_name(self):
        """"cosine", "dot", "euclidean" or "manhattan" (the model's, unless set)."""
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value):
        value = getattr(value, "value", value)
        if value not in _SIM_NAMES:
            raise ValueError("similarity_fn_name must be one of %s, not %r" % (", ".join(_SIM_NAMES), value))
        self._similarity_fn_name = value

    @property
    def tokenizer(self):
        """The model's se_tokenizer handle (opaque; see tokenize())."""
        return self._m.tokenizer

    def __repr__(self):
        i = self._m.info
        return "SentenceTransformer(%r, arch=%s, dim=%d, max_seq_length=%d, similarity=%s)" % (
            self.model_name_or_path, i.arch_name.decode(), self.get_sentence_embedding_dimension(),
            self.max_seq_length, self.similarity_fn_name)

    # ---- encoding --------------------------------------------------------

    def _prompt_text(self, prompt_name, prompt):
        """The prompt text encode() prepends, resolved as sentence-transformers
        does: prompt, else prompts[prompt_name], else the default prompt."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError("prompt must be a str, not %s" % type(prompt).__name__)
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError("Prompt name '%s' not found in the configured prompts dictionary with keys %r."
                                 % (prompt_name, list(self.prompts)))
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name, "")
        return ""

    def _ids(self, texts, p, base=0):
        """For a shorter max_seq_length: each text tokenized as se_encode
        would (prompt, strip, lowercasing) by se_encode_tokenize, truncated to
        max_seq_length -> (int32*[n], size_t[n] lengths, size_t[n] pooling
        starts, keep-alive list)."""
        tp = lib.se_tokenize_default_params(self._m.tokenizer)
        tp.n_tokens_max = self.max_seq_length
        tp.add_special = True
        cap = self.max_seq_length
        n = len(texts)
        ptrs = (ctypes.POINTER(ctypes.c_int32) * n)()
        lens, starts = (ctypes.c_size_t * n)(), (ctypes.c_size_t * n)()
        keep, err = [], _lib.se_error()
        got, start = ctypes.c_size_t(), ctypes.c_size_t()
        for i, t in enumerate(texts):
            b = t.encode("utf-8")
            buf = (ctypes.c_int32 * cap)()
            st = lib.se_encode_tokenize(self._m.ptr, b, len(b), ctypes.byref(p), ctypes.byref(tp), buf, cap,
                                        ctypes.byref(got), ctypes.byref(start), None, ctypes.byref(err))
            if st != 0:  # the call tokenizes one text: name it in the whole input
                err.msg = (("text %d: " % (base + i)).encode() + err.msg)[:255]
                _lib.check(st, err)
            keep.append(buf)
            ptrs[i] = ctypes.cast(buf, ctypes.POINTER(ctypes.c_int32))
            lens[i], starts[i] = got.value, start.value
        return ptrs, lens, starts, keep

    def _encode_f32(self, texts, prompt, normalize, batch_size, progress):
        """(n, dim) float32 through se_encode, batch_size texts per call
        (with a shorter max_seq_length: se_encode_tokenize, then
        se_encode_ids with the prompts' pooling starts)."""
        p = lib.se_encode_default_params()
        p.prompt = prompt.encode("utf-8")
        p.prompt_name = None
        p.truncate_dim = self.truncate_dim or 0
        p.normalize = bool(normalize)
        dim = lib.se_encode_dim(self._m.ptr, ctypes.byref(p))
        n = len(texts)
        out = np.empty((n, dim), dtype=np.float32)
        ctx = self._m.ctx()
        err = _lib.se_error()
        bar = _progress(n, progress)
        for s in range(0, n, batch_size):
            part = texts[s:s + batch_size]
            ptrs, lens, keep = _lib.text_arrays(part)
            rows = out[s:s + len(part)]
            if self._max_seq_length:
                ids, ilens, starts, keep_ids = self._ids(part, p, s)
                q = lib.se_encode_default_params()
                q.truncate_dim, q.normalize, q.pool_starts = p.truncate_dim, p.normalize, starts
                st = lib.se_encode_ids(ctx, ids, ilens, len(part), ctypes.byref(q), _lib.float_ptr(rows), rows.size,
                                       ctypes.byref(err))
            else:
                st = lib.se_encode(ctx, ptrs, lens, len(part), ctypes.byref(p), _lib.float_ptr(rows), rows.size, None,
                                   ctypes.byref(err))
            if st != 0:  # "text N" in the message counts within this batch: renumber it for the call
                _lib.check(st, _shift_msg(err, s) if s else err)
            if bar:
                bar.update(len(part))
        if bar:
            bar.close()
        return out

    def _encode_tokens(self, texts, prompt, batch_size):
        """Per text, the (tokens, hidden) float32 token embeddings through
        se_encode_tokens (special tokens and the prompt's tokens included),
        batch_size texts per call: a first call asks for the token counts
        (SE_E_BUFFER), the second fills an array of exactly that size."""
        p = lib.se_encode_default_params()
        p.prompt = prompt.encode("utf-8")
        p.prompt_name = None
        hidden = self._m.info.n_embd
        ctx = self._m.ctx()
        err = _lib.se_error()
        rows = []
        for s in range(0, len(texts), batch_size):
            part = texts[s:s + batch_size]
            ptrs, lens, keep = _lib.text_arrays(part)
            counts = (ctypes.c_size_t * len(part))()
            if self._max_seq_length:  # the shorter length: tokenized here, run as ids
                ids, counts, _, keep_ids = self._ids(part, p, s)
                st = 0
            else:
                st = lib.se_encode_tokens(ctx, ptrs, lens, len(part), ctypes.byref(p), None, 0, counts, None,
                                          ctypes.byref(err))
            if st not in (0, _SE_E_BUFFER):
                _lib.check(st, _shift_msg(err, s) if s else err)
            total = sum(counts)
            out = np.empty((max(total, 1), hidden), dtype=np.float32)
            if self._max_seq_length:
                st = lib.se_encode_ids_tokens(ctx, ids, counts, len(part), _lib.float_ptr(out), total * hidden,
                                              ctypes.byref(err))
            else:
                st = lib.se_encode_tokens(ctx, ptrs, lens, len(part), ctypes.byref(p), _lib.float_ptr(out),
                                          total * hidden, counts, None, ctypes.byref(err))
            if st != 0:
                _lib.check(st, _shift_msg(err, s) if s else err)
            at = 0
            for c in counts:
                rows.append(out[at:at + c].copy())
                at += c
        return rows

    def encode(self, sentences, prompt_name=None, prompt=None, batch_size=32, show_progress_bar=None,
               output_value="sentence_embedding", precision="float32", convert_to_numpy=True,
               convert_to_tensor=False, device=None, normalize_embeddings=False, truncate_dim=None, **kwargs):
        """Encodes a str (1-D result) or a list of str (2-D result), as
        sentence-transformers' encode(). precision other than float32
        quantises with sembed.util.quantize_embeddings over the whole call;
        convert_to_tensor returns a torch tensor (torch must import);
        batch_size is the texts per library call (the library batches
        further by tokens); show_progress_bar uses tqdm when it imports."""
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise ValueError("output_value must be 'sentence_embedding', 'token_embeddings' or None, not %r"
                             % (output_value,))
        if precision not in _PRECISIONS:
            raise ValueError("Precision %r is not supported; use one of %s" % (precision, ", ".join(_PRECISIONS)))
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError("batch_size must be a positive int, not %r" % (batch_size,))
        if device not in (None, "cpu") and str(device) != "cpu":
            raise ValueError("sembed runs on the CPU only: device must be None or 'cpu', not %r" % (device,))
        texts, single = _text_list(sentences)
        if output_value != "sentence_embedding":
            return self._encode_all(texts, single, output_value, prompt_name, prompt, batch_size, convert_to_tensor,
                                    normalize_embeddings, truncate_dim, precision, show_progress_bar)
        saved = self.truncate_dim
        if truncate_dim is not None:
            if not isinstance(truncate_dim, int) or truncate_dim <= 0 or truncate_dim > self._m.info.dim:
                raise ValueError("truncate_dim must be in 1..%d, not %r" % (self._m.info.dim, truncate_dim))
            self.truncate_dim = truncate_dim
        try:
            emb = self._encode_f32(texts, self._prompt_text(prompt_name, prompt), normalize_embeddings, batch_size,
                                   show_progress_bar)
        finally:
            self.truncate_dim = saved
        if precision != "float32" and len(texts):
            from .util import quantize_embeddings
            emb = quantize_embeddings(emb, precision)
        if convert_to_tensor:
            torch = _torch()
            if torch is None:
                raise ImportError("sembed: convert_to_tensor=True needs torch, which does not import here")
            if not len(texts):
                return torch.Tensor()  # shape (0,), as sentence-transformers returns for no input
            t = torch.from_numpy(emb)
            return t[0] if single else t
        if not convert_to_numpy:
            torch = _torch()
            rows = [torch.from_numpy(r) for r in emb] if torch is not None else list(emb)
            return rows[0] if single else rows
        if not len(texts):
            return np.asarray([], dtype=emb.dtype)
        return emb[0] if single else emb

    def _encode_all(self, texts, single, output_value, prompt_name, prompt, batch_size, convert_to_tensor,
                    normalize_embeddings, truncate_dim, precision, progress):
        """encode() with output_value "token_embeddings" (per text a
        (tokens, hidden) array: every token's last hidden state, special
        tokens included, as sentence-transformers gives them cut to the
        attention mask) or None (per text a dict with "token_embeddings" and
        "sentence_embedding"). Arrays are numpy float32, torch tensors with
        convert_to_tensor (sentence-transformers gives tensors here and
        ignores convert_to_numpy)."""
        ptext = self._prompt_text(prompt_name, prompt)
        tok = self._encode_tokens(texts, ptext, batch_size)
        if output_value is None:
            saved = self.truncate_dim
            if truncate_dim is not None:
                if not isinstance(truncate_dim, int) or truncate_dim <= 0 or truncate_dim > self._m.info.dim:
                    raise ValueError("truncate_dim must be in 1..%d, not %r" % (self._m.info.dim, truncate_dim))
                self.truncate_dim = truncate_dim
            try:
                emb = self._encode_f32(texts, ptext, normalize_embeddings, batch_size, progress)
            finally:
                self.truncate_dim = saved
        conv = (lambda a: a)
        if convert_to_tensor:
            torch = _torch()
            if torch is None:
                raise ImportError("sembed: convert_to_tensor=True needs torch, which does not import here")
            conv = torch.from_numpy
        if output_value == "token_embeddings":
            out = [conv(t) for t in tok]
        else:
            out = [{"token_embeddings": conv(t), "sentence_embedding": conv(e)} for t, e in zip(tok, emb)]
        return out[0] if single else out

    def encode_query(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """encode() with the model's "query" prompt when it has one and none is given."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_document(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """encode() with the model's "document", "passage" or "corpus" prompt
        (the first it has) when none is given."""
        if prompt_name is None and prompt is None:
            for name in ("document", "passage", "corpus"):
                if name in self.prompts:
                    prompt_name = name
                    break
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    # ---- similarity ------------------------------------------------------

    def similarity(self, embeddings1, embeddings2):
        """The (n1, n2) matrix of the model's similarity function (numpy in,
        numpy out; torch in, torch out)."""
        from . import util
        fn = {"cosine": util.cos_sim, "dot": util.dot_score, "euclidean": util.euclidean_sim,
              "manhattan": util.manhattan_sim}[self.similarity_fn_name]
        return fn(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        """The (n,) similarities of row i with row i."""
        from . import util
        fn = {"cosine": util.pairwise_cos_sim, "dot": util.pairwise_dot_score,
              "euclidean": util.pairwise_euclidean_sim, "manhattan": util.pairwise_manhattan_sim}[self.similarity_fn_name]
        return fn(embeddings1, embeddings2)

    # ---- tokenization ----------------------------------------------------

    def tokenize(self, texts):
        """Token ids as the model reads them (specials included, truncated to
        max_seq_length), padded: a dict of int64 numpy arrays input_ids,
        token_type_ids and attention_mask, each (n, longest). The prompt is
        not added (as sentence-transformers' tokenize)."""
        texts, _ = _text_list(texts, "texts")
        tok = self._m.tokenizer
        p = lib.se_tokenize_default_params(tok)
        p.n_tokens_max = self.max_seq_length
        cap = max(int(p.n_tokens_max), 1) + 8
        ids = (ctypes.c_int32 * cap)()
        tids = (ctypes.c_int32 * cap)()
        n = ctypes.c_size_t()
        err = _lib.se_error()
        rows = []
        for i, t in enumerate(texts):
            t = t.strip()
            b = (t.lower() if self._m.info.do_lower_case else t).encode("utf-8")
            st = lib.se_tokenize(tok, b, len(b), None, 0, ctypes.byref(p), ids, tids, cap, ctypes.byref(n), None,
                                 ctypes.byref(err))
            _lib.check(st, err)
            rows.append((ids[:n.value], tids[:n.value]))
        width = max((len(r[0]) for r in rows), default=0)
        out = {k: np.zeros((len(rows), width), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
        for i, (a, b) in enumerate(rows):
            out["input_ids"][i, :len(a)] = a
            out["token_type_ids"][i, :len(b)] = b
            out["attention_mask"][i, :len(a)] = 1
        return out


def _shift_msg(err, start):
    """err with "text N" in its message renumbered from the batch to the call."""
    import re
    msg = err.msg.decode("utf-8", "replace")
    msg = re.sub(r"\btext (\d+)", lambda m: "text %d" % (int(m.group(1)) + start), msg, count=1)
    err.msg = msg.encode("utf-8")[:255]
    return err


def _progress(n, show):
    """A tqdm bar over n texts when show is true and tqdm imports, else None."""
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=n, desc="Batches", unit="texts")
