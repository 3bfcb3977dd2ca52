"""The ctypes binding of libsembed: finding the library, the C structs and
prototypes of include/sembed.h, errors, and per-thread contexts.

Why ctypes and not cffi: ctypes is in the standard library, so the package
needs nothing installed besides numpy and builds nothing (no C compiler at
install time); every foreign call releases the GIL, which is what the
per-thread contexts rely on. cffi's ABI mode would give the same calls with
one more dependency; its API mode would need a compiler at install time.

Struct layouts mirror include/sembed.h field for field. Structs the
library fills through a pointer, or returns by value when larger than 16
bytes (always through a caller buffer on x86-64 and AArch64), carry a
zeroed tail (_tail) so that fields appended to the C struct in a later
release land in that tail instead of past the end of our buffer.
"""

import ctypes
import ctypes.util
import logging
import os
import threading

__all__ = ["lib", "SembedError", "check", "library_path"]

_TAIL = ("_tail", ctypes.c_char * 128)


class SembedError(RuntimeError):
    """An error reported by libsembed. str(e) is the library's one-line
    message (it names the file, field, tensor or line at fault); .status is
    the se_status name ("SE_E_FORMAT", ...), .code its number.

    A RuntimeError, so that code catching what sentence-transformers raises
    for a broken model folder or a failed run keeps working."""

    def __init__(self, message, code=None, status=None):
        super().__init__(message)
        self.code = code
        self.status = status


# ---- the C types --------------------------------------------------------

LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
DEBUG_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_size_t, ctypes.c_void_p)


class se_error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 256)]


class se_model_params(ctypes.Structure):
    _fields_ = [("log_fn", LOG_FN), ("log_user", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("use_mmap", ctypes.c_bool), _TAIL]


HUB_PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p)


class se_hub_params(ctypes.Structure):
    _fields_ = [("endpoint", ctypes.c_char_p), ("cache_dir", ctypes.c_char_p), ("token", ctypes.c_char_p),
                ("revision", ctypes.c_char_p), ("include", ctypes.POINTER(ctypes.c_char_p)),
                ("n_include", ctypes.c_size_t), ("progress_fn", HUB_PROGRESS_FN), ("progress_user", ctypes.c_void_p),
                ("log_fn", LOG_FN), ("log_user", ctypes.c_void_p), ("n_retries", ctypes.c_int32),
                ("retry_ms", ctypes.c_int32), ("offline", ctypes.c_bool), _TAIL]


class se_model_info(ctypes.Structure):
    _fields_ = [("arch", ctypes.c_char_p), ("arch_name", ctypes.c_char_p), ("hidden_act", ctypes.c_char_p),
                ("n_vocab", ctypes.c_int32), ("n_embd", ctypes.c_int32), ("n_layer", ctypes.c_int32),
                ("n_head", ctypes.c_int32), ("n_ff", ctypes.c_int32), ("n_pos", ctypes.c_int32),
                ("n_type", ctypes.c_int32), ("norm_eps", ctypes.c_float), ("n_tokens_max", ctypes.c_int32),
                ("dim", ctypes.c_int32), ("pooling", ctypes.c_uint32), ("n_dense", ctypes.c_int32),
                ("similarity", ctypes.c_int), ("weight_dtype", ctypes.c_int), ("compute_dtype", ctypes.c_int),
                ("n_prompts", ctypes.c_size_t), ("default_prompt_name", ctypes.c_char_p),
                ("include_prompt", ctypes.c_bool), ("normalize", ctypes.c_bool), ("do_lower_case", ctypes.c_bool),
                ("has_modules_json", ctypes.c_bool), ("head", ctypes.c_char_p), ("n_labels", ctypes.c_int32),
                ("labels", ctypes.POINTER(ctypes.c_char_p)), ("activation", ctypes.c_char_p), _TAIL]


class se_ctx_params(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int32), ("n_batch_tokens", ctypes.c_int32), ("debug_fn", DEBUG_FN),
                ("debug_user", ctypes.c_void_p), _TAIL]


