"""``ChatHGuard``: a LangChain chat model whose every answer went through an hguard ``Guard``."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Literal, Sequence

from langchain_core.caches import BaseCache
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk, ChatMessage, HumanMessage, SystemMessage,
                                     UsageMetadata)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, get_config_list
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from hguard._guard_records import request_error
from hguard._decoding import _check_stop
from hguard.errors import InputError
from hguard.generation import check_system
from hguard.guard import Guard, GuardResult, _join_context, batch_refused

from hguard.errors import strict_bool
from hguard.streaming import (  # DECISION_KEYS: keys of AIMessage.response_metadata with the guard's decision
    DECISION_KEYS,
    asks_for_actions,
    STREAM_MODES,
    StreamMode,
    appears_in,
    blank,
    MIN_PASTED_CHARS,
    pasted_changed,
    pasted_part,
    unescaped_prompt,
    check_raise_on,
    answers_as_context,
    check_stream_mode,
    context_not_identified,
    HISTORY_DECISION,
    held_texts,
    lists_answers,
    decision_metadata,
    decided_here,
    delivering,
    delivering_stream,
    adelivering_stream_lazy,
    aguard_stream,
    guard_stream,
    guarded_invoke,
    in_thread,
    label_only,
    question_label_only,
    CHAT_FORMAT_MARKS,
    unread_context,
    NOTHING_RETRIEVED,
    nothing_retrieved,
    raise_if_routed,
    refuse_unknown_settings,
    settings_error,
    to_thread_awake,
    until_delivered,
    with_text,
    CANCELLED,
)

from .retrieval import CAPTURE, config_thread, parent_run_of

#: why an answer goes to review when its passages are the chain run's own earlier answers (a map-reduce's reduce step)
_ANSWERS_AS_CONTEXT = answers_as_context(
    "answers that ChatHGuard or GuardedRAG gave earlier in the same chain run or thread, or a held answer's "
    "abstain or review message: a map-reduce's reduce step combining its map answers, a step resumed after an "
    "interrupt given the draft from before it", "deliver each answer with its own decision, or "
    "answer the question from the retrieved documents themselves")
CONTEXT_NAME = "context"
_NO_STRUCTURED = (
    "ChatHGuard has no structured output (JSON mode, a response format): the guard scores free-text answers (its "
    "probes were calibrated on them) and cannot constrain generation to a schema; parse the text downstream"
)
_NO_TOOLS = (
    "ChatHGuard does not call tools: the guard scores a free-text answer to a question, and its probes "
    "were calibrated on such answers, not on tool calls; run tools before the model and pass their "
    "output as context"
)
# kwarg that hands a result computed by one batched generation to the per-input run (internal)
_PRECOMPUTED = "_hguard_precomputed"
# kwarg that hands the chain's run to a streamed call (langchain-core calls _stream without its run manager: stream(),
# and an invoke it streams because a streaming handler listens)
_PARENT_RUN = "_hguard_parent_run"
_RUN_ID = "_hguard_run_id"  # a streamed call's own run id (langchain-core runs _stream without its run manager)
# kwarg that hands a calling runnable's problems (e.g. nothing retrieved) to the guard (internal)
_PROBLEMS = "_hguard_problems"
_CANCEL = "_hguard_cancel"  # an async call's cancel event: set when the caller leaves, it stops the generation
# the thread the call's config names (``retrieval.config_thread``: its configurable's or metadata's thread_id, session_id
# or conversation_id): a plain LangChain app's configurable is in no run's metadata (LangGraph copies it there;
# langchain-core does not), nor is the call's own metadata read from its parent run; read by the entry points
_THREAD = "_hguard_thread"
_CHUNK_HAS_POSITION = "chunk_position" in AIMessageChunk.model_fields
#: the fix named when a setting is refused at construction (a validator's own message names its fix already)
_SETTING_FIXES = {"guard": "pass the hguard Guard that answers (Guard.from_policy(...)), or use ChatHGuard.from_policy",
                  "domain": "name a domain of the policy, or leave it out (None) to choose one by similarity",
                  "stream_mode": "pass 'hold' (nothing unchecked reaches the user) or 'passthrough'",
                  "early_stop": "pass True or False",
                  "system_as_context": "pass True or False",
                  "stop": "pass a list of stop strings, or leave it out"}


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:  # dropping it would answer a question the user did not ask
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InputError(
                f"ChatHGuard reads text only: a {_role(message)} message holds a {kind!r} content block; the guarded "
                "model answers text (and its probes were calibrated on text), so pass the question as text"
            )
    return "\n".join(parts)  # two text blocks are two lines, not one run-together word ("capitalof")


def any_text(message: BaseMessage) -> str:
    """A message's text for a record or a count, whatever its content (ChatHGuard itself refuses non-text blocks)."""
    try:
        return message_text(message)
    except InputError:
        return str(message.content)


_CHAT_KINDS = {"user": HumanMessage, "human": HumanMessage, "assistant": AIMessage, "ai": AIMessage,
               "system": SystemMessage}


def _as_kind(message: BaseMessage) -> BaseMessage:
    """A ``ChatMessage`` whose role is a kind of its own ("user", "assistant", "system") as that kind's message, and a
    streamed chunk without tool calls (``RunnableWithMessageHistory`` keeps a ``stream()`` turn's ``AIMessageChunk``:
    the next turn was refused as a tool call) as its whole kind's; any other message as it is."""
    kind = _CHAT_KINDS.get(str(getattr(message, "role", "")).lower()) if isinstance(message, ChatMessage) else None
    if kind is None and isinstance(message, BaseMessageChunk) and not getattr(message, "tool_calls", None) \
            and not getattr(message, "tool_call_chunks", None):
        kind = _CHAT_KINDS.get(message.type.removesuffix("MessageChunk").lower())
    return kind(content=message.content, name=message.name, id=message.id) if kind is not None else message


def _role(message: BaseMessage) -> str:
    """A message's role as its author wrote it: a ``ChatMessage``'s own role ("developer"), not its type ("chat")."""
    return str(message.role) if isinstance(message, ChatMessage) else message.type


def _is_context(message: BaseMessage) -> bool:
    """Whether a message is named as context ("context", any case: "Context" is how people write it)."""
    return str(getattr(message, "name", None) or "").strip().lower() == CONTEXT_NAME


# before a template's field: a line's start, a label's colon, a sentence's end or a tag ("[QUESTION]", "<q>"), then
# nothing but marks (quotes, "**", brackets); after it: marks to the line's end, or a closing tag
_BEFORE_FIELD = re.compile(r"(?:\A|[\n:\uff1a.!?\u3002\uff1f\]>])[^\w\n]*\Z")
_AFTER_FIELD = re.compile(r"^[^\w\n]*(?:</\w+>)?[^\w\n]*(?:\n|$)")


def asks(query: str, prompt: str, values: Sequence[str] | None = None) -> bool:
    """Whether ``prompt`` (a RAG template's text, its passages taken out) asks ``query`` as its question, where the
    prompt template's own variables are not known (the messages were built by hand): the query stands as a field of
    its own, the whole rest of a line after a label, a sentence's end or a tag, up to marks and the line's end
    ("Question: {q}", "**Question:** {q}", "<question>{q}</question>", "« {q} »"). A keyword the retriever searched
    with that appears in the passages, or inside the user's own sentence ("Nile" in "Where do the Nile's branches
    meet?", "Canberra" in 'what does "Canberra" mean?'), is not the question asked (a LangChain power user's trial:
    the answer to the keyword was scored and accepted). ``values``: the values the chain's prompt templates were
    formatted with, when known: the query must also be one of them (a variable of its own)."""
    words = query.split()
    if not words or (values is not None and not any(v.split() == words for v in values)):
        return False
    for m in re.finditer(r"\s+".join(map(re.escape, words)), prompt):
        if _BEFORE_FIELD.search(prompt[: m.start()]) and _AFTER_FIELD.match(prompt[m.end():]):
            return True
    return False


