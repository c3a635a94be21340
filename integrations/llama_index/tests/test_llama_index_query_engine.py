"""HGuardQueryEngine over a real VectorStoreIndex (hguard's sentence embedder) built from the documents
in examples/docs, answering with the tiny calibrated model; and the instrumentation audit handler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse

from hguard import audit as audit_mod
from hguard.audit import AuditLog
from hguard.errors import HGuardError, InputError
from hguard.streaming import blank
from llama_index.llms.hguard import HGuardAuditEventHandler, HGuardEmbedding, HGuardLLM, HGuardQueryEngine

DOCS = Path(__file__).resolve().parents[3] / "examples" / "docs"
AUSTRALIA = "what is the capital of australia ?"


@pytest.fixture(scope="module")
def index():
    docs = SimpleDirectoryReader(str(DOCS), required_exts=[".txt"]).load_data()
    return VectorStoreIndex.from_documents(docs, embed_model=HGuardEmbedding())


@pytest.fixture
def retriever(index):
    return index.as_retriever(similarity_top_k=2)


def _file(node) -> str:
    return node.node.metadata["file_name"]


def test_embedding_and_retrieval(retriever):
    emb = HGuardEmbedding()
    v = np.array(emb.get_text_embedding_batch(["Paris is the capital of France.", "Gold has the symbol Au."]))
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert len(asyncio.run(emb.aget_query_embedding("gold"))) == 384
    assert _file(retriever.retrieve(AUSTRALIA)[0]) == "australia.txt"
    assert _file(retriever.retrieve("Which element has the symbol Au?")[0]) == "gold.txt"


@pytest.mark.parametrize("method", ["aget_query_embedding", "aget_text_embedding"])
def test_an_interrupt_reaches_an_async_embedding_while_it_is_computed(interrupted_while_encoding, method):
    """A Jupyter kernel's interrupt while the embedder loads or encodes (an async query's retrieval) reaches the
    caller at once: awaited with asyncio.to_thread, it was seen only once the work had ended."""
    assert interrupted_while_encoding(lambda embedder: getattr(HGuardEmbedding(embedder), method)("gold"))


def test_query_returns_display_text_decision_and_source_nodes(make_guard, retriever):
    guard = make_guard("review")
    engine = HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha"))
    r = engine.query(AUSTRALIA)
    assert isinstance(r, Response) and r.response.startswith("[needs review] ")
    assert r.metadata["route"] == "review" and r.metadata["domain"] == "alpha"
    assert all(k in r.metadata for k in ("risk", "signals", "reasons", "audit_id"))
    assert [_file(n) for n in r.source_nodes][0] == "australia.txt" and len(r.source_nodes) == 2
    rec = AuditLog(guard.audit.path).find(r.metadata["audit_id"])
    assert "Canberra is the capital city of Australia." in rec["context"] and rec["question"] == AUSTRALIA
    assert r.metadata["signals"]["grounding"] is not None


def test_async_query_and_streaming_query(make_guard, retriever):
    guard = make_guard("abstain")
    engine = HGuardQueryEngine.from_guard(retriever, guard, domain="alpha")
    r = asyncio.run(engine.aquery("which element has the symbol au ?"))
    assert r.response == guard.policy.abstain_message and _file(r.source_nodes[0]) == "gold.txt"

    passthrough = HGuardQueryEngine.from_guard(retriever, guard, domain="alpha", streaming=True, stream_mode="passthrough")
    s = passthrough.query(AUSTRALIA)
    assert isinstance(s, StreamingResponse) and s.metadata == {}  # filled once the stream is consumed
    tokens = list(s.response_gen)
    assert len(tokens) >= 2 and s.metadata["route"] == "abstain"
    assert tokens[-1] == "\n\n[" + guard.policy.abstain_message + "]"  # a held answer's stream ends saying so
    assert "".join(tokens[:-1]).strip() == AuditLog(guard.audit.path).find(s.metadata["audit_id"])["answer"]

    hold = HGuardQueryEngine.from_guard(retriever, guard, domain="alpha", streaming=True)
    assert list(hold.query(AUSTRALIA).response_gen) == [guard.policy.abstain_message]

    # aquery streams as the stock engines' aquery does, and the event loop runs while the answer is generated (a
    # synchronous stream held it for the whole answer: a ticker beside it stopped)
    async def streamed():
        ticks = []

        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        r = await passthrough.aquery(AUSTRALIA)
        before = len(ticks)
        tokens = [x async for x in r.async_response_gen()]
        t.cancel()
        return r, tokens, len(ticks) - before

    r, tokens, ticked = asyncio.run(streamed())
    assert isinstance(r, AsyncStreamingResponse) and r.metadata["route"] == "abstain" and len(tokens) >= 2
    assert "".join(tokens[:-1]).strip() == AuditLog(guard.audit.path).find(r.metadata["audit_id"])["answer"]
    assert ticked >= 2


def test_audit_handler_records_queries_and_llm_calls(make_guard, retriever, root_handler):
    guard = make_guard("accept")
    handler = root_handler(HGuardAuditEventHandler.from_guard(guard))
    engine = HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha"), audit_handler=handler)
    r = engine.query(AUSTRALIA)
    records = list(AuditLog(guard.audit.path))
    assert [x["kind"] for x in records] == ["decision", "llm_call", "query"]
    decision, call, query = records
    assert call["decision_audit_id"] == decision["id"] == r.metadata["audit_id"] == query["decision_audit_id"]
    assert call["hguard"]["route"] == query["hguard"]["route"] == "accept" and call["status"] == "ok"
    assert call["question"] == AUSTRALIA and "Canberra" in " ".join(call["context"]) and call["model_name"] == "tiny-llama"
    # llama-index-core before 0.14 sends to_dict() as the events' model_dict: the model's name is in it too (the
    # records held model_name None at 0.12.25, a floors trial)
    assert HGuardLLM(guard, domain="alpha").to_dict()["model_name"] == "tiny-llama"
    assert query["question"] == AUSTRALIA and query["answer"] == r.response
    assert [s["file_name"] for s in query["sources"]][0] == "australia.txt"
    assert audit_mod.verify(guard.audit.path).ok and handler.errors == []
    # no domain asked for: the records name the one the guard chose, as its decision does
    HGuardQueryEngine(retriever, HGuardLLM(guard), audit_handler=handler).query(AUSTRALIA)
    decision, call, query = list(AuditLog(guard.audit.path))[-3:]
    assert decision["domain"] is not None, decision["reasons"]
    assert call["domain"] == query["domain"] == decision["domain"]


def test_a_chat_call_is_one_llm_call_record(make_guard, root_handler):
    """HGuardLLM's chat answers through its completion code without a completion call of its own: one decision,
    one llm_call record (api chat), sync, async and streamed (new-user trial: a chat wrote two)."""
    from llama_index.core.llms import ChatMessage

    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler.from_guard(guard))
    llm = HGuardLLM(guard, domain="alpha")
    passage = ChatMessage(role="user", content="Canberra is the capital city of Australia.", additional_kwargs={"name": "context"})
    calls = (lambda m: llm.chat(m), lambda m: asyncio.run(llm.achat(m)), lambda m: list(llm.stream_chat(m))[-1])
    for i, call in enumerate(calls):
        call([passage, ChatMessage(role="user", content=AUSTRALIA)])
        new = [r for r in AuditLog(guard.audit.path) if r["kind"] in ("decision", "llm_call")][2 * i:]
        assert [r["kind"] for r in new] == ["decision", "llm_call"], [r["kind"] for r in new]
        assert new[1]["api"] == "chat" and new[1]["decision_audit_id"] == new[0]["id"]


def test_audit_handler_records_a_failed_call(make_guard, root_handler, tmp_path):
    guard = make_guard("accept")
    root_handler(HGuardAuditEventHandler(tmp_path / "calls.jsonl", record_starts=True))
    with pytest.raises(InputError):
        HGuardLLM(guard, domain="alpha").complete(" ".join(["capital"] * 300))  # over the 256-token window
    start, end = AuditLog(tmp_path / "calls.jsonl")
    assert start["event"] == "start" and end["status"] == "error" and "InputError" in end["error"]
    assert end["span_id"] == start["span_id"]


def test_a_failing_audit_write_is_raised_by_the_engine_not_lost(make_guard, retriever, root_handler, tmp_path):
    guard = make_guard("accept")
    keyed = tmp_path / "keyed.jsonl"
    # a log whose records carry a keyed MAC: a writer without the key refuses to append to it
    keyed.write_text('{"hash":"' + "0" * 64 + '","kind":"query","mac":"' + "0" * 64 + '","seq":0}\n')
    handler = root_handler(HGuardAuditEventHandler(keyed))
    engine = HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha"), audit_handler=handler)
    with pytest.raises(HGuardError):
        engine.query(AUSTRALIA)
    assert handler.errors == []  # raised once, then cleared
    # without audit_handler the dispatcher drops the error; the handler keeps it for raise_if_failed
    HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha")).query(AUSTRALIA)
    assert len(handler.errors) == 2  # the llm_call and the query record both failed
    with pytest.raises(HGuardError):
        handler.raise_if_failed()


def test_bad_queries_are_named_and_an_empty_retrieval_goes_to_review(make_guard, retriever):
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    guard = make_guard("accept")
    llm = HGuardLLM(guard, domain="alpha")
    engine = HGuardQueryEngine(retriever, llm)
    for empty in ("", "   "):
        with pytest.raises(InputError, match="the question is empty"):
            engine.query(empty)  # LlamaIndex's own vector store raised a TypeError
    with pytest.raises(InputError, match="the query must be a string or a QueryBundle, got int"):
        engine.query(42)
    with pytest.raises(InputError, match="HGuardLLM takes the question .* as a string, got NoneType"):
        llm.complete(None)

    class Nothing(BaseRetriever):
        def _retrieve(self, query_bundle):
            return []

    class Invisible(BaseRetriever):  # nodes of whitespace and invisible characters alone hold no passage either
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text=t), score=1.0) for t in (" \n", "\u200b\ufeff")]

    nothing = HGuardQueryEngine(Nothing(), llm)
    invisible = HGuardQueryEngine(Invisible(), llm)
    for r in (nothing.query(AUSTRALIA), asyncio.run(nothing.aquery(AUSTRALIA)), invisible.query(AUSTRALIA)):
        assert r.metadata["route"] == "review"  # the domain accepts; nothing to ground in
        assert all(blank(n.node.get_content()) for n in r.source_nodes), r.source_nodes  # the nodes, as found
        assert any("nothing retrieved: the retriever" in x for x in r.metadata["reasons"]), r.metadata["reasons"]
    streamed = HGuardQueryEngine(Nothing(), llm, streaming=True).query(AUSTRALIA)
    assert "".join(streamed.response_gen) and streamed.metadata["route"] == "review"
    assert engine.query(AUSTRALIA).metadata["route"] == "accept"


@pytest.mark.parametrize("domain", [5, "", "   ", "d" * 300, ["alpha"]])
def test_a_bad_domain_is_refused_at_construction_in_one_line(make_guard, retriever, domain):
    """HGuardQueryEngine(retriever, llm, domain=5) was taken: refused only at the first query, after its retrieval,
    and a blank domain was read as none (the LLM's, or one chosen by similarity). Refused when the engine is built,
    in one line naming the value and the fix, as HGuardLLM's and HGuardCheck's domain settings are."""
    guard = make_guard("accept")
    before = len(list(AuditLog(guard.audit.path)))
    for build in (lambda: HGuardQueryEngine(retriever, HGuardLLM(guard), domain=domain),
                  lambda: HGuardQueryEngine.from_guard(retriever, guard, domain=domain)):
        with pytest.raises(InputError) as err:
            build()
        said = str(err.value)
        assert said.startswith(f"HGuardQueryEngine: domain={domain!r:.60} is not a domain name") and "\n" not in said
        assert said.endswith("name a domain of the policy, or leave it out (None) to choose one by similarity")
    assert len(list(AuditLog(guard.audit.path))) == before  # nothing asked, nothing recorded
    assert HGuardQueryEngine(retriever, HGuardLLM(guard), domain="alpha").query(AUSTRALIA).metadata["domain"] == "alpha"


@pytest.mark.parametrize("streaming", ["yes", "no", 1, None])
def test_a_streaming_setting_that_is_not_a_bool_is_refused_at_construction_in_one_line(make_guard, retriever, streaming):
    """HGuardQueryEngine(retriever, llm, streaming="no") was taken unchecked: "no" (truthy) returned a
    StreamingResponse where a Response was asked for. Refused when the engine is built, in one line naming the value
    and the fix, as HGuardLLM's strict bool settings are."""
    guard = make_guard("accept")
    for build in (lambda: HGuardQueryEngine(retriever, HGuardLLM(guard), streaming=streaming),
                  lambda: HGuardQueryEngine.from_guard(retriever, guard, streaming=streaming)):
        with pytest.raises(InputError) as err:
            build()
        said = str(err.value)
        assert said == (f"HGuardQueryEngine: streaming={streaming!r} is not True or False ({type(streaming).__name__}); "
                        "pass streaming=True or streaming=False")
    engine = HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha"), streaming=False)
    assert engine.query(AUSTRALIA).metadata["route"] == "accept"


def test_a_refused_query_writes_an_error_record_whose_id_the_error_carries(make_guard, retriever):
    """As Guard.invoke refuses a bad question (new-user trial: the engine refused it with no record, audit_id None)."""
    guard = make_guard("accept")
    engine = HGuardQueryEngine(retriever, HGuardLLM(guard, domain="alpha"))
    for query in ("   ", lambda: asyncio.run(engine.aquery(""))):
        with pytest.raises(InputError, match="the question is empty") as err:
            query() if callable(query) else engine.query(query)
        rec = AuditLog(guard.audit.path).find(err.value.audit_id)
        assert rec["kind"] == "error" and "the question is empty" in rec["error"] and rec["domain"] == "alpha"



def test_a_blank_node_among_others_is_named_in_the_reasons(make_guard):
    """HGuardQueryEngine dropped a blank retrieved node without a word, where Guard.invoke names a blank passage."""
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class Mixed(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text=t), score=1.0) for t in ("\u200b ", "Canberra is the capital of Australia.")]

    guard = make_guard("review")
    r = HGuardQueryEngine(Mixed(), HGuardLLM(guard, domain="alpha")).query(AUSTRALIA)
    said = [x for x in r.metadata["reasons"] if "empty and left out" in x]
    assert said and "1 of the 2 retrieved passages (number 0" in said[0], r.metadata["reasons"]
    assert "Canberra is the capital of Australia." in str(AuditLog(guard.audit.path).find(r.metadata["audit_id"])["context"])


@pytest.mark.parametrize("bad", ["yes", 0, None])
def test_an_event_handler_record_starts_that_is_not_a_bool_is_refused(tmp_path, bad):
    """HGuardAuditEventHandler(record_starts="yes") was coerced by pydantic's lax bool (0 and None too): refused in one
    line naming it, as the adapters' other bool settings are."""
    with pytest.raises(InputError, match=r"^HGuardAuditEventHandler: record_starts=.* is not True or False"):
        HGuardAuditEventHandler(tmp_path / "calls.jsonl", record_starts=bad)
