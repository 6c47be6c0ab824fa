"""`gmsa demo` (what `make demo` runs): retrieval-augmented QA over a corpus, with and without GMSA.

Steps: a FAISS index over the corpus (MiniLM embeddings, built once and reused), the corpus's soft
tokens precomputed into a `SoftTokenStore`, then questions answered through the LangChain chain and
the LlamaIndex query engine. Both retrieve the top passages by the question plus those that the best
one names by title (`TitleLinkRetriever`: the second hop of a two-hop question), and each is compared
with the same retrieval feeding the full text to the same backbone: as shipped, and (for the default
model) fine-tuned on the same QA data with the same decoder LoRA budget, the fair baseline. The bundled
corpus and questions come from the held-out world of `gmsa data synth` (names the default model never
saw in training).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.corpus import Passage, read_corpus
from ..data.jsonl import iter_jsonl
from ..engine import GMSAEngine, SoftTokenStore
from ..engine.engine import default_tuned_baseline
from ..engine.prompts import PASSAGE_SEPARATOR, QA_TEMPLATE

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "demo_data"
BUNDLED_CORPUS = DEMO_DATA / "corpus.jsonl"
BUNDLED_QUESTIONS = DEMO_DATA / "questions.jsonl"
ANSWER_OPTIONS: dict[str, Any] = {"max_tokens": 24, "stop": ["\n"]}
OUT_OF_DOMAIN = (
    "NOTE: the default model's compressor (on SmolLM2-135M) was trained on 2 CPU cores, on a synthetic world of\n"
    "fictional people, organizations and places plus Python documentation prose. On other text its soft tokens\n"
    "keep less (on 216 hand-written questions in other styles: 40% exact match at 4x, against 89% for the same\n"
    "backbone tuned to read the full text); train your own with `gmsa train` (see examples/train_your_own.py)."
)
DEFAULT_MODEL_NOTE = (
    "NOTE: the default model is GMSA on SmolLM2-135M-Instruct, trained on 2 CPU cores; its measured quality\n"
    "and limits are in gmsa_integrations/default_model/MODEL_CARD.md."
)


def default_workdir() -> Path:
    return Path(os.environ.get("GMSA_DEMO_DIR", Path.home() / ".cache" / "gmsa-integrations" / "demo"))


@dataclass
class Answer:
    answer: str
    sources: list[str]
    source_tokens: int
    soft_tokens: int
    seconds: float


INDEX_FORMAT = "v2"
"""Part of the index folder's name; bumped when what the demo writes into its indexes changes (v2: the
corpus's metadata is kept out of LlamaIndex's prompts and embeddings), so an older cache is not reused."""


def _corpus_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _langchain_store(passages: list[Passage], folder: Path) -> Any:
    from ..langchain.vectorstores import FaissVectorStore, MiniLMEmbeddings

    embeddings = MiniLMEmbeddings()
    if (folder / "index.faiss").is_file():
        return FaissVectorStore.load_local(folder, embeddings)
    store = FaissVectorStore(embeddings)
    store.add_texts(
        [p.text for p in passages], [{"id": p.id, **p.metadata} for p in passages], ids=[p.id for p in passages]
    )
    store.save_local(folder)
    return store


def _llama_index(passages: list[Passage], folder: Path) -> Any:
    from ..llama_index.embeddings import faiss_vector_index, load_faiss_index, passage_nodes

    if (folder / "docstore.json").is_file():
        return load_faiss_index(folder)
    return faiss_vector_index(passage_nodes(passages), persist_dir=folder)


class Pipelines:
    """The LangChain chain and the LlamaIndex query engine over one corpus, plus the full-text path."""

    def __init__(
        self, engine: GMSAEngine, passages: list[Passage], index_dir: Path, rate: int, top_k: int, links: int = 2
    ) -> None:
        from langchain_core.documents import Document

        from ..langchain import TitleLinkRetriever, create_gmsa_rag_chain
        from ..llama_index import TitleLinkRetriever as TitleLinkNodeRetriever
        from ..llama_index import build_query_engine

        self.engine = engine
        store = _langchain_store(passages, index_dir / "langchain")
        self.retriever = store.as_retriever(search_kwargs={"k": top_k})
        if links:  # the second hop: passages that the best one names by title
            documents = [Document(p.text, id=p.id, metadata={"id": p.id, **p.metadata}) for p in passages]
            self.retriever = TitleLinkRetriever(retriever=self.retriever, documents=documents, max_linked=links)
        self.chain = create_gmsa_rag_chain(self.retriever, engine, rate, return_sources=True, **ANSWER_OPTIONS)
        index = _llama_index(passages, index_dir / "llama_index")
        node_retriever = TitleLinkNodeRetriever.from_index(index, top_k, max_linked=links) if links else None
        self.query_engine = build_query_engine(
            index,
            engine,
            rate=rate,
            similarity_top_k=top_k,
            retriever=node_retriever,
            max_new_tokens=ANSWER_OPTIONS["max_tokens"],
            stop=ANSWER_OPTIONS["stop"],
        )

    def langchain(self, question: str) -> Answer:
        start = time.perf_counter()
        out = self.chain.invoke(question)
        seconds = time.perf_counter() - start
        docs = out["sources"]
        return Answer(
            out["answer"].strip(),
            [d.metadata["gmsa_original_text"] for d in docs],
            sum(d.metadata["gmsa_source_tokens"] for d in docs),
            sum(d.metadata["gmsa_soft_tokens"] for d in docs),
            seconds,
        )

    def llama_index(self, question: str) -> Answer:
        start = time.perf_counter()
        response = self.query_engine.query(question)
        seconds = time.perf_counter() - start
        nodes = response.source_nodes
        return Answer(
            str(response).strip(),
            [n.node.metadata["gmsa_original_text"] for n in nodes],
            sum(n.node.metadata["gmsa_source_tokens"] for n in nodes),
            sum(n.node.metadata["gmsa_soft_tokens"] for n in nodes),
            seconds,
        )

    def full_text(self, question: str, tuned: GMSAEngine | None = None) -> Answer:
        """The same retrieval, passages given to the backbone as plain text (what you had without GMSA);
        with ``tuned``, read by the fair baseline (the backbone tuned on the same QA data)."""
        start = time.perf_counter()
        texts = [d.page_content for d in self.retriever.invoke(question)]
        prompt = QA_TEMPLATE.format(context=PASSAGE_SEPARATOR.join(texts), question=question)
        completion = (tuned or self.engine).complete(
            prompt,
            max_new_tokens=ANSWER_OPTIONS["max_tokens"],
            stop=ANSWER_OPTIONS["stop"],
            decoder="keft" if tuned else "original",
        )
        tokens = sum(self.engine.count_tokens(t) for t in texts)
        return Answer(completion.text.strip(), texts, tokens, 0, time.perf_counter() - start)


def _show(
    framework: str, question: str, gmsa: Answer, full: Answer, tuned: Answer | None, gold: list[str] | None
) -> None:
    print(f"\n[{framework}] Q: {question}")
    print(f"  GMSA answer:      {gmsa.answer!r}" + (f"   (gold: {gold[0]!r})" if gold else ""))
    print(f"  full-text answer: {full.answer!r} (backbone as shipped)")
    if tuned is not None:
        print(f"  full-text answer: {tuned.answer!r} (backbone tuned on the same QA data)")
    for text in gmsa.sources:
        print(f"  source: {text[:90]}{'...' if len(text) > 90 else ''}")
    print(
        f"  context tokens {gmsa.source_tokens} -> {gmsa.soft_tokens} soft tokens "
        f"({gmsa.source_tokens / max(gmsa.soft_tokens, 1):.1f}x); "
        f"latency {gmsa.seconds * 1000:.0f} ms vs {full.seconds * 1000:.0f} ms full text"
    )


def run_demo(
    question: str | None = None,
    corpus: str | None = None,
    *,
    rate: int = 4,
    top_k: int = 2,
    links: int = 2,
    sample: int = 30,
    workdir: str | None = None,
    model: str | None = None,
) -> int:
    from ..evaluation.metrics import exact_match
    from .indexing import build_index

    corpus_path = Path(corpus) if corpus else BUNDLED_CORPUS
    passages = read_corpus(corpus_path)
    if not passages:
        raise ValueError(f"{corpus_path}: the corpus has no passages")
    if corpus:
        print(OUT_OF_DOMAIN + "\n")
    work = Path(workdir) if workdir else default_workdir()
    index_dir = work / f"index-{INDEX_FORMAT}-{_corpus_key(corpus_path)}"
    print(f"working directory: {work}")
    engine = GMSAEngine.from_pretrained(model)
    # one store per model: after an upgrade of the default model, the old model's soft tokens stay apart
    engine.store = SoftTokenStore(work / "soft_tokens" / engine.fingerprint[:16])
    engine.store.bind(engine.fingerprint)
    tuned_dir = default_tuned_baseline() if model is None else None
    tuned = GMSAEngine.from_pretrained(tuned_dir) if tuned_dir else None
    if model is None:
        print(DEFAULT_MODEL_NOTE)
    print(f"1/3 FAISS index over {len(passages)} passages (MiniLM embeddings) ...")
    pipelines = Pipelines(engine, passages, index_dir, rate, top_k, links)
    print("2/3 soft tokens into the store (reused on later runs) ...")
    stats = build_index(engine, passages, [rate])
    print(f"    store: {stats}")

    print("3/3 answers")
    shown: list[tuple[str, list[str] | None]]
    questions = [row for _, row in iter_jsonl(BUNDLED_QUESTIONS)] if not corpus else []
    if question:
        shown = [(question, None)]
    elif questions:
        shown = [(q["question"], q["answers"]) for q in questions[:3]]
    else:
        print("no --question given; ask one with `gmsa demo --corpus FILE --question '...'`")
        return 0
    for q, gold in shown:
        full = pipelines.full_text(q)  # one full-text baseline per question serves both frameworks
        full_tuned = pipelines.full_text(q, tuned) if tuned else None
        _show("LangChain", q, pipelines.langchain(q), full, full_tuned, gold)
        _show("LlamaIndex", q, pipelines.llama_index(q), full, full_tuned, gold)
    if not questions or question:
        return 0

    from tqdm.auto import tqdm

    held_out = questions[:sample]
    answers: dict[str, list[Answer]] = {"gmsa": [], "full": [], "tuned": []}
    for row in tqdm(held_out, desc="held-out sample", leave=False):
        answers["gmsa"].append(pipelines.langchain(row["question"]))
        answers["full"].append(pipelines.full_text(row["question"]))
        if tuned is not None:
            answers["tuned"].append(pipelines.full_text(row["question"], tuned))
    ratios = [g.source_tokens / max(g.soft_tokens, 1) for g in answers["gmsa"]]

    def accuracy(name: str) -> str:
        scores = [exact_match(a.answer, row["answers"]) for a, row in zip(answers[name], held_out, strict=True)]
        return f"{statistics.fmean(scores):.0%}"

    def latency(name: str) -> tuple[float, str]:
        seconds = statistics.median(a.seconds for a in answers[name])
        tokens = statistics.median(engine.count_tokens(a.answer) for a in answers[name])
        return seconds, f"{seconds * 1000:.0f} ms ({tokens:.0f}-token answers)"

    # a decode step costs about as much as prefilling a few hundred tokens here, so a latency is only comparable
    # with one that generates answers of about the same length: the tuned baseline's, when it is there
    gmsa_s, gmsa_latency = latency("gmsa")
    full_s, full_latency = latency("full")
    latencies = f"full text {full_latency}"
    speed_up = f"{full_s / gmsa_s:.2f}x against the backbone as shipped"
    tuned_part = ""
    if answers["tuned"]:
        tuned_s, tuned_latency = latency("tuned")
        tuned_part = f", full text on the tuned backbone {accuracy('tuned')}"
        latencies += f", full text on the tuned backbone {tuned_latency}"
        speed_up = f"{tuned_s / gmsa_s:.2f}x against the tuned backbone"
    print(
        f"\nSUMMARY ({len(held_out)} held-out questions, top-{top_k} retrieval"
        f"{f' plus up to {links} title-linked passages' if links else ''}, rate {rate}x): "
        f"exact match GMSA {accuracy('gmsa')} vs full text {accuracy('full')}"
        f"{tuned_part}; compression {statistics.fmean(ratios):.1f}x; median latency (retrieval and the whole answer) "
        f"with soft tokens read from the store {gmsa_latency} vs {latencies}; speed-up {speed_up}"
    )
    return 0