#: the sentences of LangChain's stock RAG prompts that only frame the passages (the RAG tutorial's system prompt, the
#: hub's "rlm/rag-prompt", the RetrievalQA prompts, the LCEL cookbook's, ``create_retrieval_chain``'s docstring "Use
#: the given context to answer the question. ... Context: {context}" and its common rewordings; an apostrophe may be
#: left out, "the users question", "If you dont know"): a message that holds the passages and, beside
#: them, only these and labels ("Context:") is a RAG template, replaced by hguard's own calibrated framing
STOCK_FRAMING = (
    "You are an assistant for question-answering tasks.",
    "Use the following pieces of retrieved context to answer the question.",
    "Use the following pieces of context to answer the question at the end.",
    "Use the following pieces of context to answer the user's question.",
    "Use the given context to answer the question.",
    "If you don't know the answer, just say that you don't know, don't try to make up an answer.",
    "If you don't know the answer, just say that you don't know.",
    "If you don't know the answer, say that you don't know.",
    "If you don't know the answer, just say you don't know.",
    "If you don't know the answer, politely say you don't know.",
    "If you don't know the answer, say you don't know.",
    "Use three sentences maximum and keep the answer concise.",
    "Use three sentence maximum and keep the answer concise.",
    "Answer the question based only on the following context:",
    "Answer the following question based only on the provided context:",
    "Answer the question based on the context below.",
    "If the question cannot be answered using the information provided answer with \"I don't know\".",
    "If the question cannot be answered using the information provided, answer with \"I don't know\".",
)
_STOCK_FRAMING = [re.compile(r"\s+".join(re.escape(w).replace("'", "['\u2019]?") for w in t.split()), re.IGNORECASE)
                  for t in STOCK_FRAMING]


def _without(text: str, parts: Sequence[str]) -> str:
    """``text`` with each of ``parts`` (pasted passages, as pasted: whatever their spacing) replaced by a line break."""
    for part in parts:
        text = re.sub(r"\s+".join(map(re.escape, part.split())), "\n", text)
    return text


def instruction_beside_passages(text: str, parts: Sequence[str], question: str | None = None) -> str | None:
    """The app's instruction in a message that holds the passages (``parts``, as pasted), or None when the message only
    frames them: its text outside them, labels alone on their line ("Context:", "<context>") left out, unless that
    text is only :data:`STOCK_FRAMING`. ``ChatPromptTemplate([("system", INSTR + "\\n\\nContext:\\n{context}"),
    ("human", "{question}")])`` (LangChain's tutorial shape with an app's own instructions) lost INSTR with the
    template: never given to the model, fingerprinted or recorded, and off-topic answers were accepted (a product
    team's trial). LlamaIndex's adapter reads a custom ``context_template`` so too.

    ``question``: the human message holding the passages also asks the question (the hub's "rlm/rag-prompt" shape,
    ``"{instructions}\\nQuestion: {question}\\nContext: {context}\\nAnswer:"``): the question is taken out too, and
    a line left labelling only the question or the answer ("Question:", "Helpful Answer:") is a label. The app's
    instruction there was dropped with the template, as the system message's was."""
    lines = [CHAT_FORMAT_MARKS.sub(" ", line).strip()
             for line in _without(text, [*parts, *([question] if question else [])]).splitlines()]
    own = re.sub(r"\n{3,}", "\n\n", "\n".join(
        line for line in lines if not label_only(line) and not (question and question_label_only(line)))).strip()
    framing = own
    for stock in _STOCK_FRAMING:
        framing = stock.sub(" ", framing)
    return None if all(label_only(line) for line in framing.splitlines()) else own


def split_messages(messages: Sequence[BaseMessage], *, system_as_context: bool = True) -> tuple[str, list[str]]:
    """(question, context passages) from a chat: the last human message is the question; messages
    named ``"context"`` (any role) and, with ``system_as_context``, system messages are context."""
    read = read_chat(messages, system_as_context=system_as_context)
    return read.question, list(read.context or [])


@dataclass
class ChatRead:
    """What one chat means to the guard (see :func:`read_chat`)."""

    question: str
    context: list[str] | None
    history: list[dict]
    system: str | None
    problems: list[str]
    context_from: str | None  # "named" | "system" | "retriever" | None


