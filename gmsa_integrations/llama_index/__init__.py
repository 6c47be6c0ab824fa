"""LlamaIndex integration: `GMSANodePostprocessor` (nodes -> soft tokens) and `GMSALLM` (reads them)."""

from .base import GMSA_QA_TEMPLATE, GMSALLM, GMSANodePostprocessor, build_query_engine

__all__ = ["GMSALLM", "GMSA_QA_TEMPLATE", "GMSANodePostprocessor", "build_query_engine"]