class se_encode_params(ctypes.Structure):
    _fields_ = [("prompt", ctypes.c_char_p), ("prompt_name", ctypes.c_char_p), ("truncate_dim", ctypes.c_int32),
                ("normalize", ctypes.c_bool), ("skip_normalize", ctypes.c_bool),
                ("pool_starts", ctypes.POINTER(ctypes.c_size_t)), _TAIL]


class se_tokenize_params(ctypes.Structure):  # 16 bytes: returned in registers, no tail
    _fields_ = [("n_tokens_max", ctypes.c_size_t), ("add_special", ctypes.c_bool), ("truncate_left", ctypes.c_bool)]


class se_predict_params(ctypes.Structure):  # 8 bytes: returned in registers, no tail
    _fields_ = [("activation", ctypes.c_int), ("apply_softmax", ctypes.c_bool)]


class se_hit(ctypes.Structure):
    _fields_ = [("corpus_id", ctypes.c_int32), ("score", ctypes.c_float)]


class se_pair(ctypes.Structure):
    _fields_ = [("score", ctypes.c_float), ("i", ctypes.c_int32), ("j", ctypes.c_int32)]


class se_index_params(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("metric", ctypes.c_int), ("M", ctypes.c_uint32),
                ("ef_construction", ctypes.c_uint32), ("ef_search", ctypes.c_uint32), ("seed", ctypes.c_uint64),
                ("model", ctypes.c_char_p), ("model_fingerprint", ctypes.c_char_p),
                ("chunk_tokens", ctypes.c_uint32), ("chunk_overlap", ctypes.c_uint32)]


class se_index_params_ret(ctypes.Structure):
    """se_index_params with a tail, for by-value returns and new indexes."""
    _fields_ = se_index_params._fields_ + [_TAIL]


class se_index_doc(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("text", ctypes.c_char_p), ("meta", ctypes.c_char_p),
                ("n_chunks", ctypes.c_size_t), ("spans", ctypes.POINTER(ctypes.c_uint32)),
                ("vectors", ctypes.POINTER(ctypes.c_float)), ("title", ctypes.c_char_p)]