def read_chat(
    messages: Sequence[BaseMessage], *, system_as_context: bool = False, retrievals: Sequence[Any] = (),
    prompt_values: Sequence[str] | None = None,
) -> ChatRead:
    """Read a chat the way ``ChatHGuard`` answers it.

    - The last human message not named ``"context"`` is the question; earlier human and AI messages
      are the conversation history (passed to the chat template).
    - Messages named ``"context"`` are context. System messages are instructions (the call's system
      prompt), or context when ``system_as_context`` is set.
    - ``retrievals`` (documents LangChain retrievers returned in the same run): documents whose text was
      pasted into the prompt are the context, in the order retrieved, a blank document as ``""`` and a repeated
      one again (the guard leaves those out and says how many, :func:`hguard.guard.left_out_passages`); the
      message they were pasted into is the RAG prompt template, so the question is the retriever's query and a
      system message holding them is not kept as an instruction. The query is the question asked when it stands in
      the template as a field of its own (:func:`asks`) and, where the chain's prompt templates are known, is one of
      the values they were formatted with (``prompt_values``: a variable of its own, not a word of a passage or of
      another variable's sentence); a keyword or a rewrite leaves the question unknown ("question not identified").
    - A prompt that refers to context (e.g. "Use the following context") when none was identified
      gets the problem ``"context not identified"`` (the guard routes it to review).
    """
    messages = [_as_kind(m) for m in messages]
    q_at = None
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.type == "human" and not _is_context(m):
            q_at = i
            break
    if q_at is None:
        raise InputError(
            f"ChatHGuard needs a human message holding the question; got roles {[_role(m) for m in messages]}"
        )
    after = [f"{i} ({_role(m)})" for i, m in enumerate(messages) if i > q_at and m.type != "system" and not _is_context(m)]
    if after:  # answered as if the chat ended with the question, the later turns were dropped without a word
        raise InputError(
            f"ChatHGuard answers the last human message, but message(s) {', '.join(after)} come after it; end the "
            "chat with the question (earlier turns are the conversation history)"
        )
    texts = [message_text(m) for m in messages]
    question = texts[q_at]
    named = [texts[i] for i, m in enumerate(messages) if _is_context(m)]
    systems = [i for i, m in enumerate(messages) if m.type == "system" and not _is_context(m)]
    context: list[str] = with_text(named)
    context_from = "named" if context else None
    if system_as_context:
        context += with_text([texts[i] for i in systems])
        context_from = context_from or ("system" if context else None)
        systems = []
    problems: list[str] = []
    own: dict[int, str | None] = {}  # a RAG template's message (system or the question's): the instruction beside its passages
    if not context and retrievals:
        docs = [(r, d) for r in retrievals for d in r.documents if not blank(d.page_content)]
        searches = [r.query for r in retrievals if isinstance(r.query, str)]
        # a template or format_docs that HTML-escaped what it pasted (mustache: "&" as "&amp;") is read unescaped
        for i, t in zip([q_at, *systems], unescaped_prompt([texts[i] for i in [q_at, *systems]],
                                                           [d.page_content for _, d in docs], searches)):
            texts[i] = t
        question = texts[q_at]
        prompt_texts = [texts[i] for i in [q_at, *systems]]
        # a document the chain cleaned ends before another document's opening or the question (the query)
        found = [(r, d, pasted_part(d.page_content, prompt_texts, stops=searches + [
            o.page_content[:MIN_PASTED_CHARS] for _, o in docs if o.page_content != d.page_content])) for r, d in docs]
        parts = [part for _, _, part in found if part]
        # what of each document the prompt holds (a chain may cut it); a part that lies inside another document's
        # is that one's text (two files opening with the same header, one of them pasted), not a passage of its own
        kept = [(r, d, part) for r, d, part in found if part and not any(part != o and part in o for o in parts)]
        pasted = [(r, d) for r, d, _ in kept]
        if pasted:  # a document the prompt holds with its text changed cannot be matched: said, not left out unsaid
            # what the chain wrote around the passages found: not the question, nor the retrievers' queries (a short
            # FAQ entry the chain did not paste counted as pasted changed when the question repeated its words); a
            # question message holding none of the passages is the question, given to the model and recorded as such
            asked_alone = not any(appears_in(d.page_content, [texts[q_at]]) for _, d in pasted)
            rest = [_without(t, [part for _, _, part in kept] + with_text(searches))
                    for i, t in zip([q_at, *systems], prompt_texts) if not (i == q_at and asked_alone)]
            unfound = {id(d) for _, d, part in found if not part and pasted_changed(d.page_content, rest)}
            every = [d for r in retrievals for d in r.documents]
            changed = [str(n) for n, d in enumerate(every, 1) if id(d) in unfound]
            if changed:
                problems.append(context_not_identified(
                    f"document {', '.join(changed)} of the {len(every)} the chain's retrievers returned "
                    f"{'is' if len(changed) == 1 else 'are'} in the prompt with its text changed (its opening, or words or "
                    "characters the chain rewrote or escaped, maybe cut to a length) or in part outside the passages "
                    "(quoted in the template's other text), so it could not be matched as a passage: the answer "
                    "would be scored without it while the model read it as part of the prompt's instruction; paste "
                    "each document's text as retrieved, or pass the passages with context="))
        if any(r.rewritten for r, _ in pasted):
            problems.append(context_not_identified(
                "the passages are the model's own rewrite of what a retriever found (a document compressor such as "
                "LLMChainExtractor): text the model wrote cannot ground its answer; retrieve without the compressor, "
                "or paste the documents it found"))
        if pasted:
            seen = list(dict.fromkeys(part for _, _, part in kept))
            # handed on in the order retrieved, a blank document as "" and a repeated one again: the guard uses each
            # text once and its reasons say how many were blank or repeated (left out unsaid, a record showed 4
            # passages used where 6 documents were retrieved)
            by_doc = {id(d): part for _, d, part in kept}
            context = [("" if blank(d.page_content) else by_doc[id(d)]) for r in retrievals for d in r.documents
                       if blank(d.page_content) or id(d) in by_doc]
            context_from = "retriever"
            templated = lambda t: any(appears_in(d.page_content, [t]) for _, d in pasted)  # noqa: E731
            if templated(question):  # the question is the retriever's query when the prompt asks it outside the
                queries = [r.query for r, d in pasted]  # passages; an empty one is refused as empty, not replaced
                searched = with_text(queries)  # by the whole prompt
                outside = _without(question, seen)  # the prompt without its passages
                asked = [q for q in searched if asks(q, outside, prompt_values)]
                if asked or not searched:
                    template_text = question
                    question = (asked or queries)[0]
                    # the app's instruction around the passages and the question in this message, if any, is the
                    # call's (given to the model, fingerprinted, recorded), as in a system message holding them
                    own[q_at] = instruction_beside_passages(template_text, seen, question)
                else:  # searched with other text (keywords, a rewrite): the question asked is the prompt's own
                    for part in seen:
                        question = question.replace(part, " ")
                    problems.append(
                        # the search text is not quoted: a reason is never redacted, and it may be a patient's record
                        f"question not identified: the retriever searched with text ({len(searched[0])} characters) that is not the "
                        "question the prompt asks (not in it, or only inside its passages or a sentence of it), so the question asked cannot be told from the template around the passages; the "
                        "answer is to the prompt's text without its passages. Search with the question itself, or pass "
                        "the question as its own message and the passages with context= or as messages named 'context'")
            # a system message holding the passages is the RAG template: the app's instruction in it, if any, is the
            # call's (given to the model, fingerprinted, recorded), the template's framing is replaced by hguard's
            own.update({i: instruction_beside_passages(texts[i], seen) for i in systems if templated(texts[i])})
            systems = [i for i in systems if own.get(i, texts[i]) is not None]
        elif n := sum(1 for r in retrievals for d in r.documents if not blank(d.page_content)):  # whitespace: nothing
            problems.append(context_not_identified(
                f"the chain's retrievers returned {n} document(s) but none of their text is in the prompt"
            ))
        else:  # the chain's retrievers ran and found nothing: a RAG call with no passage, not a closed-book one
            problems.append(nothing_retrieved("the chain's retrievers"))
            asked = [q for q in with_text([r.query for r in retrievals]) if asks(q, question, prompt_values)]
            if asked:  # the template around an empty context is not the question: the query it holds is (as above)
                question = asked[0]
    # a blank system message is refused, as Guard.invoke(system="") is (dropped, the policy's system prompt answered),
    # also beside passages pasted elsewhere or given as messages named 'context' (reviews: it was dropped silently
    # whenever retrievers ran); only where the retrievers' documents were pasted nowhere and no passage was given may
    # it be their template around no passage
    if not system_as_context and (not retrievals or context_from is not None):
        for i in systems:
            check_system(texts[i], f"ChatHGuard: system message {i}")
    if not context and not problems and (named or (system_as_context and any(m.type == "system" for m in messages))):
        # messages that stand for passages hold no text (a retrieval that found nothing, formatted): the request
        # asked for an answer from passages, so it is never read as a closed-book one, which a domain may accept
        problems.append(nothing_retrieved("the messages named 'context'" if named else "the system messages (context)"))
    unread = unread_context(texts[q_at], *[texts[i] for i in systems]) if not context and not problems else None
    if unread is not None:
        problems.append(context_not_identified(
            f"{unread} but no retrieved documents were found in this run; pass the passages with context=, as "
            "messages named 'context', or from a LangChain retriever in the same chain (a closed-book question "
            "is asked alone)"
        ))
    history = []
    for i, m in enumerate(messages[:q_at]):
        if i in systems or _is_context(m) or m.type == "system":
            continue
        if m.type not in ("human", "ai"):
            raise InputError(
                f"ChatHGuard answers from human, AI, system and context messages; message {i} has role "
                f"{_role(m)!r} (tool calls are not supported: the guard scores text answers)"
            )
        turn: dict[str, Any] = {"role": "user" if m.type == "human" else "assistant", "content": texts[i]}
        decided = getattr(m, "response_metadata", None) or {}
        if m.type == "ai" and isinstance(decided.get("route"), str):  # an answer hguard decided: a held one holds the
            turn[HISTORY_DECISION] = {k: decided.get(k) for k in ("route", "audit_id")}  # follow-up (held_history_turn)
        history.append(turn)
    # the question's own template's instruction follows the system messages', as it follows them in the prompt
    system = "\n\n".join(with_text([own.get(i) or texts[i] for i in systems] + [own.get(q_at) or ""])) or None
    return ChatRead(question, context or None, history, system, problems, context_from)


#: settings hosted chat models take that mean nothing here: accepted (LangChain's standard suites pass them) and unused
#: (a local model has no timeout, retries or key; ``stream_mode`` says how a stream is given, ``streaming`` does not)
UNUSED_SETTINGS = ("timeout", "max_retries", "api_key", "streaming")


def _same_model(model: Any, name: str | None) -> None:
    """A ``model=`` setting or call argument (as hosted chat models take one) must name the guard's own model:
    ChatHGuard cannot switch models, and answering with another than the one asked for would go unnoticed."""
    if model is not None and model != name:
        raise ValueError(f"ChatHGuard answers with {name!r} (the guard's model), got model={model!r}; leave model "
                         "out, or build a ChatHGuard whose guard loads that model")


def _run_id(run_manager: Any) -> str | None:
    """The LangChain run id of this call: an ``answer_not_delivered`` record names it, so the call's
    ``llm_call`` record (written as failed when a stream is closed or a call cancelled, before the guard has
    decided) can be joined to the decision it never delivered."""
    run_id = getattr(run_manager, "run_id", None)
    return str(run_id) if run_id is not None else None


def _with_run(run_manager: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the chain run and the call's own run id of ``run_manager`` for ``_stream`` / ``_astream``: an
    invoke that langchain-core streams (a streaming handler listens: LangGraph's ``stream_mode="messages"``,
    ``astream_events``) runs them without the run manager, and its decision lost its run ids, the retrieved passages
    of its run and the run's earlier answers (a reduce step held under invoke was accepted)."""
    if run_manager is None:
        return kwargs
    return {_PARENT_RUN: parent_run_of(run_manager), _RUN_ID: _run_id(run_manager), **kwargs}


def run_ids(run_id: Any, parent_run: Any) -> dict[str, str | None]:
    """The LangChain run ids a decision record names (``Guard.invoke(run=...)``): the call's own ``run_id``, the
    ``parent_run_id`` of the chain step that made it, and the ``root_run_id`` of the outermost run (the call's own
    outside a chain; left out where the chain's root is not known)."""
    root = CAPTURE.root_of(parent_run) if parent_run is not None else run_id
    return {"run_id": str(run_id), "parent_run_id": None if parent_run is None else str(parent_run),
            "root_run_id": None if root is None else str(root)}


def response_metadata(guard: Guard, result: GuardResult) -> dict[str, Any]:
    """What goes into a guarded answer's ``AIMessage.response_metadata``: the decision and the model's name."""
    return {"model_name": guard.lm.name, **decision_metadata(result)}


def usage_metadata(guard: Guard, question: str, context: Any, result: GuardResult, *,
                   history: list[dict] | None = None, system: str | None = None) -> UsageMetadata:
    """LangChain's token counts of a decision (``AIMessage.usage_metadata``): ``input_tokens`` of the prompt the guard
    built (chat template included), ``output_tokens`` of the answer it scored (generated, or given and forced through
    the model: its own count), ``total_tokens`` their sum."""
    ctx = _join_context(context)  # as the guard joined them: blank and repeated passages left out
    n_in = len(guard.generator.prompt_ids(question, ctx, history=history, system=system))
    given = (result.given_answer or {}).get("tokens")
    length = given if isinstance(given, int) and not isinstance(given, bool) else result.signals.get("length")
    n_out = (int(length) if isinstance(length, (int, float)) and math.isfinite(length)
             else len(guard.lm.tokenizer.encode(result.answer, add_special_tokens=False)))
    return UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)


