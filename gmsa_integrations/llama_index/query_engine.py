"""`build_query_engine`: a LlamaIndex query engine that compresses retrieved nodes and answers with `GMSALLM`."""

from __future__ import annotations

from typing import Any

from llama_index.core.prompts import PromptTemplate

from ..engine import GMSAEngine, resolve_engine
from ..engine.prompts import QA_TEMPLATE
from .llms import GMSALLM
from .postprocessor import GMSANodePostprocessor

GMSA_QA_TEMPLATE = PromptTemplate(
    QA_TEMPLATE.replace("{context}", "{context_str}").replace("{question}", "{query_str}")
)
"""``text_qa_template`` in the layout the default model was trained on."""


def build_query_engine(
    index: Any, engine: GMSAEngine | None = None, *, rate: int = 4, similarity_top_k: int = 3, **kwargs: Any
) -> Any:
    """A query engine over ``index`` that compresses retrieved nodes and answers with `GMSALLM`."""
    engine = resolve_engine(engine)
    return index.as_query_engine(
        llm=GMSALLM(
            engine=engine, **{k: kwargs.pop(k) for k in ("max_new_tokens", "temperature", "stop") if k in kwargs}
        ),
        node_postprocessors=[GMSANodePostprocessor(engine=engine, rate=rate)],
        similarity_top_k=similarity_top_k,
        text_qa_template=GMSA_QA_TEMPLATE,
        **kwargs,
    )