class se_index_filter(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class se_index_search_params(ctypes.Structure):
    _fields_ = [("k", ctypes.c_size_t), ("ef_search", ctypes.c_uint32),
                ("filters", ctypes.POINTER(se_index_filter)), ("n_filters", ctypes.c_size_t),
                ("best_chunk_per_doc", ctypes.c_bool), ("mode", ctypes.c_int), ("text", ctypes.c_char_p),
                ("fusion", ctypes.c_int), ("alpha", ctypes.c_float), ("rrf_k", ctypes.c_uint32), _TAIL]


class se_index_hit(ctypes.Structure):
    _fields_ = [("doc", ctypes.c_int64), ("chunk", ctypes.c_uint32), ("start", ctypes.c_uint32),
                ("end", ctypes.c_uint32), ("score", ctypes.c_float), ("vector_score", ctypes.c_float),
                ("keyword_score", ctypes.c_float)]


class se_index_doc_out(ctypes.Structure):
    _fields_ = [("id", ctypes.c_void_p), ("text", ctypes.c_void_p), ("meta", ctypes.c_void_p),
                ("title", ctypes.c_void_p)]


class se_index_info(ctypes.Structure):
    _fields_ = [("dim", ctypes.c_size_t), ("params", se_index_params), ("n_docs", ctypes.c_size_t),
                ("n_vectors", ctypes.c_size_t), ("n_free_slots", ctypes.c_size_t),
                ("memory_bytes", ctypes.c_size_t), ("format_version", ctypes.c_int), _TAIL]


# ---- finding and loading the library ------------------------------------

_NAMES = ("libsembed.so.0", "libsembed.so")


def _candidates():
    """Yields (where, path) in the order the library is looked for: the
    SEMBED_LIBRARY environment variable, the package folder, the system."""
    env = os.environ.get("SEMBED_LIBRARY")
    if env:
        yield "SEMBED_LIBRARY", env
        return  # an explicit choice is never silently replaced by another copy
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _NAMES:
        yield "the package folder", os.path.join(here, name)
    found = ctypes.util.find_library("sembed")
    if found:
        yield "the system (ctypes.util.find_library)", found
    for name in _NAMES:
        yield "the system loader", name


def _load():
    """Loads libsembed, or raises ImportError listing every place tried."""
    tried = []
    for where, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s (no such file)" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (where, path, e))
    raise ImportError("sembed: cannot load libsembed; looked in:\n  " + "\n  ".join(tried) +
                      "\nBuild it with `make` and set SEMBED_LIBRARY=/path/to/build/libsembed.so, "
                      "or install it (`make install`).")


lib, library_path = _load()

_P = ctypes.c_void_p
_S = ctypes.c_size_t
_E = ctypes.POINTER(se_error)
_PP = ctypes.POINTER(ctypes.c_char_p)
_PF = ctypes.POINTER(ctypes.c_float)


def _proto(name, restype, *argtypes):
    """Declares one function of sembed.h (its argument and result types)."""
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_I = ctypes.c_int
_proto("se_version", ctypes.c_char_p)
_proto("se_status_str", ctypes.c_char_p, _I)
_proto("se_free", None, _P)
_proto("se_hub_default_params", se_hub_params)
_proto("se_hub_is_repo_id", ctypes.c_bool, ctypes.c_char_p)
_proto("se_hub_resolve", _I, ctypes.c_char_p, ctypes.POINTER(se_hub_params), ctypes.c_char_p, _S, _E)
_proto("se_model_default_params", se_model_params)
_proto("se_model_load", _I, ctypes.c_char_p, ctypes.POINTER(se_model_params), ctypes.POINTER(_P), _E)
_proto("se_model_free", None, _P)
_proto("se_model_tokenizer", _P, _P)
_proto("se_model_get_info", _I, _P, ctypes.POINTER(se_model_info), _E)
_proto("se_model_prompt", _I, _P, _S, _PP, _PP, _E)
_proto("se_model_fingerprint", _I, _P, ctypes.c_char_p, _S, _E)
_proto("se_ctx_default_params", se_ctx_params)
_proto("se_ctx_new", _I, _P, ctypes.POINTER(se_ctx_params), ctypes.POINTER(_P), _E)
_proto("se_ctx_free", None, _P)
_proto("se_encode_default_params", se_encode_params)
_proto("se_encode_dim", _S, _P, ctypes.POINTER(se_encode_params))
_proto("se_encode_tokenize", _I, _P, ctypes.c_char_p, _S, ctypes.POINTER(se_encode_params),
       ctypes.POINTER(se_tokenize_params), ctypes.POINTER(ctypes.c_int32), _S, ctypes.POINTER(_S), ctypes.POINTER(_S),
       ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_encode_ids", _I, _P, ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)), ctypes.POINTER(_S), _S,
       ctypes.POINTER(se_encode_params), _PF, _S, _E)
_proto("se_encode_ids_tokens", _I, _P, ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)), ctypes.POINTER(_S), _S, _PF,
       _S, _E)
_proto("se_encode", _I, _P, _PP, ctypes.POINTER(_S), _S, ctypes.POINTER(se_encode_params), _PF, _S,
       ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_encode_tokens", _I, _P, _PP, ctypes.POINTER(_S), _S, ctypes.POINTER(se_encode_params), _PF, _S,
       ctypes.POINTER(_S), ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_tokenizer_n_tokens_max", _S, _P)
_proto("se_tokenize_default_params", se_tokenize_params, _P)
_proto("se_tokenize", _I, _P, ctypes.c_char_p, _S, ctypes.c_char_p, _S, ctypes.POINTER(se_tokenize_params),
       ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32), _S, ctypes.POINTER(_S),
       ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_chunk_text", _I, _P, ctypes.c_char_p, _S, _S, _S, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)),
       ctypes.POINTER(_S), _E)
