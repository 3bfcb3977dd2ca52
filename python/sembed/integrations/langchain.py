"""sembed.integrations.langchain.SembedEmbeddings: LangChain's Embeddings
protocol on a sembed SentenceTransformer, handling texts exactly as
langchain_huggingface.HuggingFaceEmbeddings does: newlines become spaces,
encode_kwargs go to encode() for documents, query_encode_kwargs (when not
empty, else encode_kwargs) for queries, and the result is .tolist().

    from sembed.integrations.langchain import SembedEmbeddings
    emb = SembedEmbeddings(model_name="models/use-lite", encode_kwargs={"normalize_embeddings": True})
    emb.embed_documents(["a", "b"]); emb.embed_query("q")
"""

import asyncio

from ..sentence_transformer import SentenceTransformer

try:  # the real base class when LangChain is installed
    from langchain_core.embeddings import Embeddings as _Base
except ImportError:
    class _Base:
        """LangChain's Embeddings protocol, for when langchain_core does not
        import: the async forms run the sync ones in the default executor,
        as langchain_core's base class does."""

        async def aembed_documents(self, texts):
            """embed_documents in an executor thread."""
            return await asyncio.get_running_loop().run_in_executor(None, self.embed_documents, texts)

        async def aembed_query(self, text):
            """embed_query in an executor thread."""
            return await asyncio.get_running_loop().run_in_executor(None, self.embed_query, text)


class SembedEmbeddings(_Base):
    """HuggingFaceEmbeddings' fields and behaviour on sembed: model_name
    (a model folder; also accepted as model=), model_kwargs (passed to
    SentenceTransformer), encode_kwargs, query_encode_kwargs, show_progress.
    multi_process is accepted as False only (one process; threads are
    free)."""

    def __init__(self, model_name=None, model_kwargs=None, encode_kwargs=None, query_encode_kwargs=None,
                 show_progress=False, multi_process=False, cache_folder=None, model=None, client=None):
        if model_name is None:
            model_name = model
        if model_name is None and client is None:
            raise ValueError("SembedEmbeddings needs model_name (a model folder)")
        if multi_process:
            raise ValueError("SembedEmbeddings: multi_process is not supported; encode from threads instead")
        self.model_name = model_name
        self.cache_folder = cache_folder
        self.model_kwargs = dict(model_kwargs or {})
        self.encode_kwargs = dict(encode_kwargs or {})
        self.query_encode_kwargs = dict(query_encode_kwargs or {})
        self.show_progress = show_progress
        self.multi_process = False
        self._client = client if client is not None else SentenceTransformer(
            model_name, cache_folder=cache_folder, **self.model_kwargs)

    def _embed(self, texts, encode_kwargs):
        """encode() of texts with newlines replaced by spaces, as a list of lists."""
        texts = [x.replace("\n", " ") for x in texts]
        embeddings = self._client.encode(texts, show_progress_bar=self.show_progress, **encode_kwargs)
        if isinstance(embeddings, list):
            raise TypeError("Expected embeddings to be a Tensor or a numpy array, got a list instead.")
        return embeddings.tolist()

    def embed_documents(self, texts):
        """One embedding (list of float) per text, with encode_kwargs."""
        return self._embed(texts, self.encode_kwargs)

    def embed_query(self, text):
        """The embedding of one query, with query_encode_kwargs when given."""
        kw = self.query_encode_kwargs if len(self.query_encode_kwargs) > 0 else self.encode_kwargs
        return self._embed([text], kw)[0]
