"""Embedding classes for LangChain (sembed.integrations.langchain) and
LlamaIndex (sembed.integrations.llama_index). Each subclasses the
framework's base class when that package imports, and stands alone with
the same methods otherwise."""
