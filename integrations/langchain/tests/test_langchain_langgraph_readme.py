"""The README's LangGraph recipes, run as written on the tiny model: langgraph is no dependency of the project, so this
is skipped where it is not installed (it was checked with langgraph 1.2 and langgraph-prebuilt 1.1)."""

from __future__ import annotations

import re
import textwrap
import uuid
import warnings
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.documents import Document

from hguard.audit import AuditLog
from langchain_hguard import ChatHGuard

pytest.importorskip("langgraph", reason="langgraph is not installed (no dependency of the project)")

README = Path(__file__).resolve().parents[1] / "README.md"
AUSTRALIA = "what is the capital of australia ?"
PASSAGES = ["Canberra is the capital city of Australia."]


def _recipes() -> list[str]:
    """The python blocks of the README's "LangGraph" section, in order (as a list item indents them)."""
    text = README.read_text()
    section = text.split("\n## LangGraph\n", 1)[1].split("\n## ", 1)[0]
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)\n *```", section, flags=re.S)]


def _decisions(guard) -> list[dict]:
    return [r for r in AuditLog(guard.audit.path) if r["kind"] == "decision"]


def test_the_human_review_recipe_queues_one_item_and_records_the_verdict(make_guard):
    from langgraph.checkpoint.memory import MemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    guard = make_guard("review")
    chat = ChatHGuard(guard=guard, domain="alpha")
    ns: dict[str, Any] = {"chat": chat, "guard": guard, "interrupt": interrupt}
    exec(_recipes()[0], ns)

    class State(TypedDict, total=False):
        question: str
        passages: list[str]
        answer: Any
        verdict: str

    g = StateGraph(State)
    g.add_node("generate", ns["generate"])
    g.add_node("human_review", ns["human_review"])
    g.add_edge(START, "generate")
    g.add_edge("generate", "human_review")
    g.add_edge("human_review", END)
    graph = g.compile(checkpointer=MemorySaver())
    cfg = {"configurable": {"thread_id": str(uuid.uuid4())}}
    out = graph.invoke({"question": AUSTRALIA, "passages": PASSAGES}, cfg)
    asked = out["__interrupt__"][0].value
    assert asked["audit_id"] == _decisions(guard)[0]["id"] and asked["answer"] == _decisions(guard)[0]["answer"]
    assert graph.get_state(cfg).values["answer"].response_metadata["route"] == "review"  # kept by the checkpointer
    done = graph.invoke(Command(resume={"verdict": "correct", "reviewer": "alice"}), cfg)
    assert done["verdict"] == "correct" and len(_decisions(guard)) == 1  # the resumed node did not call the model
    assert guard.review_queue.queued_ids() == {asked["audit_id"]}
    assert guard.review_queue.get(asked["audit_id"]).verdict.verdict == "correct"


def test_the_agent_recipe_leaves_held_turns_out_of_what_the_model_reads(make_guard):
    from langgraph.checkpoint.memory import MemorySaver

    with warnings.catch_warnings():  # langgraph 1.x: deprecated for langchain.agents.create_agent
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    guard = make_guard("review")
    ns: dict[str, Any] = {"chat": ChatHGuard(guard=guard, domain="alpha"), "MemorySaver": MemorySaver,
                          "create_react_agent": create_react_agent}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(_recipes()[1], ns)
    cfg = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for q in (AUSTRALIA, "and what is its population ?"):
        out = ns["agent"].invoke({"messages": [("user", q)]}, cfg)
    assert len(out["messages"]) == 4  # the state keeps every turn
    first, second = _decisions(guard)
    assert not second.get("history") and second["question"] == "and what is its population ?"
    from langchain_core.messages import AIMessage, HumanMessage

    accepted = AIMessage("Canberra.", response_metadata={"route": "accept"})
    kept = ns["accepted_turns"]({"messages": [HumanMessage("q1"), accepted, HumanMessage("q2"), out["messages"][1],
                                              HumanMessage("q3")]})["llm_input_messages"]
    assert [m.content for m in kept] == ["q1", "Canberra.", "q3"]


def test_the_rag_tutorials_retrieve_node_is_read_through_a_retriever_as_the_recipe_says(make_guard):
    """The LangGraph RAG tutorial's graph as written (its retrieve node calls ``vector_store.similarity_search``, its
    generate node pastes the documents into the hub's "rlm/rag-prompt"): no retriever run, so every answer goes to
    review "context not identified". The README's recipe: its retrieve node (through ``as_retriever()``, the same
    documents) with the tutorial's generate node, or the tutorial's retrieve node with a generate node that gives the
    passages as ``context=``: the retrieved passages are the answer's context, and it is accepted."""
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.vectorstores import InMemoryVectorStore
    from langgraph.graph import START, StateGraph

    from langchain_hguard import HGuardEmbeddings

    docs = Path(__file__).resolve().parents[3] / "examples" / "docs"
    vector_store = InMemoryVectorStore(HGuardEmbeddings())
    vector_store.add_documents([Document(page_content=p.read_text().strip(), metadata={"source": p.name})
                                for p in sorted(docs.glob("*.txt"))])
    prompt = ChatPromptTemplate.from_messages([(  # hub "rlm/rag-prompt", as the tutorial pulls it
        "human",
        "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to "
        "answer the question. If you don't know the answer, just say that you don't know. Use three sentences "
        "maximum and keep the answer concise.\nQuestion: {question} \nContext: {context} \nAnswer:",
    )])
    guard = make_guard("accept")
    llm = ChatHGuard(guard=guard, domain="alpha")

    class State(TypedDict):
        question: str
        context: list[Document]
        answer: str

    def retrieve(state: State):  # the tutorial's nodes, as written
        retrieved_docs = vector_store.similarity_search(state["question"])
        return {"context": retrieved_docs}

    def generate(state: State):
        docs_content = "\n\n".join(doc.page_content for doc in state["context"])
        messages = prompt.invoke({"question": state["question"], "context": docs_content})
        response = llm.invoke(messages)
        return {"answer": response.content}

    def run(*nodes) -> dict:
        builder = StateGraph(State).add_sequence(list(nodes))
        builder.add_edge(START, nodes[0].__name__)
        out = builder.compile().invoke({"question": AUSTRALIA})
        return {**out, "decision": _decisions(guard)[-1]}

    tutorial = run(retrieve, generate)
    assert tutorial["decision"]["route"] == "review"
    assert any("context not identified" in r for r in tutorial["decision"]["reasons"]), tutorial["decision"]["reasons"]
    ns: dict[str, Any] = {"vector_store": vector_store, "chat": llm, "State": State}
    exec(_recipes()[2], ns)
    found = [d.page_content for d in tutorial["context"]]
    for nodes in ((ns["retrieve"], generate), (retrieve, ns["generate"])):
        out = run(*nodes)
        assert [d.page_content for d in out["context"]] == found  # the same documents
        decision = out["decision"]
        assert decision["route"] == "accept", decision["reasons"]
        assert decision["question"] == AUSTRALIA and all(d in decision["context"] for d in found), decision
