"""sembed.integrations.llama_index.SembedEmbedding: LlamaIndex's embedding
interface (get_text_embedding, get_query_embedding,
get_text_embedding_batch and their async forms) on a sembed
SentenceTransformer, shaped like llama_index's HuggingFaceEmbedding:
query_instruction / text_instruction are prepended as prompts, normalize
(default True) L2-normalises, embed_batch_size is encode's batch_size.

    from sembed.integrations.llama_index import SembedEmbedding
    emb = SembedEmbedding(model_name="models/use-lite")
    emb.get_query_embedding("q"); emb.get_text_embedding_batch(["a", "b"])
"""

import asyncio

from ..sentence_transformer import SentenceTransformer

DEFAULT_EMBED_BATCH_SIZE = 10

try:  # the real base class when LlamaIndex is installed
    from llama_index.core.base.embeddings.base import BaseEmbedding as _Base
    _REAL = True
except ImportError:
    _REAL = False

    class _Base:
        """The public half of LlamaIndex's BaseEmbedding, for when
        llama_index does not import: the public methods call the
        subclass's _get_* methods, batches go embed_batch_size at a time."""

        def __init__(self, model_name="unknown", embed_batch_size=DEFAULT_EMBED_BATCH_SIZE, **kwargs):
            self.model_name = model_name
            self.embed_batch_size = embed_batch_size

        def get_query_embedding(self, query):
            """The embedding of a query."""
            return self._get_query_embedding(query)

        def get_text_embedding(self, text):
            """The embedding of a text (a document)."""
            return self._get_text_embedding(text)

        def get_text_embedding_batch(self, texts, show_progress=False, **kwargs):
            """The embeddings of texts, embed_batch_size per call."""
            out = []
            for s in range(0, len(texts), self.embed_batch_size):
                out.extend(self._get_text_embeddings(list(texts[s:s + self.embed_batch_size])))
            return out

        async def aget_query_embedding(self, query):
            """get_query_embedding, awaitable."""
            return await self._aget_query_embedding(query)

        async def aget_text_embedding(self, text):
            """get_text_embedding, awaitable."""
            return await self._aget_text_embedding(text)

        async def aget_text_embedding_batch(self, texts, show_progress=False):
            """get_text_embedding_batch, awaitable."""
            return await self._aget_text_embeddings(list(texts))


class SembedEmbedding(_Base):
    """LlamaIndex embeddings from a sembed model folder."""

    def __init__(self, model_name, query_instruction=None, text_instruction=None, normalize=True,
                 embed_batch_size=DEFAULT_EMBED_BATCH_SIZE, model_kwargs=None, **kwargs):
        model = SentenceTransformer(model_name, **(model_kwargs or {}))
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **kwargs)
        # the real BaseEmbedding is a pydantic model: private state goes in __dict__ directly
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_query_instruction", query_instruction)
        object.__setattr__(self, "_text_instruction", text_instruction)
        object.__setattr__(self, "_normalize", normalize)

    @classmethod
    def class_name(cls):
        """LlamaIndex's name for this class."""
        return "SembedEmbedding"

    def _embed(self, sentences, instruction):
        """encode() with the instruction as prompt, as lists of float."""
        return self._model.encode(sentences, batch_size=self.embed_batch_size, prompt=instruction or "",
                                  normalize_embeddings=self._normalize).tolist()

    def _get_query_embedding(self, query):
        """One query's embedding."""
        return self._embed([query], self._query_instruction)[0]

    def _get_text_embedding(self, text):
        """One text's embedding."""
        return self._embed([text], self._text_instruction)[0]

    def _get_text_embeddings(self, texts):
        """Several texts' embeddings."""
        return self._embed(texts, self._text_instruction)

    async def _aget_query_embedding(self, query):
        """_get_query_embedding in an executor thread."""
        return await asyncio.get_running_loop().run_in_executor(None, self._get_query_embedding, query)

    async def _aget_text_embedding(self, text):
        """_get_text_embedding in an executor thread."""
        return await asyncio.get_running_loop().run_in_executor(None, self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts):
        """_get_text_embeddings in an executor thread."""
        return await asyncio.get_running_loop().run_in_executor(None, self._get_text_embeddings, texts)
