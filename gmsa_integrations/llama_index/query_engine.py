"""`build_query_engine`: a LlamaIndex query engine that compresses retrieved nodes and answers with `GMSALLM`."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine

from ..engine import GMSAEngine, resolve_engine
from ..engine.prompts import QA_TEMPLATE
from .llms import GMSALLM
from .postprocessor import GMSANodePostprocessor

GMSA_QA_TEMPLATE = PromptTemplate(
    QA_TEMPLATE.replace("{context}", "{context_str}").replace("{question}", "{query_str}")
)
"""``text_qa_template`` in the layout the default model was trained on."""


def build_query_engine(
    index: Any,
    engine: GMSAEngine | None = None,
    *,
    rate: int = 4,
    similarity_top_k: int = 3,
    retriever: BaseRetriever | None = None,
    **kwargs: Any,
) -> Any:
    """A query engine over ``index`` that compresses retrieved nodes and answers with `GMSALLM`.

    ``retriever`` replaces the index's own (``similarity_top_k`` is then the retriever's business), e.g. a
    `TitleLinkRetriever` for two-hop questions.
    """
    engine = resolve_engine(engine)
    llm = GMSALLM(engine=engine, **{k: kwargs.pop(k) for k in ("max_new_tokens", "temperature", "stop") if k in kwargs})
    options = {
        "llm": llm,
        "node_postprocessors": [GMSANodePostprocessor(engine=engine, rate=rate)],
        "text_qa_template": GMSA_QA_TEMPLATE,
        **kwargs,
    }
    if retriever is not None:
        return RetrieverQueryEngine.from_args(retriever, **options)
    return index.as_query_engine(similarity_top_k=similarity_top_k, **options)
