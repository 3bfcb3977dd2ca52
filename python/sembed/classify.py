"""SetFit-style text classification over libsembed: a logistic-regression
head (se_classifier) on the frozen embeddings of a SentenceTransformer.

    from sembed import SentenceTransformer, SetFitHead
    model = SentenceTransformer("models/use-lite")
    head = SetFitHead(model).fit(texts, labels)          # C=1.0, as SetFit's default head
    head.predict(["Stocks fell sharply."])              # ['main-news']
    head.predict_proba(["Stocks fell sharply."])        # (1, n_classes) float32
    head.save("head.json")                              # the file `sembed classify` reads
    head = SetFitHead.load("head.json", model)          # refused for another model

The head is scikit-learn's LogisticRegression(C) objective, solved to
convergence by the library (see include/sembed.h, se_classifier_fit);
classes_, coef_ and intercept_ are sklearn's shapes. fit_embeddings /
predict_proba_embeddings take precomputed vectors."""

import ctypes

import numpy as np

from . import _lib
from ._lib import check, float_ptr, lib

__all__ = ["SetFitHead"]


class _encode_params(ctypes.Structure):
    """se_encode_params as it sits inside another struct (no tail)."""
    _fields_ = [("prompt", ctypes.c_char_p), ("prompt_name", ctypes.c_char_p), ("truncate_dim", ctypes.c_int32),
                ("normalize", ctypes.c_bool), ("skip_normalize", ctypes.c_bool),
                ("pool_starts", ctypes.POINTER(ctypes.c_size_t))]


class _params(ctypes.Structure):
    _fields_ = [("C", ctypes.c_double), ("tol", ctypes.c_double), ("max_iter", ctypes.c_int32),
                ("model_fingerprint", ctypes.c_char_p), ("encode", _encode_params), _lib._TAIL]


class _info(ctypes.Structure):
    _fields_ = [("n_classes", ctypes.c_size_t), ("dim", ctypes.c_size_t),
                ("classes", ctypes.POINTER(ctypes.c_char_p)), ("n_rows", ctypes.c_size_t),
                ("coef", ctypes.POINTER(ctypes.c_double)), ("intercept", ctypes.POINTER(ctypes.c_double)),
                ("C", ctypes.c_double), ("model_fingerprint", ctypes.c_char_p), ("encode", _encode_params),
                ("n_samples", ctypes.c_size_t), ("n_iter", ctypes.c_int32), ("converged", ctypes.c_bool),
                ("objective", ctypes.c_double), ("grad_max", ctypes.c_double), _lib._TAIL]


_P, _S, _E = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_lib.se_error)
_lib._proto("se_classifier_default_params", _params)
_lib._proto("se_classifier_fit", ctypes.c_int, _lib._PF, _S, _S, ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(_params), ctypes.POINTER(_P), _E)
_lib._proto("se_classifier_free", None, _P)
_lib._proto("se_classifier_get_info", ctypes.c_int, _P, ctypes.POINTER(_info), _E)
_lib._proto("se_classifier_predict_proba", ctypes.c_int, _P, _lib._PF, _S, _lib._PF, _S, _E)
_lib._proto("se_classifier_save", ctypes.c_int, _P, ctypes.c_char_p, _E)
_lib._proto("se_classifier_load", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_P), _E)
_lib._proto("se_classifier_check_model", ctypes.c_int, _P, ctypes.c_char_p, _E)


def _fingerprint(model):
    """se_model_fingerprint of a SentenceTransformer's model."""
    buf = ctypes.create_string_buffer(160)
    err = _lib.se_error()
    check(lib.se_model_fingerprint(model._m.ptr, buf, len(buf), ctypes.byref(err)), err)
    return buf.value