_proto("se_similarity_matrix", _I, _I, _PF, _S, _PF, _S, _S, _PF, _E)
_proto("se_semantic_search", _I, _I, _PF, _S, _PF, _S, _S, _S, ctypes.POINTER(se_hit), _E)
_proto("se_paraphrase_mining", _I, _I, _PF, _S, _S, _S, _S, _S, ctypes.POINTER(ctypes.POINTER(se_pair)),
       ctypes.POINTER(_S), _E)
_proto("se_community_detection", _I, _PF, _S, _S, ctypes.c_float, _S, ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)),
       ctypes.POINTER(ctypes.POINTER(_S)), ctypes.POINTER(_S), _E)
_proto("se_quant_row_bytes", _S, _I, _S)
_proto("se_quant_ranges", _I, _PF, _S, _S, _PF, _E)
_proto("se_quantize_embeddings", _I, _I, _PF, _S, _S, _PF, _P, _E)
_proto("se_predict_default_params", se_predict_params)
_proto("se_predict", _I, _P, _PP, ctypes.POINTER(_S), _PP, ctypes.POINTER(_S), _S, ctypes.POINTER(se_predict_params),
       _PF, _S, ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_rank", _I, _P, ctypes.c_char_p, _S, _PP, ctypes.POINTER(_S), _S, ctypes.POINTER(se_predict_params), _S,
       ctypes.POINTER(se_hit), ctypes.POINTER(_S), _E)
_proto("se_index_default_params", se_index_params_ret)
_proto("se_index_create", _I, ctypes.c_char_p, _S, ctypes.POINTER(se_index_params_ret), ctypes.POINTER(_P), _E)
_proto("se_index_open", _I, ctypes.c_char_p, ctypes.c_bool, LOG_FN, _P, ctypes.POINTER(_P), _E)
_proto("se_index_close", _I, _P, _E)
_proto("se_index_flush", _I, _P, _E)
_proto("se_index_add", _I, _P, ctypes.POINTER(se_index_doc), _S, _E)
_proto("se_index_delete", _I, _P, _PP, _S, ctypes.POINTER(_S), _E)
_proto("se_index_search_default_params", se_index_search_params)
_proto("se_index_has_meta_key", _I, _P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_bool), _E)
_proto("se_index_check_model", _I, _P, ctypes.c_char_p, LOG_FN, _P, _E)
_proto("se_index_search", _I, _P, _PF, ctypes.POINTER(se_index_search_params), ctypes.POINTER(se_index_hit),
       ctypes.POINTER(_S), _E)
_proto("se_index_fetch", _I, _P, ctypes.c_int64, ctypes.POINTER(se_index_doc_out), _E)
_proto("se_index_get_info", _I, _P, ctypes.POINTER(se_index_info), _E)


def check(status, err):
    """Raises SembedError carrying err's message when status is not SE_OK."""
    if status != 0:
        name = lib.se_status_str(status).decode()
        msg = err.msg.decode("utf-8", "replace") if err.msg else name
        raise SembedError(msg, code=status, status=name)


def version():
    """The library's version string, e.g. "0.1.0"."""
    return lib.se_version().decode()


def float_ptr(a):
    """A float* to the data of a C-contiguous float32 numpy array."""
    return a.ctypes.data_as(_PF)


def text_arrays(texts):
    """(char*[n], size_t[n], keep-alive list) for a list of str: each text
    encoded as UTF-8 (lone surrogates are refused by Python's codec with a
    ValueError naming the position)."""
    n = len(texts)
    raw = [t.encode("utf-8") for t in texts]
    ptrs = (ctypes.c_char_p * n)(*raw)
    lens = (ctypes.c_size_t * n)(*map(len, raw))
    return ptrs, lens, raw


class _Handle:
    """Owns one C handle and frees it with free_fn when collected; keep
    holds objects that must outlive it (a ctx keeps its model)."""

    def __init__(self, ptr, free_fn, keep=None):
        self.ptr = ptr
        self._free = free_fn
        self._keep = keep

    def close(self):
        """Frees the handle now (idempotent)."""
        if self.ptr:
            p, self.ptr = self.ptr, None
            self._free(p)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


