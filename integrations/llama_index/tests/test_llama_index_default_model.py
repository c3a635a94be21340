"""End to end with the real default model (SmolLM2-135M-Instruct) under the default policy: real
retrieval from a VectorStoreIndex over examples/docs into the guarded model, and the example script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

from hguard import audit as audit_mod
from hguard.audit import AuditLog
from llama_index.llms.hguard import HGuardEmbedding, HGuardLLM, HGuardQueryEngine

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.default_model


def test_query_engine_end_to_end_on_the_default_model(real_guard):
    docs = SimpleDirectoryReader(str(REPO / "examples" / "docs"), required_exts=[".txt"]).load_data()
    index = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
    engine = HGuardQueryEngine(index.as_retriever(similarity_top_k=2), HGuardLLM(real_guard))
    r = engine.query("What is the chemical formula of water?")
    assert r.source_nodes[0].node.metadata["file_name"] == "water.txt"
    meta = r.metadata
    assert meta["route"] in ("accept", "review", "abstain") and meta["reasons"] and meta["model_name"] == "SmolLM2-135M-Instruct"
    assert not any("generation_mismatch" in r for r in meta["reasons"]), meta["reasons"]  # generated as calibrated
    decision = AuditLog(real_guard.audit.path).find(meta["audit_id"])
    assert "H2O" in decision["context"] and decision["signals"]["grounding"] is not None
    shown = {"accept": decision["answer"], "abstain": real_guard.policy.abstain_message_of(decision["domain"]),
             "review": real_guard.policy.review_message}[meta["route"]]  # the default policy holds answers for review
    assert r.response == shown


def test_a_long_clause_full_of_figures_is_packed_into_prompts_the_model_takes(real_guard):
    """A legal team's clause over the model's window, packed as the stock compact/refine synthesizer packs it (by
    LlamaIndex's tiktoken count, in the window HGuardLLM tells it): each step's prompt was 8,165 + 32 tokens of 8,192
    and refused. Every step now fits, each refine step repacked as LlamaIndex repacks it."""
    from llama_index.core import get_response_synthesizer
    from llama_index.core.indices.prompt_helper import PromptHelper
    from llama_index.core.prompts.prompt_utils import get_biggest_prompt

    gen = real_guard.generator
    llm = HGuardLLM(real_guard)
    question = "Within how many business days shall the Supplier deliver the goods described in Schedule 350?"
    clause = " ".join(f"Section {i}. The Supplier shall deliver the goods described in Schedule {i} within {i + 3} "
                      f"business days of the purchase order, and any delay shall entitle the Buyer to liquidated damages "
                      f"of {i} percent of the order value per week." for i in range(1, 700))
    helper = PromptHelper.from_llm_metadata(llm.metadata)
    synth = get_response_synthesizer(llm=llm, response_mode="compact")
    qa = synth._text_qa_template.partial_format(query_str=question)
    refine = synth._refine_template.partial_format(query_str=question, existing_answer="Within 353 business days.")
    counted = []
    for i, chunk in enumerate(helper.repack(get_biggest_prompt([qa, refine]), [clause], llm=llm)):
        for step in helper.repack(qa if i == 0 else refine, [chunk], llm=llm):
            counted.append(len(gen.prompt_ids(question, step, within_limit=False)) + gen.max_new_tokens)
    assert len(counted) > 1 and max(counted) <= gen.context_limit, counted


@pytest.mark.slow
def test_llamaindex_example_runs_end_to_end(tmp_path):
    env = {**os.environ, "HGUARD_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "llamaindex_rag.py"), "--runs", str(tmp_path), "--max-new-tokens", "16"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    routes = [line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("route:")]
    assert len(routes) == 3 and set(routes) <= {"accept", "review", "abstain"}, proc.stdout
    assert "japan.txt" in proc.stdout and "fabricated" in proc.stdout
    kinds = [r["kind"] for r in AuditLog(tmp_path / "hguard-audit.jsonl")]
    assert kinds.count("decision") == kinds.count("llm_call") == kinds.count("query") == 3
    assert audit_mod.verify(tmp_path / "hguard-audit.jsonl").ok


def test_stock_query_and_chat_engines_on_the_default_model(real_guard):
    docs = SimpleDirectoryReader(str(REPO / "examples" / "docs"), required_exts=[".txt"]).load_data()
    index = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())
    llm = HGuardLLM(real_guard)
    r = index.as_query_engine(llm=llm, similarity_top_k=2).query("What is the capital of Australia?")
    meta = r.metadata
    assert meta["route"] in ("accept", "review", "abstain") and meta["signals"]["grounding"] is not None
    decision = AuditLog(real_guard.audit.path).find(meta["audit_id"])
    assert "Canberra" in decision["context"] and decision["question"] == "What is the capital of Australia?"
    chat = index.as_chat_engine(llm=llm, similarity_top_k=2).chat("What is the capital of Japan?")
    assert chat.metadata["signals"]["grounding"] is not None
    assert "Tokyo" in AuditLog(real_guard.audit.path).find(chat.metadata["audit_id"])["context"]