@dataclass
class _Call:
    question: str
    context: Any
    domain: str | None
    stream_mode: StreamMode
    early_stop: bool
    precomputed: str | None
    history: list[dict]
    system: str | None
    problems: list[str]
    stop: list[str] | None
    max_new_tokens: int | None = None
    query_step: str | None = None  # the retrieval step asking for text no user is shown (no decision: Guard.rewrite_query)
    run_id: str | None = None  # the call's LangChain run id: its decision record names it (and its answer_not_delivered)
    cancel: Any = None  # an async call's cancel event (threading.Event)
    agent: bool = False  # an agent's step (asks_for_actions): held whatever the stream mode, a held one withheld
    parent_run: Any = None  # the chain run that made the call (None outside a chain)
    thread: str | None = None  # the thread the call's config names (retrieval.config_thread), if any

    def shown(self, result: GuardResult) -> str:
        """What the program gets for ``result``: an agent acts on a marked held answer, so it gets the hold text."""
        return result.withheld_text if self.agent else result.display_text

    def guard_kwargs(self) -> dict[str, Any]:
        return {"history": self.history, "system": self.system, "stop": self.stop, "problems": self.problems,
                "max_new_tokens": self.max_new_tokens, "cancel": self.cancel, "run": self.run()}

    def run(self) -> dict[str, str | None] | None:
        """The LangChain run ids the decision record names (:func:`run_ids`); None before the call has a run id."""
        return None if self.run_id is None else run_ids(self.run_id, self.parent_run)

    def asked(self) -> str:
        """What this call asks: two calls that ask the same get the same greedy answer and decision."""
        from hguard._json import canonical_json, json_safe

        return canonical_json(json_safe([self.question, self.context, self.domain, self.history, self.system,
                                         self.stop, self.max_new_tokens, self.problems]))


_RAISED_KEPT = 2048  # (run or task, call) entries of raised decisions kept for a retry (the oldest forgotten first)


def _decisions(results: list[Any] | None) -> list[GuardResult]:
    """The decisions among a batch's outcomes (a refused input's error is none)."""
    return [r for r in results or [] if isinstance(r, GuardResult)]


def decided_by(meta: dict[str, Any]) -> Any:
    """The decision an answer's ``response_metadata`` names (its audit id and route), for saying it undelivered."""
    from types import SimpleNamespace

    return SimpleNamespace(audit_id=meta.get("audit_id"), route=meta.get("route"))


def batch_failed_why(failed: int, exc: BaseException) -> str:
    """Why the other answers of a batch that raised on input ``failed`` never reached the caller."""
    return (f"input {failed} of the same batch raised {type(exc).__name__} (no return_exceptions), so the batch "
            "returned none of its answers")


def say_undelivered(guard: Guard, decisions: Sequence[Any], configs: Sequence[RunnableConfig], why: str) -> None:
    """Each decision of a batch that did not reach the caller (None: none to say for that input) said undelivered,
    naming its run's id from its config."""
    for decision, cfg in zip(decisions, configs):
        if decision is not None:
            run_id = cfg.get("run_id")
            guard.record_undelivered(decision, why, run_id=str(run_id) if run_id is not None else None)


def _decisions_in(result: ChatResult) -> list[Any]:
    """The decisions a chat result's messages carry, for saying them undelivered."""
    return [decided_by(g.message.response_metadata) for g in result.generations]


