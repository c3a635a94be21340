"""End to end with the real default model (SmolLM2-135M-Instruct) under the default policy: real
retrieval from an InMemoryVectorStore over examples/docs into the guarded model, and the example script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from hguard import audit as audit_mod
from hguard.audit import AuditLog
from langchain_hguard import ChatHGuard, HGuardAuditCallbackHandler, HGuardEmbeddings, create_guarded_rag_chain

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.default_model


def test_guarded_rag_end_to_end_on_the_default_model(real_guard):
    docs = [Document(page_content=p.read_text().strip(), metadata={"source": p.name}) for p in sorted((REPO / "examples" / "docs").glob("*.txt"))]
    store = InMemoryVectorStore(HGuardEmbeddings())
    store.add_documents(docs)
    chain = create_guarded_rag_chain(store.as_retriever(search_kwargs={"k": 2}), ChatHGuard(guard=real_guard))
    handler = HGuardAuditCallbackHandler.from_guard(real_guard)
    ans = chain.invoke("What is the capital of Australia?", config={"callbacks": [handler]})
    assert ans.sources[0] == "australia.txt"
    assert ans.route in ("accept", "review", "abstain") and ans.reasons and ans.audit_id
    assert not any("generation_mismatch" in r for r in ans.reasons), ans.reasons  # generated as calibrated
    decision = AuditLog(real_guard.audit.path).find(ans.audit_id)
    assert "Canberra" in decision["context"] and decision["model"] == "SmolLM2-135M-Instruct"
    assert decision["signals"]["grounding"] is not None  # the retrieved passages were scored against
    shown = {"accept": decision["answer"], "abstain": real_guard.policy.abstain_message_of(decision["domain"]),
             "review": real_guard.policy.review_message}[ans.route]  # the default policy holds answers for review
    assert ans.answer == shown
    assert [r["kind"] for r in AuditLog(real_guard.audit.path)] == ["decision", "llm_call"]
    assert audit_mod.verify(real_guard.audit.path).ok


@pytest.mark.slow
def test_langchain_example_runs_end_to_end(tmp_path):
    env = {**os.environ, "HGUARD_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "langchain_rag.py"), "--runs", str(tmp_path), "--max-new-tokens", "16"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    routes = [line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("route:")]
    assert len(routes) == 3 and set(routes) <= {"accept", "review", "abstain"}, proc.stdout
    # no question is left unscored: a RAG request that reaches no domain is scored by the fallback domain
    scored = [line for line in proc.stdout.splitlines() if line.strip().startswith(("route:", "tutorial route:"))]
    assert not [line for line in scored if "risk: n/a" in line or "domain: None" in line], proc.stdout
    assert "australia.txt" in proc.stdout and "fabricated" in proc.stdout
    tutorial = [line.split()[2] for line in proc.stdout.splitlines() if line.strip().startswith("tutorial route:")]
    assert len(tutorial) == 1 and tutorial[0] in ("accept", "review", "abstain") and "grounding scored: n/a" not in proc.stdout
    assert audit_mod.verify(tmp_path / "hguard-audit.jsonl").ok


def test_tutorial_chain_scores_the_retrieved_passages_on_the_default_model(real_guard):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from langchain_hguard import GuardedOutputParser

    prompt = ChatPromptTemplate.from_messages([(
        "human",
        "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
        "answer the question. If you don't know the answer, just say that you don't know. Use three sentences "
        "maximum and keep the answer concise.\nQuestion: {question} \nContext: {context} \nAnswer:",
    )])

    def format_docs(docs):
        return "\n\n".join(d.page_content for d in docs)

    def chain_over(texts):
        store = InMemoryVectorStore(HGuardEmbeddings())
        store.add_texts(texts)
        return {"context": store.as_retriever(search_kwargs={"k": 1}) | format_docs, "question": RunnablePassthrough()} | prompt | ChatHGuard(guard=real_guard)

    canberra = (chain_over(["Canberra is the capital city of Australia."]) | GuardedOutputParser()).invoke("What is the capital of Australia?")
    kenya = (chain_over(["Nairobi is the capital and largest city of Kenya."]) | GuardedOutputParser()).invoke("What is the capital of Australia?")
    for ans, passage in ((canberra, "Canberra"), (kenya, "Nairobi")):
        rec = AuditLog(real_guard.audit.path).find(ans.audit_id)
        assert passage in rec["context"] and rec["question"] == "What is the capital of Australia?"
        assert ans.signals["grounding"] is not None and ans.route in ("accept", "review", "abstain")
    text = (chain_over(["Canberra is the capital city of Australia."]) | StrOutputParser()).invoke("What is the capital of Australia?")
    assert isinstance(text, str) and text