class SetFitHead:
    """A logistic-regression head on a SentenceTransformer's embeddings
    (the model stays frozen). C: sklearn's inverse penalty strength;
    normalize_embeddings and prompt_name: how texts are encoded, recorded in
    the head so that predict and `sembed classify predict` encode the same
    way."""

    def __init__(self, model, C=1.0, max_iter=10000, normalize_embeddings=False, prompt_name=None):
        self.model = model
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.normalize_embeddings = bool(normalize_embeddings)
        self.prompt_name = prompt_name
        self._h = None

    # ---- fitting ----
    def fit(self, texts, labels):
        """Encodes texts and fits the head on their labels (any values:
        they become str, as sklearn's classes_ would hold them, sorted).
        Returns self."""
        texts = list(texts)
        return self.fit_embeddings(self._encode(texts), labels)

    def fit_embeddings(self, embeddings, labels):
        """Fits on precomputed vectors (n, dim), made by this model with
        this head's settings. Returns self."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError("embeddings must be 2-D (n, dim), not %r" % (x.shape,))
        labels = [str(l) for l in labels]
        if len(labels) != x.shape[0]:
            raise ValueError("%d embeddings but %d labels" % (x.shape[0], len(labels)))
        raw = [l.encode("utf-8") for l in labels]
        arr = (ctypes.c_char_p * len(raw))(*raw)
        p = lib.se_classifier_default_params()
        p.C = self.C
        p.max_iter = self.max_iter
        fp = _fingerprint(self.model)
        p.model_fingerprint = fp
        pn = self.prompt_name.encode() if self.prompt_name else None
        p.encode.prompt_name = pn
        p.encode.normalize = self.normalize_embeddings
        h = ctypes.c_void_p()
        err = _lib.se_error()
        check(lib.se_classifier_fit(float_ptr(x), x.shape[0], x.shape[1], arr, ctypes.byref(p), ctypes.byref(h),
                                    ctypes.byref(err)), err)
        self._h = _lib._Handle(h.value, lib.se_classifier_free)
        return self

    # ---- what the head holds ----
    def _info(self):
        if self._h is None:
            raise RuntimeError("the head is not fitted: call fit() or SetFitHead.load()")
        i = _info()
        err = _lib.se_error()
        check(lib.se_classifier_get_info(self._h.ptr, ctypes.byref(i), ctypes.byref(err)), err)
        return i

    @property
    def classes_(self):
        i = self._info()
        return np.array([i.classes[k].decode("utf-8") for k in range(i.n_classes)])

    @property
    def coef_(self):
        i = self._info()
        return np.ctypeslib.as_array(i.coef, shape=(i.n_rows * i.dim,)).reshape(i.n_rows, i.dim).copy()

    @property
    def intercept_(self):
        i = self._info()
        return np.ctypeslib.as_array(i.intercept, shape=(i.n_rows,)).copy()

    @property
    def n_iter_(self):
        return int(self._info().n_iter)

    # ---- prediction ----
    def _encode(self, texts):
        return self.model.encode(list(texts), normalize_embeddings=self.normalize_embeddings,
                                 prompt_name=self.prompt_name)

    def predict_proba_embeddings(self, embeddings):
        """Class probabilities (n, n_classes) of precomputed vectors."""
        i = self._info()
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != i.dim:
            raise ValueError("embeddings must be (n, %d), not %r" % (i.dim, x.shape))
        out = np.empty((x.shape[0], i.n_classes), dtype=np.float32)
        err = _lib.se_error()
        check(lib.se_classifier_predict_proba(self._h.ptr, float_ptr(x), x.shape[0], float_ptr(out), out.size,
                                              ctypes.byref(err)), err)
        return out

    def predict_proba(self, texts):
        """Class probabilities (n, n_classes), classes in classes_ order."""
        return self.predict_proba_embeddings(self._encode(texts))

    def predict(self, texts):
        """The most probable class of each text (a list of str)."""
        classes = self.classes_
        return [str(classes[k]) for k in np.argmax(self.predict_proba(texts), axis=1)]

    __call__ = predict

    # ---- the file ----
    def save(self, path):
        """Writes the head as JSON (the file `sembed classify predict --head` reads)."""
        self._info()
        err = _lib.se_error()
        check(lib.se_classifier_save(self._h.ptr, str(path).encode(), ctypes.byref(err)), err)

    @classmethod
    def load(cls, path, model):
        """Loads a head saved by save() or `sembed classify fit`, for model;
        SembedError when it was fitted on another model."""
        h = ctypes.c_void_p()
        err = _lib.se_error()
        check(lib.se_classifier_load(str(path).encode(), ctypes.byref(h), ctypes.byref(err)), err)
        handle = _lib._Handle(h.value, lib.se_classifier_free)
        check(lib.se_classifier_check_model(handle.ptr, _fingerprint(model), ctypes.byref(err)), err)
        self = cls(model)
        self._h = handle
        i = self._info()
        self.C = float(i.C)
        self.normalize_embeddings = bool(i.encode.normalize)
        self.prompt_name = i.encode.prompt_name.decode() if i.encode.prompt_name else None
        return self