class ChatHGuard(BaseChatModel):
    """A local Hugging Face chat model guarded by hguard, as a LangChain chat model.

    Each call is one guarded answer, read by :func:`read_chat`: the last human message is the
    question, earlier human/AI messages are history (rendered by the chat template and fingerprinted),
    system messages are instructions. Context (what the answer is scored against) comes from the
    ``context=`` call argument (a string or a list of passages), messages named ``"context"``, system
    messages when ``system_as_context=True``, or else the documents a LangChain retriever returned
    earlier in the same chain run and pasted into the prompt (the RAG tutorial's chains). A prompt
    that refers to context nobody could identify goes to review ("context not identified").

    A call made for a retriever, not for a user (inside a running retriever before it has retrieved, as
    ``MultiQueryRetriever`` generates its queries, or in ``create_history_aware_retriever``'s rewrite of a
    follow-up) is text to search with: generated plainly, without a decision, and recorded as a
    ``retrieval_query`` (``response_metadata["hguard_step"]``); the chain's answer from what was found is
    guarded, and so is a retriever's call on documents it already found (they become the passages).

    The returned message's content is what a user should see (the answer on accept, the abstain
    message on abstain, ``"[needs review] "`` + answer on review) and its ``response_metadata`` holds
    the decision: ``route``, ``risk``, ``signals``, ``reasons``, ``audit_id``, ``domain`` (plus
    ``request_id``, ``probe_id``, ``thresholds``, ``model_name``); ``usage_metadata`` counts the
    prompt and answer tokens. ``raise_on={"abstain", "review"}`` raises
    :class:`hguard.errors.AbstainedError` / :class:`~hguard.errors.NeedsReviewError` instead (after
    the decision is recorded), so ``with_fallbacks`` and retries fire.

    Streaming follows ``stream_mode``: ``"hold"`` (default) yields the routed text once decided, so
    nothing unchecked reaches the user; ``"passthrough"`` yields tokens as generated and puts the
    decision in the last chunk's ``response_metadata``.

    .. code-block:: python

        from hguard.guard import Guard
        from langchain_hguard import ChatHGuard

        chat = ChatHGuard(guard=Guard.from_policy())
        msg = chat.invoke("What is the capital of France?", context=["Paris is the capital of France."])
        msg.content, msg.response_metadata["route"]
    """

    guard: Guard = Field(exclude=True)
    """The hguard ``Guard`` (model, policy, probes, audit log) that answers."""
    domain: str | None = None
    """Domain of every question; ``None`` lets the guard choose by embedding similarity."""
    stream_mode: Literal["hold", "passthrough"] = "hold"
    early_stop: bool = Field(default=False, strict=True)  # strict: "no" is not read as True (pydantic's coercion)
    """Stop generating once the running risk passes the abstain threshold (hold mode and invoke)."""
    system_as_context: bool = Field(default=False, strict=True)
    """Treat system messages as retrieved context instead of instructions."""
    stop: list[str] | None = None
    """Stop sequences of every call (a call's ``stop=`` replaces them); the answer is cut before the first."""
    max_tokens: int | None = None
    """Most tokens an answer may have; ``None``: the policy's ``generation.max_new_tokens``."""
    temperature: float | None = None
    """Only greedy decoding (``0`` or ``None``): the probes were calibrated on greedy answers."""
    raise_on: frozenset[str] = frozenset()
    """Routes (``"abstain"``, ``"review"``) that raise a typed ``hguard.errors.RouteError`` instead of returning."""
    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """Always ``False``: no LangChain cache (``set_llm_cache`` included) answers for the guard."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:  # pydantic's four lines and a URL: one line naming the setting and the fix
            raise settings_error(type(self).__name__, exc, _SETTING_FIXES) from None

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        """:meth:`_generate` in a worker thread; cancelled meanwhile (a timeout), the answer is still decided and
        the log says it never reached the caller."""
        run_id = _run_id(run_manager)
        cancel = threading.Event()  # set when the caller leaves: the generation stops at its next token

        def unstarted() -> None:  # cancelled while waiting for a worker: nothing generated, an error record says so
            if _PRECOMPUTED not in kwargs:  # (a batch's answer, decided already: its batch says it undelivered)
                self.guard.record_cancelled(any_text(messages[-1]) if messages else "", context=kwargs.get("context"),
                                            domain=kwargs.get("domain") or self.domain, source="ChatHGuard", run_id=run_id)

        result = await in_thread(self.guard, self._generate, messages, stop,
                                 run_manager.get_sync() if run_manager else None,
                                 decided=_decisions_in, run_id=run_id, cancel_event=cancel, unstarted=unstarted,
                                 **{**kwargs, _CANCEL: cancel})
        return result

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        """LangChain's ``ainvoke``; cancelled after the guard decided (while LangChain runs the callbacks, e.g. an
        async tracer's ``on_llm_end``), the log says the answer never reached the caller."""
        kwargs = self._with_thread(ensure_config(config), kwargs)
        return await until_delivered(self.guard, lambda: super(ChatHGuard, self).ainvoke(input, config, **kwargs))

    def _invoked_in_passthrough(self, run_manager: Any, kwargs: dict[str, Any]) -> bool:
        """An invoke (LangChain passes it a run manager; ``stream()`` does not) in passthrough mode. LangChain streams
        an invoke when a streaming handler listens (``astream_events``) or ``stream=True`` is passed, and returns
        the chunks joined: in passthrough that is the model's own answer, whatever the route, where an invoke
        returns what the user should see. Such an invoke is answered whole."""
        return run_manager is not None and kwargs.get("stream_mode", self.stream_mode) == "passthrough"

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        if self._invoked_in_passthrough(run_manager, kwargs):
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _should_use_protocol_streaming(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        if self._invoked_in_passthrough(run_manager, kwargs):
            return False
        return super()._should_use_protocol_streaming(async_api=async_api, run_manager=run_manager, **kwargs)

    def _generate_with_cache(self, messages: list[BaseMessage], stop: list[str] | None = None,
                             run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self._uncached(self.cache)  # set after construction (an assignment, model_copy) it is refused here
        return super()._generate_with_cache(messages, stop, run_manager, **_with_run(run_manager, kwargs))

    async def _agenerate_with_cache(self, messages: list[BaseMessage], stop: list[str] | None = None,
                                    run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self._uncached(self.cache)
        return await super()._agenerate_with_cache(messages, stop, run_manager, **_with_run(run_manager, kwargs))

    @field_validator("cache", mode="before")
    @classmethod
    def _uncached(cls, v: Any) -> bool:
        if v is not False:
            raise ValueError(
                f"ChatHGuard cannot use a LangChain cache (cache={v!r}): a cached answer would reach the user without "
                "a decision of its own under the policy, audit log and monitor state of the moment (an answer accepted "
                "before a domain was tightened would come back accepted); leave cache out"
            )
        return False

    @field_validator("temperature")
    @classmethod
    def _greedy(cls, v: float | None) -> float | None:
        if v not in (None, 0, 0.0):
            raise ValueError(
                f"ChatHGuard decodes greedily (the probes were calibrated on greedy answers); temperature={v!r} "
                f"is not supported, leave it out or pass 0"
            )
        return v

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _positive(cls, v: Any) -> int | None:
        """A whole number of at least 1, or None; the same check serves a call's own ``max_tokens=``."""
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"max_tokens must be a whole number of at least 1, got {v!r}")
        return v

    @field_validator("raise_on", mode="before")
    @classmethod
    def _raise_on(cls, v: Any) -> frozenset[str]:
        return check_raise_on(v)

    @model_validator(mode="before")
    @classmethod
    def _known_settings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _same_model(data.get("model"), getattr(getattr(data.get("guard"), "lm", None), "name", None))
        return refuse_unknown_settings(cls, data, (*UNUSED_SETTINGS, "model"))

    @model_validator(mode="after")
    def _holdable(self) -> "ChatHGuard":
        check_stream_mode(self.stream_mode, self.raise_on)
        return self

    _precomputed: dict[str, GuardResult | Exception] = PrivateAttr(default_factory=dict)
    # decisions that raised (raise_on), by each run enclosing their call, or the LangGraph task that made it, and what
    # it asked: a chain's own with_retry() (or a LangGraph RetryPolicy) asks again, and each attempt generated the held
    # answer again, one more decision and review item (a finance firm's trial; a LangGraph team's); only a retry's
    # later attempt takes one (one outer run may hold many users' requests), or a later run of the same LangGraph task
    # (the value's second item: the attempt's run that raised it, None for a chain run's entry)
    _raised: "OrderedDict[tuple[str, str], tuple[GuardResult, str | None]]" = PrivateAttr(default_factory=OrderedDict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_policy(
        cls, policy: str | Path | Any = None, *, model: str | None = None, lm: Any = None, **kwargs: Any
    ) -> "ChatHGuard":
        """Build the guard from a policy file (or ``Policy``) and wrap it; ``kwargs`` set the fields. The model is the
        policy's own unless ``model`` (or ``lm``) names another."""
        from hguard.signals.embedding import get_embedder

        # the shared embedder passed up front (it loads lazily): a Guard that creates it itself while
        # creating its grounding scorer deadlocks on its non-reentrant lazy lock
        guard = Guard.from_policy(policy, model=model, lm=lm, embedder=get_embedder())
        return cls(guard=guard, **kwargs)

    # ----------------------------------------------------------------------------- identification

    @property
    def _llm_type(self) -> str:
        return "hguard"

    @property
    def model_name(self) -> str:
        return self.guard.lm.name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        source = getattr(self.guard.policy, "source", None)
        return {
            "model_name": self.model_name,
            "model_fingerprint": self.guard.lm.fingerprint,
            "policy": str(source) if source is not None else None,
            "domain": self.domain,
            "stream_mode": self.stream_mode,
            "early_stop": self.early_stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "hguard"
        params["ls_model_name"] = kwargs.get("model") or self.model_name
        params["ls_max_tokens"] = self.max_tokens or self.guard.generator.max_new_tokens
        params["ls_temperature"] = 0.0  # greedy decoding
        if stop or self.stop:  # a malformed stop (stop=123) is the guard's to refuse, on record: not a TypeError here
            given: Any = stop or self.stop
            params["ls_stop"] = list(given) if isinstance(given, (list, tuple)) else [str(given)]
        return params

    # ------------------------------------------------------------------------ framework features

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids from the guarded model's own tokenizer (offline)."""
        return list(self.guard.lm.tokenizer.encode(text, add_special_tokens=False))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence | None = None) -> int:
        """Tokens of the prompt the guard would build for these messages (chat template included), however long; any
        other list of messages (a history without its question, as ``trim_messages(token_counter=chat)`` counts one)
        as the chat template renders it (both were refused: a counter is asked of fragments and of prompts too long)."""
        if tools:
            raise NotImplementedError(_NO_TOOLS)
        try:
            read = read_chat(messages, system_as_context=self.system_as_context)
            return len(self.guard.generator.prompt_ids(read.question, "\n\n".join(read.context) if read.context else None,
                                                       history=read.history, system=read.system, within_limit=False))
        except InputError:
            roles = {"human": "user", "ai": "assistant", "system": "system"}
            return self.guard.generator.turns_token_count(
                [{"role": roles.get(m.type, m.type), "content": any_text(m)} for m in messages])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_TOOLS)

    def with_retry(self, *, retry_if_exception_type: Any = (Exception,), wait_exponential_jitter: bool = True,
                   exponential_jitter_params: Any = None, stop_after_attempt: int = 3) -> Any:
        """LangChain's ``with_retry``, safe for a guarded model (:class:`~langchain_hguard.retry.GuardRetry`): a
        batch keeps each input's own outcome (langchain-core's can hand a failed input another input's answer), the
        guard's routes (``raise_on``) are not retried (the same greedy answer would be generated and queued again),
        and a batch that raises says its other decided answers undelivered."""
        from .retry import GuardRetry

        if isinstance(stop_after_attempt, bool) or not isinstance(stop_after_attempt, int) or stop_after_attempt < 1:
            raise ValueError(f"stop_after_attempt={stop_after_attempt!r}: give the number of attempts, 1 or more "
                             "(1: no retry); below 1 it would retry for ever")
        return GuardRetry(bound=self, kwargs={}, config={}, retry_exception_types=retry_if_exception_type,
                          wait_exponential_jitter=wait_exponential_jitter, max_attempt_number=stop_after_attempt,
                          exponential_jitter_params=exponential_jitter_params)

    def with_structured_output(self, schema: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    # ---------------------------------------------------------------------------------- helpers

    def _parse(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any], parent_run_id: Any = None,
        *, record: bool = True,
    ) -> _Call:
        """The call these messages and keywords ask for. A call refused here is on record (an ``error`` record), as
        the guard's own refusals are, unless ``record`` is False (a batch reading its inputs before each is run
        alone, which records its own refusal: the refusal was recorded twice)."""
        kw = dict(kwargs)
        context = kw.pop("context", None)
        domain = kw.pop("domain", None) or self.domain
        asked_mode = kw.pop("stream_mode", self.stream_mode)
        key = kw.pop(_PRECOMPUTED, None)
        handed = kw.pop(_PARENT_RUN, None)  # a streamed call's chain run
        run_id = kw.pop(_RUN_ID, None)
        parent_run_id = parent_run_id or handed
        given = list(kw.pop(_PROBLEMS, None) or [])
        cancel = kw.pop(_CANCEL, None)
        thread = kw.pop(_THREAD, None)
        kw.pop("stream", None)
        for unused in ("timeout", "max_retries"):  # LangChain's standard params: no API call to time out or retry
            kw.pop(unused, None)

        def refused(err: Exception) -> Exception:  # a call refused is on record, as the guard's own refusals are
            if record:  # any_text: a message holding an image is recorded too (message_text raised, losing both)
                self.guard.record_failure(any_text(messages[-1]) if messages else "", err, context=context,
                                          domain=domain, source="ChatHGuard", run_id=run_id)
            return err

        try:  # per call, as a hosted chat model takes them; else the fields'
            max_tokens = self._positive(kw.pop("max_tokens", None))
            early_stop = strict_bool("ChatHGuard", "early_stop", kw.pop("early_stop", self.early_stop),  # "no": True
                                     ", or leave it out for the setting's")
            self._greedy(kw.pop("temperature", None))
        except ValueError as exc:  # refused on record, as the guard refuses its own max_new_tokens
            raise refused(InputError(str(exc))) from None
        # a capability it lacks, another model, or a wrong keyword: raised as such, and on record too, since a chain's
        # with_fallbacks catches every error, so that a bound seed= or response_format= sent each question to the
        # fallback model with no trace in the guard's log
        try:
            mode = check_stream_mode(asked_mode, self.raise_on)
            _same_model(kw.pop("model", None), self.model_name)
        except ValueError as exc:
            raise refused(exc) from None
        if {"tools", "tool_choice", "functions"} & set(kw):
            raise refused(NotImplementedError(_NO_TOOLS))
        if {"response_format", "ls_structured_output_format"} & set(kw):
            raise refused(NotImplementedError(_NO_STRUCTURED))
        if kw:
            raise refused(TypeError(
                f"ChatHGuard got unexpected keyword argument(s) {sorted(kw)}; it accepts context=, domain=, "
                f"stream_mode= ({', '.join(STREAM_MODES)}), early_stop=, max_tokens=, temperature=0 and stop= "
                "(timeout= and max_retries= are accepted and unused)"
            ))
        # context= given without a passage with text ("", [], [""]: a retrieval that found nothing, formatted):
        # an answer from passages was asked for, so it goes to review as nothing retrieved, as GuardedRAG's does
        # (it was refused with an InputError, breaking the chain), and is never read as a closed-book request
        emptied = context is not None and (
            (isinstance(context, str) and blank(context))
            or (isinstance(context, (list, tuple)) and all(isinstance(c, str) and blank(c) for c in context)))
        if emptied:
            context = None
            given.append(nothing_retrieved("the context= given"))
        from_prompt = context is None and not emptied  # the passages, if any, are read from the prompt and the run
        query_step = CAPTURE.query_step(parent_run_id) if from_prompt else None
        # a retrieval step's prompt is the step's own, read as written (a compressor's holds the document it asks about)
        retrievals = CAPTURE.retrievals_for(parent_run_id) if from_prompt and query_step is None else []
        try:
            read = read_chat(messages, system_as_context=self.system_as_context, retrievals=retrievals,
                             prompt_values=CAPTURE.prompt_values_for(parent_run_id) if retrievals else None)
        except InputError as exc:  # on record, as the guard records the requests it refuses (the id on the error)
            if record:
                chat = "\n".join(f"{m.type}: {m.content if isinstance(m.content, str) else repr(m.content)}" for m in messages)
                self.guard.record_failure(chat, exc, context=context, domain=domain, source="ChatHGuard", run_id=run_id)
            raise
        if from_prompt and read.context:
            context = read.context
        problems = read.problems if from_prompt and (context is None or read.context_from == "retriever") else []
        if any(p.startswith(NOTHING_RETRIEVED) for p in given):  # the calling runnable said it already
            problems = [p for p in problems if not p.startswith(NOTHING_RETRIEVED)]
        if context is not None and query_step is None and self._answered_before(context, parent_run_id, thread):
            problems.append(_ANSWERS_AS_CONTEXT)
        stop = stop if stop else self.stop
        agent = asks_for_actions([m.content for m in messages])
        return _Call(read.question, context, domain, "hold" if agent else mode, early_stop, key, read.history, read.system,
                     given + problems,
                     (list(stop) if isinstance(stop, (list, tuple)) else stop) if stop else None,  # a malformed one is
                     max_tokens or self.max_tokens, query_step, run_id, cancel, agent,  # the guard's to refuse, on record
                     parent_run_id, thread)

    def _answered_before(self, context: Any, parent_run_id: Any, thread: str | None = None) -> bool:
        """Whether a passage of ``context`` is made of nothing but answers given earlier in the same chain run or
        thread (LangGraph's, or ``thread``, the one the call's config names:
        :meth:`~langchain_hguard.retrieval.RetrievalCapture.answers_for`), or of the guard's abstain or review messages: a map-reduce's reduce step given its map answers as passages (a RAG
        team's trial: a final answer accepted over "passages" that were the model's own answers, one the abstain
        message). Their text grounds nothing, and a held answer came back accepted inside the summary. A reduce
        prompt labels or bullets them ("Summary 1: <answer>", "- <answer>"; "Summary 1: <the abstain message>" came
        back accepted): :func:`~hguard.streaming.lists_answers` reads those lines, not an answer found inside prose. A
        document a retriever returned in the run is evidence, whatever it quotes (a document holding an earlier answer
        of the run, a support transcript quoting the abstain message, were held as the run's own answers)."""
        passages = [context] if isinstance(context, str) else [c for c in context or [] if isinstance(c, str)]
        retrieved = CAPTURE.documents_found(parent_run_id)
        earlier = [*CAPTURE.answers_for(parent_run_id, thread), *held_texts(self.guard)]
        return any(lists_answers(p, earlier) for p in passages if not blank(p) and " ".join(p.split()) not in retrieved)

    @staticmethod
    def _note_answer(call: _Call, result: GuardResult) -> None:
        """Note a delivered answer's texts (the model's, what the caller gets) for the rest of its chain run and its
        thread, so that a later call given them as passages is known for one (:meth:`_answered_before`); an answer that
        copies one of its own passages is that passage, still retrieved text."""
        passages = [call.context] if isinstance(call.context, str) else [c for c in call.context or [] if isinstance(c, str)]
        given = [" ".join(p.split()) for p in passages]
        texts = {result.answer, result.display_text, call.shown(result)}
        CAPTURE.note_answer(call.parent_run, [t for t in texts if not any(" ".join(t.split()) in p for p in given)],
                            call.thread)

    def _search_text(self, call: _Call) -> AIMessage:
        """A retrieval step's call (a question rewrite, a retriever's queries, a compressor's filter or extract):
        text no user is shown, generated plainly from the step's own prompt and recorded
        as a ``retrieval_query`` (``Guard.rewrite_query``), not an answer held for review (its hold
        message would have been searched for)."""
        q = self.guard.rewrite_query(
            call.question, step=f"LangChain {call.query_step}", history=call.history, system=call.system, stop=call.stop
        )
        meta = {"model_name": self.model_name, "hguard_step": "retrieval_query", "retrieval_query_audit_id": q.audit_id}
        return AIMessage(content=q.text, response_metadata=meta)

    def _take(self, key: str | None) -> GuardResult | None:
        """The decision a batch made for this call; a refused input's error (already on record), or the error the
        whole batch failed with, is raised."""
        if key is None:
            return None
        with self._lock:
            taken = self._precomputed.pop(key, None)
        if isinstance(taken, Exception):
            raise taken
        return taken

    def response_metadata(self, result: GuardResult) -> dict[str, Any]:
        """What goes into ``AIMessage.response_metadata``: the decision and the model's name."""
        return response_metadata(self.guard, result)

    def usage_metadata(self, call: _Call, result: GuardResult) -> UsageMetadata:
        """Prompt tokens (as built by the guard, chat template included) and answer tokens (:func:`usage_metadata`)."""
        return usage_metadata(self.guard, call.question, call.context, result, history=call.history, system=call.system)

    def _chunk(self, text: str, result: GuardResult | None, call: _Call | None = None) -> ChatGenerationChunk:
        extra: dict[str, Any] = {}
        if result is not None and _CHUNK_HAS_POSITION:
            extra["chunk_position"] = "last"
        if result is not None and call is not None:
            extra["usage_metadata"] = self.usage_metadata(call, result)
        meta = self.response_metadata(result) if result is not None else {}
        return ChatGenerationChunk(message=AIMessageChunk(content=text, response_metadata=meta, **extra))

    # ------------------------------------------------------------------------------ generation

    # Streamed calls: langchain-core runs ``_stream`` without the run manager, so the chain run the
    # retrieved passages belong to is taken from the config here and handed on, and so is the call's own
    # run id (set here when the caller set none: LangChain takes a config's ``run_id`` as the call's). An
    # invoke that langchain-core streams gets them from its run manager (``_generate_with_cache``).

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        """LangChain's ``invoke``; raising after the guard decided (a handler with ``raise_error`` failing in its
        ``on_llm_end``: a tracer's exporter down), the log says the answer never reached the caller
        (:func:`hguard.streaming.delivering`) and the audit handler's ``llm_call`` record says error."""
        with delivering(self.guard):
            return super().invoke(input, config, **self._with_thread(ensure_config(config), kwargs))

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        config = self._run_of_stream(config, kwargs)
        return delivering_stream(self.guard, lambda: super(ChatHGuard, self).stream(input, config, **kwargs))  # as invoke

    def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        config = self._run_of_stream(config, kwargs)
        return adelivering_stream_lazy(self.guard, lambda: super(ChatHGuard, self).astream(input, config, **kwargs))

    @staticmethod
    def _run_of_stream(config: RunnableConfig | None, kwargs: dict[str, Any]) -> RunnableConfig:
        """The call's config, with a run id; ``kwargs`` get the chain run and the call's run for ``_stream``."""
        config = ensure_config(config)  # a copy: the caller's config is left as it was
        kwargs.setdefault(_PARENT_RUN, parent_run_of(config))
        kwargs.update(ChatHGuard._with_thread(config, kwargs))
        config["run_id"] = config.get("run_id") or uuid.uuid4()
        kwargs.setdefault(_RUN_ID, str(config["run_id"]))
        return config

    @staticmethod
    def _with_thread(config: RunnableConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the thread ``config`` names (:func:`~langchain_hguard.retrieval.config_thread`: the first
        of ``thread_id``, ``session_id``, ``conversation_id`` set in its ``configurable`` or ``metadata``), where it
        names one: a plain LangChain app's configurable is in no run's metadata (LangGraph copies it there,
        langchain-core does not), and a direct call's own metadata is in no run the adapter reads it from, so its
        earlier answers in the thread were not checked. ``config`` is the call's, with what it inherits from the
        enclosing run (``ensure_config``)."""
        thread = config_thread(config)
        return kwargs if thread is None or _THREAD in kwargs else {**kwargs, _THREAD: thread}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._parse(messages, stop, kwargs, parent_run_of(run_manager))
        call.run_id = call.run_id or _run_id(run_manager)
        if call.query_step is not None:
            return ChatResult(generations=[ChatGeneration(message=self._search_text(call))], llm_output={"model_name": self.model_name})
        self._raise_held_again(call)
        if call.precomputed is None:  # a refusal the guard would make, recorded as ChatHGuard's (it read "api")
            self._check_inputs([call])
        result = self._take(call.precomputed) or guarded_invoke(
            self.guard, call.question, call.context, call.domain, early_stop=call.early_stop, **call.guard_kwargs()
        )
        self._keep_raised(call, result)
        raise_if_routed(result, self.raise_on)
        self._note_answer(call, result)
        decided_here([result], _run_id(run_manager))  # said undelivered if the call raises before it returns it
        message = AIMessage(
            content=call.shown(result), response_metadata=self.response_metadata(result),
            usage_metadata=self.usage_metadata(call, result),
        )
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name})

    def _asked(self, call: _Call) -> str | None:
        """What ``call`` asks, where a retry of it may be answered by the held decision it raised (``raise_on``, a
        call of a chain run, not one a batch decided); None elsewhere."""
        return call.asked() if self.raise_on and call.precomputed is None and call.parent_run is not None else None

    def _raise_held_again(self, call: _Call) -> None:
        """A retry asks again: the same held decision, raised again, nothing generated. A retry is a later attempt of
        a chain's ``with_retry()``, or a later run of the LangGraph task that raised it (a node's ``RetryPolicy``
        retries any error but a few builtin ones, and a thread resumed runs its interrupted or failed task again: each
        run generated the held answer again, one more decision and review item)."""
        asked = self._asked(call)
        if asked is None:
            return
        retry = CAPTURE.retried_in(call.parent_run)
        task = CAPTURE.task_attempt(call.parent_run)
        with self._lock:
            earlier = self._raised.get((str(retry), asked)) if retry is not None else None
            if earlier is None and task is not None:
                held = self._raised.get((f"langgraph task {task[0]}", asked))
                # the same attempt asking again is another request (a node serving several users' questions)
                earlier = held if held is not None and held[1] != str(task[1]) else None
        if earlier is not None:
            raise_if_routed(earlier[0], self.raise_on)

    def _keep_raised(self, call: _Call, result: GuardResult) -> None:
        """Keep a decision that raises (``raise_on``) for a retry of its call (:meth:`_raise_held_again`); a failure's
        hold (no risk, a scoring problem the call did not bring) is for a retry to lift. The call's own problems
        (nothing retrieved, context not identified, its own answers as context) are part of what it asks: a retry
        asking the same meets them again."""
        asked = self._asked(call)
        own = {f"scoring problem: {p}" for p in call.problems}
        if asked is None or result.route not in self.raise_on or result.risk is None or any(
                r.startswith("scoring problem: ") and r not in own for r in result.reasons):
            return
        task = CAPTURE.task_attempt(call.parent_run)
        with self._lock:
            for run in CAPTURE.ancestors(call.parent_run):
                self._raised[(str(run), asked)] = (result, None)
            if task is not None:
                self._raised[(f"langgraph task {task[0]}", asked)] = (result, str(task[1]))
            while len(self._raised) > _RAISED_KEPT:
                self._raised.popitem(last=False)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._parse(messages, stop, kwargs, parent_run_of(run_manager))
        call.run_id = call.run_id or _run_id(run_manager)
        settled = self._settled(call)
        if settled is not None:
            yield settled
            return
        self._raise_held_again(call)
        self._check_inputs([call])  # a refusal the guard would make, recorded as ChatHGuard's (it read "api")
        for piece in guard_stream(
            self.guard, call.question, call.context, call.domain, call.stream_mode, early_stop=call.early_stop,
            run_id=call.run_id, **call.guard_kwargs(),
        ):
            yield self._streamed(piece, call)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """:meth:`_stream` with the answer generated in a worker thread; left early (a timeout, a cancelled task),
        the answer is still decided, and the log says when its decision never reached the caller. A search step's
        text (a history-aware retriever's rewrite) is generated in a worker thread too, the event loop free meanwhile."""
        call = self._parse(messages, stop, kwargs, parent_run_of(run_manager.get_sync() if run_manager else None))
        call.run_id = call.run_id or _run_id(run_manager)
        if call.query_step is not None:  # (on the loop's thread, a rewrite stalled every other task of the loop)
            yield self._search_chunk(await to_thread_awake(self._search_text, call))
            return
        settled = self._settled(call)
        if settled is not None:
            yield settled
            return
        self._raise_held_again(call)
        # as _stream's, on the loop (a prompt tokenized): in a worker, a stream cancelled while it waited for one
        # left no record of its run (aguard_stream records that)
        self._check_inputs([call])
        async for piece in aguard_stream(
            self.guard, call.question, call.context, call.domain, call.stream_mode, early_stop=call.early_stop,
            run_id=call.run_id, **call.guard_kwargs(),
        ):
            yield self._streamed(piece, call)

    def _settled(self, call: _Call) -> ChatGenerationChunk | None:
        """The one chunk of a call with nothing to generate (a search step's text, an answer a batch already
        decided), or None."""
        if call.query_step is not None:
            return self._search_chunk(self._search_text(call))
        result = self._take(call.precomputed)
        if result is None:
            return None
        raise_if_routed(result, self.raise_on)
        self._note_answer(call, result)
        return self._chunk(call.shown(result), result, call)

    @staticmethod
    def _search_chunk(m: AIMessage) -> ChatGenerationChunk:
        """A search step's text (:meth:`_search_text`) as the one chunk of its stream."""
        return ChatGenerationChunk(message=AIMessageChunk(content=m.content, response_metadata=m.response_metadata))

    def _streamed(self, piece: Any, call: _Call) -> ChatGenerationChunk:
        if piece.result is not None:
            self._keep_raised(call, piece.result)
            raise_if_routed(piece.result, self.raise_on)
            self._note_answer(call, piece.result)
            decided_here([piece.result], call.run_id)  # said undelivered if the stream raises before handing it over
            return self._chunk(call.shown(piece.result) if call.agent else piece.text, piece.result, call)
        return self._chunk(piece.text, piece.result, call)

    # ----------------------------------------------------------------------------------- batches

    def _batch_calls(self, inputs: list[Any], configs: list[RunnableConfig], kwargs: dict[str, Any]) -> list[_Call] | None:
        """Each input's call, read before any is run; each config (the batch's own copy) is given its run id first,
        as :meth:`_run_of_stream` gives a stream's, so that the decisions made here name the runs that deliver them."""
        for cfg in configs:
            cfg["run_id"] = cfg.get("run_id") or uuid.uuid4()
        rest = {k: v for k, v in kwargs.items() if k != "stop"}
        try:
            calls = [
                self._parse(self._convert_input(x).to_messages(), kwargs.get("stop"), self._with_thread(c, rest),
                            parent_run_of(c), record=False)
                for x, c in zip(inputs, configs)
            ]
        except (InputError, ValueError, TypeError, NotImplementedError):
            return None  # let the per-input path raise (or return) each input's own error, and record it once
        if any(c.stop or c.query_step for c in calls):
            return None  # stop sequences, text to search with: one generation per input
        for c, cfg in zip(calls, configs):
            c.run_id = str(cfg["run_id"])
        return calls

    def _check_inputs(self, calls: list[_Call]) -> None:
        """Each call checked as the guard's batch checks it (:meth:`Guard._check_input`: a prompt longer than the model's
        window, a system prompt it refuses, ...; its stop sequences), before the batch: each refusal recorded as
        ChatHGuard's, not as a call of the API's (source "api"), and the batch refused whole, as the guard's own batch
        refuses it. A single call (invoke, stream) is checked so too, before the guard is called."""
        n = len(calls)
        refused: list[tuple[int, InputError]] = []
        for i, c in enumerate(calls):
            context = None
            try:
                _check_stop(c.stop)
                context = _join_context(c.context)
                self.guard._check_input(c.question, context, c.history, c.system, c.domain,
                                        max_new_tokens=calls[0].max_new_tokens or None)
            except InputError as exc:
                err = InputError(f"question {i} of {n} (counting from 0): {exc}") if n > 1 else exc
                refused.append((i, self.guard._refused(c.question, err, context=context if context is not None
                                                       else c.context, domain=c.domain, run=c.run(),
                                                       source="ChatHGuard")))
        if refused:  # nothing generated
            raise batch_refused(refused, n)

    def _guard_batch(self, calls: list[_Call], cancel: Any = None) -> list[GuardResult]:
        self._check_inputs(calls)
        per_call = any(c.history or c.system is not None or c.problems for c in calls)
        return self.guard.batch(
            [c.question for c in calls], [c.context for c in calls], [c.domain for c in calls],
            early_stop=calls[0].early_stop,
            histories=[c.history for c in calls] if per_call else None,
            systems=[c.system for c in calls] if per_call else None,
            problems=[c.problems for c in calls] if per_call else None,
            max_new_tokens=calls[0].max_new_tokens or None, cancel=cancel, runs=[c.run() for c in calls],
        )

    def _decide(self, calls: list[_Call], return_exceptions: bool, cancel: Any = None) -> list[GuardResult | Exception] | None:
        """Each call's decision, from one guard batch. A refused input (refused before anything was generated, each
        on record, named by its index) raises unless ``return_exceptions``: a batch is answered whole or not at all,
        since answering the others would record decisions that nobody receives. With it, the refused input's recorded
        error stands in its place (raised by its own run, not recorded twice) and the others are batched without it;
        None: answer each input alone."""
        try:
            return list(self._guard_batch(calls, cancel))
        except InputError as exc:
            if not return_exceptions:
                raise
            refused: dict[int, InputError] | None = getattr(exc, "refused", None)
            if not refused:
                return None
            kept = [i for i in range(len(calls)) if i not in refused]
            try:
                answered = iter(self._guard_batch([calls[i] for i in kept], cancel) if kept else [])
            except Exception as failed:  # the others' batch failed too: each recorded one in its own slot, each other
                # its own error, naming its own record (the guard's error record of it, or its decision said undelivered)
                by_rest: dict[int, GuardResult] = getattr(failed, "by_index", None) or {}
                recorded = {kept[j]: r for j, r in by_rest.items()}
                own = {kept[j]: request_error(failed, j) for j in range(len(kept))}
                return [refused.get(i) or recorded.get(i) or own[i] for i in range(len(calls))]
            return [refused[i] if i in refused else next(answered) for i in range(len(calls))]
        except Exception as exc:  # the batch failed as a whole (its audit log refused the records part-way, ...)
            recorded = getattr(exc, "by_index", None) or {}
            if not return_exceptions:  # decided and on record, and nobody receives them: said so in the log
                for r in recorded.values():
                    self.guard.record_undelivered(r, f"the batch failed after this answer was recorded and raised "
                                                     f"{type(exc).__name__} (no return_exceptions), so it was not delivered")
                raise
            # each input's run gets its recorded decision, or raises the error in its slot (LangChain's batch contract),
            # its own copy naming its own record, which the input's llm_call record names (Guard.record_failed_requests)
            return [recorded[i] if i in recorded else request_error(exc, i) for i in range(len(calls))]

    def _undelivered(self, results: list[GuardResult | Exception], configs: list[RunnableConfig], failed: int,
                     exc: BaseException) -> None:
        """A batch that raises on input ``failed`` (a ``raise_on`` route, without ``return_exceptions``) returns none
        of its other answers, all decided and on record: each gets an ``answer_not_delivered`` record, so that an
        accept in the log is not read as an answer someone received (the raised error carries its own)."""
        say_undelivered(self.guard, [r if i != failed and isinstance(r, GuardResult) else None
                                     for i, r in enumerate(results)], configs, batch_failed_why(failed, exc))

    def _stash(self, results: list[GuardResult | Exception]) -> list[str]:
        keys = [uuid.uuid4().hex for _ in results]
        with self._lock:
            self._precomputed.update(zip(keys, results))
        return keys

    def _drop(self, keys: list[str]) -> None:
        with self._lock:
            for k in keys:
                self._precomputed.pop(k, None)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """One batched generation for all inputs (``Guard.batch`` groups them by domain), then one
        LangChain run per input (callbacks, tracing and audit see every call as usual)."""
        configs = get_config_list(config, len(inputs))
        calls = self._batch_calls(list(inputs), configs, kwargs) if len(inputs) > 1 else None
        if calls is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        results = self._decide(calls, return_exceptions)
        if results is None:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)  # each its own outcome
        keys = self._stash(results)
        out: list[Any] = []
        try:
            for i, (x, cfg, key) in enumerate(zip(inputs, configs, keys)):
                try:
                    run_kwargs: dict[str, Any] = {**kwargs, _PRECOMPUTED: key}
                    out.append(self.invoke(x, cfg, **run_kwargs))
                except Exception as exc:
                    if not return_exceptions:
                        self._undelivered(results, configs, i, exc)
                        raise
                    out.append(exc)
        finally:
            self._drop(keys)
        return out

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        configs = get_config_list(config, len(inputs))
        calls = self._batch_calls(list(inputs), configs, kwargs) if len(inputs) > 1 else None
        if calls is None:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        cancel = threading.Event()
        results = await in_thread(
            self.guard, self._decide, calls, return_exceptions, cancel, decided=_decisions, cancel_event=cancel,
            unstarted=lambda: self.guard.record_cancelled_batch([c.question for c in calls], [c.context for c in calls],
                                                                [c.domain for c in calls], source="ChatHGuard"))
        if results is None:
            return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        keys = self._stash(results)
        out: list[Any] = []
        try:
            for i, (x, cfg, key) in enumerate(zip(inputs, configs, keys)):
                try:
                    run_kwargs: dict[str, Any] = {**kwargs, _PRECOMPUTED: key}
                    out.append(await self.ainvoke(x, cfg, **run_kwargs))
                except asyncio.CancelledError:  # the caller left: none of the answers, all decided, reached it
                    say_undelivered(self.guard, [r if isinstance(r, GuardResult) else None for r in results], configs,
                                    CANCELLED)
                    raise
                except Exception as exc:
                    if not return_exceptions:
                        await asyncio.to_thread(self._undelivered, results, configs, i, exc)
                        raise
                    out.append(exc)
        finally:
            self._drop(keys)
        return out


__all__ = ["ChatHGuard", "ChatRead", "DECISION_KEYS", "message_text", "read_chat", "split_messages"]
