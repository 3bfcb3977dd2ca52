"""sembed: sentence-transformers' Python API over libsembed (the C library).

    from sembed import SentenceTransformer
    model = SentenceTransformer("models/use-lite")
    emb = model.encode(["A man is eating food.", "A man is eating bread."])
    print(model.similarity(emb, emb))

The library is found through the SEMBED_LIBRARY environment variable, then
next to this package, then on the system (see sembed._lib)."""

from ._lib import SembedError, library_path, version as _version
from .sentence_transformer import SentenceTransformer
from .cross_encoder import CrossEncoder
from .index import Index
from .classify import SetFitHead
from . import util

__version__ = _version()
__all__ = ["SentenceTransformer", "CrossEncoder", "Index", "SetFitHead", "SembedError", "util", "library_path", "__version__"]
