"""First answer of a fresh LangChain RAG chain versus a warm ``Guard.invoke``.

For each question, in one process on the real default model under the default policy:

- warm: ``guard.invoke(question, passages)`` on a guard that has already answered (everything loaded,
  caches warm);
- fresh chain: a new ``ChatHGuard`` on the same guard, a new ``InMemoryVectorStore`` over
  examples/docs and the LangChain RAG tutorial's chain (``{"context": retriever | format_docs,
  "question": RunnablePassthrough()} | prompt | chat | StrOutputParser()``), built and invoked once;
  the time counts building the store (embedding the documents), the chain and the first answer.

The two are interleaved question by question (the order alternates). The ratio per question is
fresh / warm; the report gives the median ratio with a 95% percentile-bootstrap interval over the
questions, and writes benchmarks/results/first_answer.json.

    HGUARD_THREADS=1 .venv/bin/python benchmarks/first_answer.py [--n 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What is the capital of Australia?",
    "Which element has the symbol Au?",
    "What is the capital of Japan?",
    "What are the official languages of Canada?",
    "What is the capital of France?",
    "Which city is the capital of Kenya?",
]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="questions measured (cycled over the list)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "first_answer.json"))
    return ap


def main() -> None:
    args = build_parser().parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("HGUARD_THREADS", "1")))
    from langchain_core.documents import Document
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from hguard.guard import Guard
    from hguard import DEFAULT_POLICY
    from hguard.policy import load_policy
    from hguard.signals.embedding import get_embedder
    from langchain_hguard import ChatHGuard, HGuardEmbeddings

    import atexit
    import shutil
    import tempfile

    # the guard writes its audit log and queue as a deployment's does (every decision is recorded: a policy has no
    # "no log"), in a temporary folder deleted at exit
    runs = Path(tempfile.mkdtemp(prefix="hguard-first-answer-"))
    atexit.register(shutil.rmtree, runs, True)
    pol = load_policy(DEFAULT_POLICY)
    pol = pol.model_copy(update={
        "audit": pol.audit.model_copy(update={"path": runs / "audit.jsonl", "anchor": None}),
        "review": pol.review.model_copy(update={"queue": runs / "queue.sqlite3"}),
        "generation": pol.generation.model_copy(update={"max_new_tokens": args.max_new_tokens}),
        # a latency benchmark: answers of --max-new-tokens (24 by default, as in the recorded figures), not
        # the probes' calibrated 32, are warned about in the reasons and routed as scored, not all reviewed
        "domains": {n: d.model_copy(update={"generation_mismatch": "warn"}) for n, d in pol.domains.items()},
    })
    guard = Guard.from_policy(pol, embedder=get_embedder())
    texts = [p.read_text().strip() for p in sorted((REPO / "examples" / "docs").glob("*.txt"))]
    prompt = ChatPromptTemplate.from_messages([(
        "human",
        "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
        "answer the question. If you don't know the answer, just say that you don't know.\n"
        "Question: {question} \nContext: {context} \nAnswer:",
    )])

    def fmt(docs):
        return "\n\n".join(d.page_content for d in docs)

    guard.invoke(QUESTIONS[0], texts[:2])  # warm-up: model, probes, embedder, grounding scorer

    def warm(q):
        store = InMemoryVectorStore(HGuardEmbeddings())
        store.add_texts(texts)
        passages = [d.page_content for d in store.similarity_search(q, k=2)]
        t = time.perf_counter()
        guard.invoke(q, passages)
        return time.perf_counter() - t

    def fresh(q):
        t = time.perf_counter()
        store = InMemoryVectorStore(HGuardEmbeddings())
        store.add_documents([Document(page_content=x) for x in texts])
        chain = {"context": store.as_retriever(search_kwargs={"k": 2}) | fmt, "question": RunnablePassthrough()} | prompt | ChatHGuard(guard=guard) | StrOutputParser()
        chain.invoke(q)
        return time.perf_counter() - t

    rows = []
    for i in range(args.n):
        q = QUESTIONS[i % len(QUESTIONS)]
        if i % 2 == 0:
            w, f = warm(q), fresh(q)
        else:
            f, w = fresh(q), warm(q)
        rows.append({"question": q, "warm_s": w, "fresh_chain_s": f, "ratio": f / w})
        print(f"{q:45s} warm {w:6.2f} s  fresh chain {f:6.2f} s  ratio {f / w:5.2f}", flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    rng = np.random.default_rng(0)
    boots = [float(np.median(rng.choice(ratios, len(ratios)))) for _ in range(2000)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    summary = {
        "n": len(rows), "median_ratio": float(np.median(ratios)), "ci95": [float(lo), float(hi)],
        "max_ratio": float(ratios.max()), "median_warm_s": statistics.median(r["warm_s"] for r in rows),
        "median_fresh_chain_s": statistics.median(r["fresh_chain_s"] for r in rows), "target": 1.5,
        "threads": torch.get_num_threads(), "max_new_tokens": args.max_new_tokens,
    }
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