logger = logging.getLogger("sembed")


def _log(level, msg, user):
    """The library's notices (e.g. "no modules.json: mean pooling") as
    records of the "sembed" logger: INFO and WARNING."""
    logger.log(logging.WARNING if level == 1 else logging.INFO, "%s", msg.decode("utf-8", "replace"))


_LOG_CB = LOG_FN(_log)  # module-level: the C side may call it as long as the library is loaded


class Model:
    """A loaded se_model and one se_ctx per Python thread, created on first
    use in that thread and freed when the thread ends (threading.local)."""

    def __init__(self, path, n_threads=0):
        err = se_error()
        p = lib.se_model_default_params()
        p.log_fn = _LOG_CB
        h = ctypes.c_void_p()
        check(lib.se_model_load(os.fsencode(path), ctypes.byref(p), ctypes.byref(h), ctypes.byref(err)), err)
        self.handle = _Handle(h.value, lib.se_model_free)
        self.n_threads = int(n_threads or 0)
        self._local = threading.local()
        info = se_model_info()
        check(lib.se_model_get_info(self.ptr, ctypes.byref(info), ctypes.byref(err)), err)
        self.info = info
        self.prompts = {}
        for i in range(info.n_prompts):
            name, text = ctypes.c_char_p(), ctypes.c_char_p()
            check(lib.se_model_prompt(self.ptr, i, ctypes.byref(name), ctypes.byref(text), ctypes.byref(err)), err)
            self.prompts[name.value.decode()] = text.value.decode()

    @property
    def ptr(self):
        """The se_model pointer."""
        return self.handle.ptr

    @property
    def tokenizer(self):
        """The model's se_tokenizer pointer (owned by the model)."""
        return lib.se_model_tokenizer(self.ptr)

    def ctx(self):
        """This thread's se_ctx, created on first use."""
        c = getattr(self._local, "ctx", None)
        if c is None:
            err = se_error()
            p = lib.se_ctx_default_params()
            p.n_threads = self.n_threads
            h = ctypes.c_void_p()
            check(lib.se_ctx_new(self.ptr, ctypes.byref(p), ctypes.byref(h), ctypes.byref(err)), err)
            c = self._local.ctx = _Handle(h.value, lib.se_ctx_free, keep=self.handle)
        return c.ptr

    def fingerprint(self):
        """se_model_fingerprint as str."""
        err = se_error()
        buf = ctypes.create_string_buffer(160)
        check(lib.se_model_fingerprint(self.ptr, buf, len(buf), ctypes.byref(err)), err)
        return buf.value.decode()


def hub_resolve(repo_id, revision=None, token=None, cache_folder=None, local_files_only=False):
    """The snapshot folder of a hub model ORG/NAME in huggingface_hub's cache
    (the one `sembed pull` and Python's huggingface_hub fill), downloaded on
    first use unless local_files_only or HF_HUB_OFFLINE; SembedError when it
    cannot be had (not cached offline, gated, not found, offline)."""
    err = se_error()
    p = lib.se_hub_default_params()
    p.log_fn = _LOG_CB
    keep = []
    for field, value in (("revision", revision), ("token", token), ("cache_dir", cache_folder)):
        if value is not None:
            b = os.fsencode(value) if field == "cache_dir" else str(value).encode()
            keep.append(b)
            setattr(p, field, b)
    p.offline = bool(local_files_only)
    buf = ctypes.create_string_buffer(4096)
    check(lib.se_hub_resolve(str(repo_id).encode(), ctypes.byref(p), buf, len(buf), ctypes.byref(err)), err)
    return os.fsdecode(buf.value)


def is_repo_id(name):
    """Whether name has the form of a hub repository id, ORG/NAME."""
    return bool(lib.se_hub_is_repo_id(str(name).encode()))

