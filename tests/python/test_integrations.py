"""The LangChain- and LlamaIndex-shaped classes against their protocols
(the frameworks are not installed here) and against encode()."""
import asyncio

import numpy as np

from sembed.integrations.langchain import SembedEmbeddings
from sembed.integrations.llama_index import SembedEmbedding
from conftest import USE

DOCS = ["A man is eating food.", "Two lines\nof text.", "Stocks fell."]


def test_langchain_embeddings(use_model):
    lc = SembedEmbeddings(model_name=USE, encode_kwargs={"normalize_embeddings": True})
    got = lc.embed_documents(DOCS)
    want = use_model.encode([d.replace("\n", " ") for d in DOCS], normalize_embeddings=True)
    assert isinstance(got, list) and all(isinstance(r, list) and type(r[0]) is float for r in got)
    assert np.array_equal(np.asarray(got, dtype=np.float32), want)
    q = lc.embed_query("Two lines\nof text.")
    assert isinstance(q, list) and np.array_equal(np.asarray(q, dtype=np.float32), want[1])
    # query_encode_kwargs, when given, replace encode_kwargs for queries
    lc2 = SembedEmbeddings(model_name=USE, encode_kwargs={"normalize_embeddings": True},
                           query_encode_kwargs={"prompt": "question: "})
    assert np.array_equal(np.asarray(lc2.embed_query("rain?"), np.float32), use_model.encode("question: rain?"))
    assert asyncio.run(lc.aembed_documents(DOCS)) == got
    assert asyncio.run(lc.aembed_query("Two lines\nof text.")) == q


def test_llama_index_embedding(use_model):
    li = SembedEmbedding(model_name=USE, query_instruction="query: ", embed_batch_size=2)
    assert np.array_equal(np.asarray(li.get_text_embedding(DOCS[0]), np.float32),
                          use_model.encode(DOCS[0], normalize_embeddings=True))
    assert np.array_equal(np.asarray(li.get_query_embedding("rain?"), np.float32),
                          use_model.encode("query: rain?", normalize_embeddings=True))
    batch = li.get_text_embedding_batch(DOCS)
    assert len(batch) == 3 and np.array_equal(np.asarray(batch, np.float32), use_model.encode(DOCS, normalize_embeddings=True))
    assert asyncio.run(li.aget_text_embedding(DOCS[0])) == batch[0]
    assert asyncio.run(li.aget_query_embedding("rain?")) == li.get_query_embedding("rain?")
    assert asyncio.run(li.aget_text_embedding_batch(DOCS)) == batch
